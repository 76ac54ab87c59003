#!/bin/bash
# Parley against Debian's Mosquitto 2.0.11, side by side in one command: every scenario below runs with the
# same load tool (parley-bench), the same settings and the same pinning (broker on CPU 0, parley-bench on CPU
# 1), the brokers alternating order each round; each run gets a fresh broker. Prints, per scenario, every run,
# the medians and the ratios Parley / Mosquitto, then how the ratios compare with the performance targets
# (docs/performance.md).
#
# Usage: scripts/bench-mqtt.sh [ROUNDS] [SECONDS]     (default: 3 rounds, 10 s of publishing per run)
# Environment:
#   SCENARIOS     which scenarios, in order (default: all of them; see `scenario_args` below)
#   BENCH_ARGS    extra parley-bench options for every run, e.g. "--mqtt-version 3"
#   CONNECTIONS   connections in the conns scenarios (default 19000: the open-file limit is 20,000 per process)
#   BUILD_DIR, NO_BUILD=1, PARLEYD, PARLEY_BENCH   see scripts/bench-lib.sh
#   KEEP=DIR      also copy every run's JSON report into DIR
# Broker settings (the same limits for both; neither persists anything: these clients keep no session):
#   parleyd    workers = 1, [storage] enabled = false, [im] enabled = false, [limits] max_queued_messages =
#              1000000, max_queued_bytes = "4GiB", max_inflight = 1000, receive_maximum = 1000
#   mosquitto  set_tcp_nodelay true, max_queued_messages 1000000, max_inflight_messages 1000,
#              max_connections -1, persistence false (its default)
set -uo pipefail

rounds="${1:-3}"
secs="${2:-10}"
case "$rounds$secs" in *[!0-9]*|"") echo "usage: $0 [ROUNDS] [SECONDS]" >&2; exit 2 ;; esac
if [ "$rounds" -lt 1 ] || [ "$secs" -lt 1 ]; then echo "usage: $0 [ROUNDS] [SECONDS]  (both >= 1)" >&2; exit 2; fi
conns="${CONNECTIONS:-19000}"

# name -> parley-bench subcommand and options (the run's --duration and --port are added).
declare -A scenario_args=(
  [p2p-q0]="p2p --pairs 10 --qos 0 --inflight 64"
  [p2p-q1]="p2p --pairs 10 --qos 1 --inflight 64"
  [p2p-q2]="p2p --pairs 10 --qos 2 --inflight 64"
  [fanin-q0]="fanin --publishers 10 --qos 0 --inflight 64"
  [fanin-q1]="fanin --publishers 10 --qos 1 --inflight 64"
  [fanout-q0]="fanout --subscribers 100 --qos 0 --inflight 64"
  [fanout-q1]="fanout --subscribers 100 --qos 1 --inflight 64"
  [shared-q1]="shared --publishers 4 --subscribers 4 --qos 1 --inflight 64"
  [p2p-q1-4k]="p2p --pairs 10 --qos 1 --inflight 64 --payload 4096"
  [latency-p2p-q1]="p2p --pairs 10 --qos 1 --inflight 64 --rate 2000"
  [latency-fanout-q0]="fanout --subscribers 100 --qos 0 --inflight 64 --rate 100"
  [conns-v3]="conns --connections $conns --source 127.0.0.1-4 --hold 10 --mqtt-version 3"
  [conns-v5-sub]="conns --connections $conns --source 127.0.0.1-4 --hold 10 --mqtt-version 5 --subscribe"
)
default_order="p2p-q0 p2p-q1 p2p-q2 fanin-q0 fanin-q1 fanout-q0 fanout-q1 shared-q1 p2p-q1-4k latency-p2p-q1
latency-fanout-q0 conns-v3 conns-v5-sub"
read -r -d '' -a scenarios <<< "${SCENARIOS:-$default_order}"
for s in "${scenarios[@]}"; do
  [ -n "${scenario_args[$s]+x}" ] || { echo "unknown scenario in SCENARIOS: $s (known: ${default_order//$'\n'/ })" >&2; exit 2; }
done

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
bench_init bench-mqtt test "$(command -v mosquitto || echo mosquitto)"

parley_conf=('[limits]' 'max_queued_messages = 1000000' 'max_queued_bytes = "4GiB"' 'max_inflight = 1000'
             'receive_maximum = 1000' '[storage]' 'enabled = false' '[im]' 'enabled = false')
mosquitto_conf=('set_tcp_nodelay true' 'max_queued_messages 1000000' 'max_inflight_messages 1000'
                'max_connections -1' 'persistence false')

# run_one SCENARIO BROKER ROUND
run_one() {
  local s=$1 b=$2 r=$3 port limit
  if [ "$b" = parley ]; then
    port=18871
    start_parleyd "$port" "${parley_conf[@]}" || return 1
  else
    port=18872
    start_mosquitto "$port" "${mosquitto_conf[@]}" || return 1
  fi
  local timing=(--duration "$secs")
  case "$s" in conns*) timing=() ;; esac  # a ramp and a hold, bounded by their own options
  limit=$((secs + 90))
  # shellcheck disable=SC2086  # the scenario's options are words
  run_bench "$work/${s}__${b}__${r}" "$limit" ${scenario_args[$s]} "${timing[@]}" --port "$port" ${BENCH_ARGS:-}
  local rc=$?
  stop_broker
  return $rc
}

echo "parley vs mosquitto: ${#scenarios[@]} scenario(s), $rounds round(s) x ${secs} s; $pinning" >&2
failed=0
runs=()
for s in "${scenarios[@]}"; do
  for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then brokers=(parley mosquitto); else brokers=(mosquitto parley); fi
    for b in "${brokers[@]}"; do
      echo "  $s, round $r: $b ..." >&2
      run_one "$s" "$b" "$r" || failed=1
      runs+=("$s/$b/$r")
    done
  done
done
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$work"/*.json "$KEEP"/ 2>/dev/null; fi

/usr/bin/python3 - "$work" "${runs[@]}" <<'PY'
import json, os, statistics, sys

work, runs = sys.argv[1], sys.argv[2:]
load = lambda s, b, r: (json.load(open(p)) if os.path.exists(p := os.path.join(work, "%s__%s__%s.json" % (s, b, r)))
                        else None)
order, by = [], {}
for run in runs:
    s, b, r = run.split("/")
    if s not in by:
        order.append(s)
        by[s] = {"parley": [], "mosquitto": [], "rows": []}
    j = load(s, b, r)
    by[s]["rows"].append((r, b, j))
    if j:
        by[s][b].append(j)

def ms(lat, k):
    return lat[k] / 1e3 if lat and lat.get("count") else float("nan")

# Columns of the message scenarios: (header, format, value from a report).
def cpu_us_per(j):
    n = j.get("delivered") or 0
    b = j.get("broker") or {}
    return b.get("cpu_s", 0.0) / n * 1e6 if n else float("nan")

msg_cols = [
    ("acked/s", "%.0f", lambda j: j["acked_per_s"]),
    ("deliv/s", "%.0f", lambda j: j["delivered_per_s"]),
    ("lost", "%d", lambda j: j["lost"]),
    ("dup", "%d", lambda j: j["duplicates"]),
    ("p50 ms", "%.3f", lambda j: ms(j["e2e_latency"], "p50_us")),
    ("p99 ms", "%.3f", lambda j: ms(j["e2e_latency"], "p99_us")),
    ("p999 ms", "%.3f", lambda j: ms(j["e2e_latency"], "p999_us")),
    ("CPU s", "%.2f", lambda j: (j.get("broker") or {}).get("cpu_s", float("nan"))),
    ("CPU us/dl", "%.2f", cpu_us_per),
    ("RSS MB", "%.1f", lambda j: (j.get("broker") or {}).get("rss_mb", float("nan"))),
    ("tool CPU", "%.2f", lambda j: j.get("bench_cpu_s", float("nan"))),
]
conn_cols = [
    ("conns", "%d", lambda j: j["established"]),
    ("refused", "%d", lambda j: j["refused"]),
    ("dropped", "%d", lambda j: j["dropped_hold"] + j["dropped_ramp"]),
    ("conn/s", "%.0f", lambda j: j["established_per_s"]),
    ("p50 ms", "%.3f", lambda j: ms(j["connect_latency"], "p50_us")),
    ("p99 ms", "%.3f", lambda j: ms(j["connect_latency"], "p99_us")),
    ("p999 ms", "%.3f", lambda j: ms(j["connect_latency"], "p999_us")),
    ("B/conn", "%.0f", lambda j: (j.get("broker") or {}).get("rss_bytes_per_connection", float("nan"))),
    ("RSS MB", "%.1f", lambda j: (j.get("broker") or {}).get("rss_mb_end_of_hold", float("nan"))),
    ("CPU ramp", "%.2f", lambda j: (j.get("broker") or {}).get("cpu_s_ramp", float("nan"))),
    ("CPU hold", "%.3f", lambda j: (j.get("broker") or {}).get("cpu_s_hold", float("nan"))),
]
# Ratios worth printing: column -> lower is better?
msg_ratio = {"acked/s", "deliv/s", "p50 ms", "p99 ms", "p999 ms", "CPU us/dl", "RSS MB"}
conn_ratio = {"conn/s", "p50 ms", "p99 ms", "p999 ms", "B/conn", "CPU ramp"}

def fmt(f, x):
    return "-" if x is None or x != x else f % x

medians, notes = {}, []
for s in order:
    d = by[s]
    conns = s.startswith("conns")
    cols, want = (conn_cols, conn_ratio) if conns else (msg_cols, msg_ratio)
    print("\n== %s" % s)
    print("%-7s %-10s %s" % ("round", "broker", " ".join("%10s" % h for h, _, _ in cols)))
    for r, b, j in d["rows"]:
        if j is None:
            print("%-7s %-10s failed" % (r, b))
            continue
        print("%-7s %-10s %s" % (r, b, " ".join("%10s" % fmt(f, v(j)) for _, f, v in cols)))
        for w in j.get("warnings", []):
            notes.append("%s, round %s, %s: %s" % (s, r, b, w))
    med = {}
    for b in ("parley", "mosquitto"):
        if d[b]:
            med[b] = [statistics.median([v(j) for j in d[b]]) for _, _, v in cols]
            print("%-7s %-10s %s" % ("median", b, " ".join("%10s" % fmt(f, x) for (_, f, _), x in zip(cols, med[b]))))
    if len(med) == 2:
        ratio = [p / m if (h in want and m) else None for (h, _, _), p, m in zip(cols, med["parley"], med["mosquitto"])]
        print("%-7s %-10s %s" % ("ratio", "P/M", " ".join("%10s" % fmt("%.2f", x) for x in ratio)))
        medians[s] = {h: (p, m, x) for (h, _, _), p, m, x in zip(cols, med["parley"], med["mosquitto"], ratio)}

# The targets (docs/performance.md): throughput >= 2x, CPU per delivery <= 0.5x, p99 at a paced rate <= 1x,
# memory per idle connection <= 1.5x, every connection held.
print("\n== targets (Parley / Mosquitto, medians)")
def target(name, s, col, ok):
    if s not in medians:
        return
    p, m, x = medians[s][col]
    print("%-48s %-18s %8s  %s" % (name, s, fmt("%.2f", x), "ok" if x is not None and ok(x) else "MISSED"))
for s in ("p2p-q0", "p2p-q1", "fanin-q0", "fanin-q1", "fanout-q0", "fanout-q1"):
    target("throughput (deliveries/s) >= 2x", s, "deliv/s", lambda x: x >= 2)
for s in order:
    if not s.startswith("conns") and not s.startswith("latency"):
        target("broker CPU per delivery <= 0.5x", s, "CPU us/dl", lambda x: x <= 0.5)
for s in order:
    if s.startswith("latency"):
        target("p99 latency at a rate both sustain <= 1x", s, "p99 ms", lambda x: x <= 1)
for s in order:
    if s.startswith("conns"):
        target("memory per idle connection <= 1.5x", s, "B/conn", lambda x: x <= 1.5)
        if s not in medians:
            continue
        p, m, _ = medians[s]["conns"]
        print("%-48s %-18s %8s  %s" % ("connections held (Parley, Mosquitto)", s, "%d,%d" % (p, m), ""))
if notes:
    print()
    for n in notes:
        print("note: " + n)
PY
exit $failed
