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

root="$(cd "$(dirname "$0")/.." && pwd)"
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

if [ -x "$root/scripts/deps.sh" ]; then "$root/scripts/deps.sh" build >&2 || exit 1; fi
build="${BUILD_DIR:-$root/build}"
parleyd="${PARLEYD:-$build/broker/main/parleyd}"
bench="${PARLEY_BENCH:-$build/tools/bench/parley-bench}"
if [ "${NO_BUILD:-0}" != 1 ]; then
  if [ -f "$build/CMakeCache.txt" ]; then
    cmake --build "$build" -j "$(nproc)" --target parleyd parley-bench >&2 || exit 1
  else
    "$root/scripts/build.sh" "$build" >&2 || exit 1
  fi
fi
for b in "$parleyd" "$bench" /usr/bin/python3; do
  [ -x "$b" ] || { echo "missing executable: $b" >&2; exit 1; }
done

if [ "$(nproc)" -ge 2 ]; then
  pin_broker=(taskset -c 0); pin_bench=(taskset -c 1); pinning="broker on CPU 0, parley-bench on CPU 1"
else
  pin_broker=(); pin_bench=(); pinning="one CPU: no pinning (figures less comparable)"
fi

work="$(mktemp -d -t parley-bench-im.XXXXXX)"
broker_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ -n "$broker_pid" ]; then kill -KILL "$broker_pid" 2>/dev/null; wait "$broker_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# True once something listens on 127.0.0.1:PORT (read from /proc: no probe connection to the broker).
listening() {
  local hex; hex=$(printf '%04X' "$1")
  grep -q " 0100007F:$hex 00000000:0000 0A" /proc/net/tcp 2>/dev/null
}

stop_broker() {
  [ -n "$broker_pid" ] || return 0
  kill -TERM "$broker_pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$broker_pid" 2>/dev/null; then
    echo "  (broker pid $broker_pid ignored SIGTERM for 5 s; killed)" >&2
    kill -KILL "$broker_pid" 2>/dev/null
  fi
  wait "$broker_pid" 2>/dev/null
  broker_pid=""
}

# run_one NAME ROUND: a fresh parleyd, one parley-bench run; the JSON report goes to $work/NAME-ROUND.json.
run_one() {
  local name=$1 r=$2 port dir out args limit
  dir="$(mktemp -d "$work/$name.XXXXXX")"
  out="$work/$name-$r"
  case "$name" in
    direct)    port=18871; args=(im-direct --pairs 50 --inflight 16 --duration "$secs" "${direct_args[@]}") ;;
    group100)  port=18872; args=(im-group --members 100 --online 100 --senders 4 --inflight 16 --duration "$secs"
                                 "${group_args[@]}") ;;
    group1000) port=18873; args=(im-group --members 1000 --online 100 --senders 4 --inflight 16 --duration "$secs"
                                 "${group_args[@]}") ;;
    sync)      port=18874; args=(im-sync --backlog 10000 --page 200 --inflight 64 --duration 120 --sync-timeout 60
                                 "${sync_args[@]}") ;;
  esac
  mkdir -p "$dir/data"
  cat > "$dir/parley.toml" <<EOF
workers = 1
data_dir = "$dir/data"
[log]
level = "warn"
[[listener]]
name = "mqtt"
bind = "127.0.0.1"
port = $port
[storage]
durability = "fsync"
[im]
enabled = true
send_rate = 0
EOF
  "${pin_broker[@]}" "$parleyd" --config "$dir/parley.toml" > "$dir/broker.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 100); do
    listening "$port" && break
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.05
  done
  if ! listening "$port"; then
    echo "round $r: parleyd did not start listening on 127.0.0.1:$port; its log:" >&2
    tail -n 20 "$dir/broker.log" >&2
    stop_broker
    rm -rf "$dir"
    return 1
  fi
  # parley-bench stops by itself (its time bounds + a few seconds); timeout is a second line of defence.
  limit=$((secs + 60)); [ "$name" = sync ] && limit=260
  timeout -k 5 "$limit" "${pin_bench[@]}" "$bench" "${args[@]}" --port "$port" --payload 64 \
    --broker-pid "$broker_pid" --json > "$out.json" 2> "$out.err"
  local rc=$?
  stop_broker
  if [ $rc -ne 0 ]; then
    echo "round $r: $name: parley-bench failed (exit $rc): $(tail -n 3 "$out.err")" >&2
    echo "  broker log:" >&2
    tail -n 10 "$dir/broker.log" | sed 's/^/    /' >&2
    rm -f "$out.json"
  fi
  rm -rf "$dir"
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
