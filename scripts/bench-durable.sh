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
#   PARLEYD, PARLEY_BENCH  binaries (default: build/broker/main/parleyd, build/tools/bench/parley-bench)
#   NO_BUILD=1             do not run `cmake --build build --target parleyd parley-bench` first
#   BENCH_ARGS             extra parley-bench options, e.g. "--qos 2" or "--publishers 8"
# Needs only Debian packages (scripts/deps.sh test installs what is missing: mosquitto, python3, ...).
set -uo pipefail

# parleyd's [storage] section (durability, batch_interval). Set PARLEY_STORAGE_SECTION=0 only for a parleyd
# from before that section existed: the config then omits it, and both Parley runs use the default.
PARLEY_STORAGE_SECTION="${PARLEY_STORAGE_SECTION:-1}"

root="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${1:-3}"
secs="${2:-10}"
case "$rounds$secs" in *[!0-9]*|"") echo "usage: $0 [ROUNDS] [SECONDS]" >&2; exit 2 ;; esac
if [ "$rounds" -lt 1 ] || [ "$secs" -lt 1 ]; then echo "usage: $0 [ROUNDS] [SECONDS]  (both >= 1)" >&2; exit 2; fi

if [ -x "$root/scripts/deps.sh" ]; then "$root/scripts/deps.sh" test >&2 || exit 1; fi
parleyd="${PARLEYD:-$root/build/broker/main/parleyd}"
bench="${PARLEY_BENCH:-$root/build/tools/bench/parley-bench}"
if [ "${NO_BUILD:-0}" != 1 ]; then
  if [ -f "$root/build/CMakeCache.txt" ]; then
    cmake --build "$root/build" -j "$(nproc)" --target parleyd parley-bench >&2 || exit 1
  else
    "$root/scripts/build.sh" "$root/build" >&2 || exit 1
  fi
fi
for b in "$parleyd" "$bench" "$(command -v mosquitto)"; do
  [ -x "$b" ] || { echo "missing executable: ${b:-mosquitto}" >&2; exit 1; }
done

if [ "$(nproc)" -ge 2 ]; then
  pin_broker=(taskset -c 0); pin_bench=(taskset -c 1); pinning="broker on CPU 0, parley-bench on CPU 1"
else
  pin_broker=(); pin_bench=(); pinning="one CPU: no pinning (figures less comparable)"
fi

work="$(mktemp -d -t parley-bench-durable.XXXXXX)"
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

# run_one KIND ROUND: one broker, one parley-bench run; the JSON report goes to $work/KIND-ROUND.json.
run_one() {
  local kind=$1 r=$2 port dir out
  dir="$(mktemp -d "$work/$kind.XXXXXX")"
  out="$work/$kind-$r"
  case "$kind" in
    fsync|batch)
      port=$([ "$kind" = fsync ] && echo 18851 || echo 18852)
      mkdir -p "$dir/data"
      {
        echo 'workers = 1'
        echo "data_dir = \"$dir/data\""
        echo '[[listener]]'
        echo 'name = "mqtt"'
        echo 'bind = "127.0.0.1"'
        echo "port = $port"
        echo '[limits]'
        echo 'max_queued_messages = 1000000'
        echo 'max_queued_bytes = "4GiB"'
        if [ "$PARLEY_STORAGE_SECTION" = 1 ]; then
          echo '[storage]'
          echo "durability = \"$kind\""
          echo 'batch_interval = "50ms"'
        fi
      } > "$dir/parley.toml"
      "${pin_broker[@]}" "$parleyd" --config "$dir/parley.toml" > "$dir/broker.log" 2>&1 &
      ;;
    mosquitto)
      port=18853
      cat > "$dir/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $dir/
set_tcp_nodelay true
max_queued_messages 1000000
max_inflight_messages 0
user $(id -un)
EOF
      "${pin_broker[@]}" mosquitto -c "$dir/mosquitto.conf" > "$dir/broker.log" 2>&1 &
      ;;
  esac
  broker_pid=$!
  for _ in $(seq 100); do
    listening "$port" && break
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.05
  done
  if ! listening "$port"; then
    echo "round $r: $kind did not start listening on 127.0.0.1:$port; its log:" >&2
    tail -n 20 "$dir/broker.log" >&2
    stop_broker
    rm -rf "$dir"
    return 1
  fi
  # parley-bench stops by itself (duration + grace + a few seconds); timeout is a second line of defence.
  # shellcheck disable=SC2086
  timeout -k 5 $((secs + 60)) "${pin_bench[@]}" "$bench" durable --port "$port" --duration "$secs" \
    --publishers 4 --subscribers 1 --qos 1 --inflight 16 --payload 64 --broker-pid "$broker_pid" --json \
    ${BENCH_ARGS:-} > "$out.json" 2> "$out.err"
  local rc=$?
  stop_broker
  if [ $rc -ne 0 ]; then
    echo "round $r: $kind: parley-bench failed (exit $rc): $(tail -n 3 "$out.err")" >&2
    echo "  broker log:" >&2
    tail -n 10 "$dir/broker.log" | sed 's/^/    /' >&2
    rm -f "$out.json"
  fi
  rm -rf "$dir"
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
