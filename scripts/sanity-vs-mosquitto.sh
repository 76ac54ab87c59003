#!/bin/bash
# A side-by-side sanity check of parleyd against Mosquitto with the same client tools, until parley-bench
# (tools/) exists. Point-to-point: one mosquitto_sub (-C N) and one mosquitto_pub (-l, N lines of 64 bytes).
# Brokers are pinned to CPU 0, clients to CPU 1; brokers alternate each round; figures are end-to-end
# messages per second as the subscriber sees them, so they are bounded by the client tools too.
# Also prints each broker's CPU ticks for the whole run and RSS per idle connection.
# Usage: scripts/sanity-vs-mosquitto.sh [ROUNDS] [IDLE_CONNECTIONS]    (needs mosquitto, mosquitto-clients, python3)
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
parleyd="${PARLEYD:-$root/build/broker/main/parleyd}"
rounds="${1:-3}"; idle="${2:-5000}"
ulimit -n 20000
work="$(mktemp -d)"
trap 'kill $mp $pp 2>/dev/null; rm -rf "$work"' EXIT
printf 'listener 18840 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 1000000\nmax_connections -1\nuser root\n' > "$work/mosq.conf"
cat > "$work/parley.toml" <<T
workers = 1
[[listener]]
name = "mqtt"
port = 18841
[limits]
max_queued_messages = 1000000
max_queued_bytes = "4GiB"
T
taskset -c 0 mosquitto -c "$work/mosq.conf" > "$work/mosq.log" 2>&1 & mp=$!
taskset -c 0 "$parleyd" --config "$work/parley.toml" > "$work/parley.log" 2>&1 & pp=$!
sleep 0.5

rate() {  # port qos n -> msg/s
  local port=$1 qos=$2 n=$3
  seq -f "%064g" "$n" > "$work/lines"
  taskset -c 1 mosquitto_sub -p "$port" -t bench/x -q "$qos" -C "$n" > /dev/null & local sub=$!
  sleep 0.3
  local start end; start=$(date +%s.%N)
  taskset -c 1 mosquitto_pub -p "$port" -t bench/x -q "$qos" -l < "$work/lines"
  wait $sub; end=$(date +%s.%N)
  echo "$n / ($end - $start)" | bc
}
printf '%-6s %-5s %12s %12s %7s\n' round qos mosquitto parley ratio
for r in $(seq "$rounds"); do
  for q in 0 1; do
    n=$([ "$q" = 0 ] && echo 100000 || echo 20000)
    m=$(rate 18840 "$q" "$n"); p=$(rate 18841 "$q" "$n")
    printf '%-6s %-5s %12s %12s %7s\n' "$r" "$q" "$m" "$p" "$(echo "scale=2; $p / $m" | bc)"
  done
done
mt=$(awk '{print $14+$15}' /proc/$mp/stat); pt=$(awk '{print $14+$15}' /proc/$pp/stat)
echo "broker CPU ticks for the same messages: mosquitto $mt, parley $pt (ratio $(echo "scale=2; $pt / $mt" | bc))"

cat > "$work/idle.py" <<'PY'
import socket, struct, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    cid = ("idle-%06d" % i).encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(bytes([0x10, len(body)]) + body); socks.append(s)
for s in socks: s.recv(4)
print("ready", flush=True); time.sleep(3)
PY
rss() { awk '/VmRSS/{print $2}' /proc/$1/status; }
per_conn() {  # pid port -> bytes per idle connection
  local before after; before=$(rss "$1")
  /usr/bin/python3 "$work/idle.py" "$2" "$idle" > "$work/idle.out" & local py=$!
  while ! grep -q ready "$work/idle.out" 2>/dev/null; do sleep 0.1; done
  sleep 0.5; after=$(rss "$1"); wait $py
  echo $(( (after - before) * 1024 / idle ))
}
m=$(per_conn $mp 18840); p=$(per_conn $pp 18841)
echo "RSS per idle connection ($idle connections): mosquitto $m B, parley $p B (ratio $(echo "scale=2; $p / $m" | bc))"
