#!/bin/bash
# IM benchmark in one command: parleyd with durable state (durability "fsync": every Ack waits for the WAL fsync)
# and the IM layer on, under parley-bench's three IM scenarios:
#   im-direct   50 user pairs, each in a direct conversation; each sender keeps 16 sends unanswered; 64-byte texts
#   im-group    one group of 100 members, all online; then one of 1,000 members, 100 online; 4 senders with an
#               end-to-end window of 16 messages each
#   im-sync     a 10,000-message backlog preloaded for an offline user, whose device then connects and syncs
# The broker is pinned to CPU 0 and parley-bench to CPU 1; every run starts a fresh broker on a fresh temporary
# data dir (`[im] send_rate = 0`, so the per-user rate limiter does not cap the load) and stops it afterwards.
# Prints one table per scenario (every run, then the medians) and the tool's warnings. Mosquitto has no IM layer,
# so unlike scripts/bench-durable.sh there is nothing to compare with and no ratio.
#
# Usage: scripts/bench-im.sh [ROUNDS] [SECONDS]        (default: 3 rounds, 10 s of sending per live scenario)
# Environment:
#   PARLEYD, PARLEY_BENCH  binaries (default: $BUILD_DIR/broker/main/parleyd, $BUILD_DIR/tools/bench/parley-bench)
#   BUILD_DIR              build directory (default: build)
#   NO_BUILD=1             do not run `cmake --build $BUILD_DIR --target parleyd parley-bench` first
#   DIRECT_ARGS, GROUP_ARGS, SYNC_ARGS   extra parley-bench options per scenario, e.g. GROUP_ARGS="--senders 1"
#   SCENARIOS              which runs, in order (default: "direct group100 group1000 sync")
set -uo pipefail

rounds="${1:-3}"
secs="${2:-10}"
case "$rounds$secs" in *[!0-9]*|"") echo "usage: $0 [ROUNDS] [SECONDS]" >&2; exit 2 ;; esac
if [ "$rounds" -lt 1 ] || [ "$secs" -lt 1 ]; then echo "usage: $0 [ROUNDS] [SECONDS]  (both >= 1)" >&2; exit 2; fi
read -r -a scenarios <<< "${SCENARIOS:-direct group100 group1000 sync}"
read -r -a direct_args <<< "${DIRECT_ARGS:-}"
read -r -a group_args <<< "${GROUP_ARGS:-}"
read -r -a sync_args <<< "${SYNC_ARGS:-}"
for s in "${scenarios[@]}"; do
  case "$s" in direct|group100|group1000|sync) ;; *) echo "unknown scenario in SCENARIOS: $s" >&2; exit 2 ;; esac
done

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
bench_init bench-im build

# run_one NAME ROUND: a fresh parleyd, one parley-bench run; the JSON report goes to $work/NAME-ROUND.json.
run_one() {
  local name=$1 r=$2 port args limit
  case "$name" in
    direct)    port=18871; args=(im-direct --pairs 50 --inflight 16 --duration "$secs" "${direct_args[@]}") ;;
    group100)  port=18872; args=(im-group --members 100 --online 100 --senders 4 --inflight 16 --duration "$secs"
                                 "${group_args[@]}") ;;
    group1000) port=18873; args=(im-group --members 1000 --online 100 --senders 4 --inflight 16 --duration "$secs"
                                 "${group_args[@]}") ;;
    sync)      port=18874; args=(im-sync --backlog 10000 --page 200 --inflight 64 --duration 120 --sync-timeout 60
                                 "${sync_args[@]}") ;;
  esac
  start_parleyd "$port" '[log]' 'level = "warn"' '[storage]' 'durability = "fsync"' '[im]' 'enabled = true' \
    'send_rate = 0' || { echo "round $r: $name: parleyd did not start" >&2; return 1; }
  # parley-bench stops by itself (its time bounds + a few seconds); timeout is a second line of defence.
  limit=$((secs + 60)); [ "$name" = sync ] && limit=260
  run_bench "$work/$name-$r" "$limit" "${args[@]}" --port "$port" --payload 64
  local rc=$?
  [ $rc -ne 0 ] && echo "round $r: $name: parley-bench failed" >&2
  stop_broker
  return $rc
}

echo "IM layer: $rounds round(s); ${secs} s of sending per live scenario; parleyd fsync, [im] send_rate = 0;" \
     "$pinning" >&2
failed=0
order=()
for r in $(seq "$rounds"); do
  for s in "${scenarios[@]}"; do
    echo "  round $r: $s ..." >&2
    run_one "$s" "$r" || failed=1
    order+=("$s-$r")
  done
done

/usr/bin/python3 - "$work" "${order[@]}" <<'PY'
import json, os, statistics, sys
work, runs = sys.argv[1], sys.argv[2:]

def ms(h, q):
    return h[q] / 1e3

def broker(j, key, default=0.0):
    return (j.get("broker") or {}).get(key, default)

tables = {
    "direct": ("im-direct: {pairs} pairs, durable 1:1 text sends, window {inflight} per sender", [
        ("acked/s", "%.0f", lambda j: j["acked_per_s"]),
        ("ack p50", "%.2f", lambda j: ms(j["ack_latency"], "p50_us")),
        ("ack p99", "%.2f", lambda j: ms(j["ack_latency"], "p99_us")),
        ("ack p999", "%.2f", lambda j: ms(j["ack_latency"], "p999_us")),
        ("recv p50", "%.2f", lambda j: ms(j["e2e_latency"], "p50_us")),
        ("recv p99", "%.2f", lambda j: ms(j["e2e_latency"], "p99_us")),
        ("lost", "%d", lambda j: j["lost"]),
        ("dup", "%d", lambda j: j["duplicates"]),
        ("CPU s", "%.2f", lambda j: broker(j, "cpu_s")),
        ("CPU s/M", "%.1f", lambda j: broker(j, "cpu_s_per_million")),
        ("RSS MB", "%.1f", lambda j: broker(j, "rss_mb")),
        ("bench CPU", "%.2f", lambda j: j["bench_cpu_s"]),
    ]),
    "group": ("im-group: {senders} senders, end-to-end window {inflight} each; delivered = message events read by the "
              "online devices", [
        ("deliv/s", "%.0f", lambda j: j["delivered_per_s"]),
        ("sends/s", "%.0f", lambda j: j["acked_per_s"]),
        ("e2e p50", "%.2f", lambda j: ms(j["e2e_latency"], "p50_us")),
        ("e2e p99", "%.2f", lambda j: ms(j["e2e_latency"], "p99_us")),
        ("ack p50", "%.2f", lambda j: ms(j["ack_latency"], "p50_us")),
        ("lost", "%d", lambda j: j["lost"]),
        ("dup", "%d", lambda j: j["duplicates"]),
        ("CPU s", "%.2f", lambda j: broker(j, "cpu_s")),
        ("CPU s/M dl", "%.2f", lambda j: broker(j, "cpu_s") / j["delivered"] * 1e6 if j["delivered"] else 0),
        ("RSS MB", "%.1f", lambda j: broker(j, "rss_mb")),
        ("bench CPU", "%.2f", lambda j: j["bench_cpu_s"]),
    ]),
    "sync": ("im-sync: {backlog}-message backlog, sync from cursor 0 then history pages of {page}", [
        ("total ms", "%.1f", lambda j: j["im"]["total_ms"]),
        ("sync ms", "%.1f", lambda j: j["im"]["sync_ms"]),
        ("requests", "%d", lambda j: j["im"]["requests"]),
        ("req p50", "%.2f", lambda j: ms(j["im"]["request_latency"], "p50_us")),
        ("MB read", "%.2f", lambda j: j["im"]["bytes_received"] / 1e6),
        ("held", "%d", lambda j: j["delivered"]),
        ("lost", "%d", lambda j: j["lost"]),
        ("conn ms", "%.2f", lambda j: j["im"]["connect_ms"]),
        ("sync CPU s", "%.3f", lambda j: j["im"]["sync_broker_cpu_s"] or 0),
        ("preload/s", "%.0f", lambda j: j["acked_per_s"]),
        ("RSS MB", "%.1f", lambda j: broker(j, "rss_mb")),
    ]),
}
names = {"direct": "direct", "group100": "100 members", "group1000": "1,000 members", "sync": "sync"}
rows = {"direct": [], "group": [], "sync": []}
titles = {}
notes = []
for run in runs:
    name, r = run.rsplit("-", 1)
    table = "group" if name.startswith("group") else name
    path = os.path.join(work, run + ".json")
    if not os.path.exists(path):
        rows[table].append((r, names[name], None))
        continue
    j = json.load(open(path))
    titles.setdefault(table, tables[table][0].format(inflight=j["inflight"], **j["im"]))
    rows[table].append((r, names[name], [f(j) for _, _, f in tables[table][1]]))
    for w in j.get("warnings", []):
        notes.append("round %s, %s: %s" % (r, names[name], w))

for table, (title, cols) in tables.items():
    if not rows[table]:
        continue
    print(titles.get(table, title.split(":")[0]) + " (latencies in ms)")
    print("%-7s %-14s %s" % ("round", "run", " ".join("%10s" % h for h, _, _ in cols)))
    groups = {}
    for r, n, v in rows[table]:
        if v is None:
            print("%-7s %-14s failed" % (r, n))
            continue
        print("%-7s %-14s %s" % (r, n, " ".join("%10s" % (f % x) for (_, f, _), x in zip(cols, v))))
        groups.setdefault(n, []).append(v)
    for n, vs in groups.items():
        med = [statistics.median(c) for c in zip(*vs)]
        print("%-7s %-14s %s" % ("median", n, " ".join("%10s" % (f % x) for (_, f, _), x in zip(cols, med))))
    print()
print("CPU s: broker CPU seconds over the run (CPU 0); bench CPU: parley-bench's own (CPU 1; near the run's")
print("length it is the tool, not the broker, that limits the rate).")
print("No ratio: Mosquitto has no IM layer, so there is no equivalent to compare with.")
if notes:
    print()
    for n in notes:
        print("note: " + n)
PY
exit $failed
