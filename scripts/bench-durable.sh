#!/bin/bash
# Durable-publish benchmark, side by side in one command: parleyd with durability "fsync", parleyd with
# durability "batch", and Debian Mosquitto 2.0.11 with persistence on. Same load tool (parley-bench durable:
# 4 publishers, QoS 1, a window of 16 each, 64-byte payloads, 1 persistent subscriber), same machine; the
# broker pinned to CPU 0 and parley-bench to CPU 1. Every run starts its broker fresh on a fresh temporary
# data dir and kills it afterwards; the brokers alternate order each round (shared machines drift).
# Prints one table (acked publishes/s, ack latency p50/p99, lost, broker CPU seconds and RSS per run), the
# medians, and the ratios Parley(fsync)/Mosquitto and Parley(batch)/Mosquitto.
#
# Usage: scripts/bench-durable.sh [ROUNDS] [SECONDS]        (default: 3 rounds of 10 s per broker)
# Environment:
#   PARLEYD, PARLEY_BENCH, BUILD_DIR, NO_BUILD=1  see scripts/bench-lib.sh
#   BENCH_ARGS             extra parley-bench options, e.g. "--qos 2" or "--publishers 8"
# Needs only Debian packages (scripts/deps.sh test installs what is missing: mosquitto, python3, ...).
set -uo pipefail

# parleyd's [storage] section (durability, batch_interval). Set PARLEY_STORAGE_SECTION=0 only for a parleyd
# from before that section existed: the config then omits it, and both Parley runs use the default.
PARLEY_STORAGE_SECTION="${PARLEY_STORAGE_SECTION:-1}"

rounds="${1:-3}"
secs="${2:-10}"
case "$rounds$secs" in *[!0-9]*|"") echo "usage: $0 [ROUNDS] [SECONDS]" >&2; exit 2 ;; esac
if [ "$rounds" -lt 1 ] || [ "$secs" -lt 1 ]; then echo "usage: $0 [ROUNDS] [SECONDS]  (both >= 1)" >&2; exit 2; fi

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
bench_init bench-durable test "$(command -v mosquitto || echo mosquitto)"

# run_one KIND ROUND: one broker, one parley-bench run; the JSON report goes to $work/KIND-ROUND.json.
run_one() {
  local kind=$1 r=$2 port
  case "$kind" in
    fsync|batch)
      port=$([ "$kind" = fsync ] && echo 18851 || echo 18852)
      local storage=()
      if [ "$PARLEY_STORAGE_SECTION" = 1 ]; then
        storage=('[storage]' "durability = \"$kind\"" 'batch_interval = "50ms"')
      fi
      start_parleyd "$port" '[limits]' 'max_queued_messages = 1000000' 'max_queued_bytes = "4GiB"' \
        "${storage[@]}" || { echo "round $r: $kind did not start" >&2; return 1; }
      ;;
    mosquitto)
      port=18853
      start_mosquitto "$port" 'persistence true' 'persistence_location @DIR@/' 'set_tcp_nodelay true' \
        'max_queued_messages 1000000' 'max_inflight_messages 0' ||
        { echo "round $r: mosquitto did not start" >&2; return 1; }
      ;;
  esac
  # shellcheck disable=SC2086
  run_bench "$work/$kind-$r" $((secs + 60)) durable --port "$port" --duration "$secs" --publishers 4 \
    --subscribers 1 --qos 1 --inflight 16 --payload 64 ${BENCH_ARGS:-}
  local rc=$?
  [ $rc -ne 0 ] && echo "round $r: $kind: parley-bench failed" >&2
  stop_broker
  return $rc
}

echo "durable publish: $rounds round(s) x ${secs} s per broker; 4 publishers QoS 1 window 16, 64 B, 1 persistent" \
     "subscriber${BENCH_ARGS:+ (+ $BENCH_ARGS)}; $pinning" >&2
failed=0
order=()
for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then kinds=(fsync batch mosquitto); else kinds=(mosquitto batch fsync); fi
  for k in "${kinds[@]}"; do
    echo "  round $r: $k ..." >&2
    run_one "$k" "$r" || failed=1
    order+=("$k-$r")
  done
done

/usr/bin/python3 - "$work" "$rounds" "${order[@]}" <<'PY'
import json, os, statistics, sys
work, rounds, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
names = {"fsync": "parley fsync", "batch": "parley batch", "mosquitto": "mosquitto"}
cols = [("acked/s", "%.0f"), ("p50 ms", "%.3f"), ("p99 ms", "%.3f"), ("lost", "%d"), ("CPU s", "%.2f"),
        ("CPU s/M", "%.2f"), ("RSS MB", "%.1f")]
rows, by_kind, notes = [], {k: [] for k in names}, []
for run in runs:
    kind, r = run.rsplit("-", 1)
    path = os.path.join(work, run + ".json")
    if not os.path.exists(path):
        rows.append((r, names[kind], None))
        continue
    j = json.load(open(path))
    b = j.get("broker") or {}
    v = [j["acked_per_s"], j["ack_latency"]["p50_us"] / 1e3, j["ack_latency"]["p99_us"] / 1e3, j["lost"],
         b.get("cpu_s", 0.0), b.get("cpu_s_per_million", 0.0), b.get("rss_mb", 0.0)]
    rows.append((r, names[kind], v))
    by_kind[kind].append(v)
    for w in j.get("warnings", []):
        notes.append("round %s, %s: %s" % (r, names[kind], w))

def line(a, b, vals):
    cells = ["%10s" % (f % x) for (h, f), x in zip(cols, vals)]
    return "%-7s %-18s %s" % (a, b, " ".join(cells))

print("%-7s %-18s %s" % ("round", "broker", " ".join("%10s" % h for h, _ in cols)))
for r, n, v in rows:
    print(line(r, n, v) if v else "%-7s %-18s %s" % (r, n, "failed"))
med = {}
for k, vs in by_kind.items():
    if vs:
        med[k] = [statistics.median(c) for c in zip(*vs)]
        print(line("median", names[k], med[k]))
for k in ("fsync", "batch"):
    if k in med and "mosquitto" in med:
        m, p = med["mosquitto"], med[k]
        ratio = [p[i] / m[i] if m[i] else None for i in range(len(cols))]
        ratio[3] = None  # a ratio of lost counts means nothing; see the rows above
        print("%-7s %-18s %s" % ("ratio", names[k] + "/mosq",
              " ".join("%10s" % ("-" if x is None else "%.2f" % x) for x in ratio)))
if notes:
    print()
    for n in notes:
        print("note: " + n)
PY
exit $failed
