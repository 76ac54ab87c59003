# Shared by the side-by-side benchmark scripts (bench-mqtt.sh, bench-durable.sh, bench-im.sh); source it.
# It builds (unless NO_BUILD=1) and finds the binaries, pins brokers to CPU 0 and parley-bench to CPU 1,
# starts one broker at a time on a fresh temporary data dir and loopback port, and stops it afterwards.
#
# Environment it reads:
#   BUILD_DIR              build directory (default: build)
#   NO_BUILD=1             do not run `cmake --build $BUILD_DIR --target parleyd parley-bench` first
#   PARLEYD, PARLEY_BENCH  binaries (default: $BUILD_DIR/broker/main/parleyd, $BUILD_DIR/tools/bench/parley-bench)
# After bench_init: $root, $parleyd, $bench, $work (removed on exit), pin_broker / pin_bench (arrays), $pinning.
# shellcheck shell=bash
# shellcheck disable=SC2034  # $pinning, $root and friends are read by the scripts that source this

# bench_init NAME DEPS_SET [EXTRA_EXECUTABLE...]: installs what is missing (scripts/deps.sh DEPS_SET), builds,
# checks the executables, and makes the work dir.
bench_init() {
  local name=$1 deps=$2
  shift 2
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [ -x "$root/scripts/deps.sh" ]; then "$root/scripts/deps.sh" "$deps" >&2 || exit 1; fi
  local build="${BUILD_DIR:-$root/build}"
  parleyd="${PARLEYD:-$build/broker/main/parleyd}"
  bench="${PARLEY_BENCH:-$build/tools/bench/parley-bench}"
  if [ "${NO_BUILD:-0}" != 1 ]; then
    if [ -f "$build/CMakeCache.txt" ]; then
      cmake --build "$build" -j "$(nproc)" --target parleyd parley-bench >&2 || exit 1
    else
      "$root/scripts/build.sh" "$build" >&2 || exit 1
    fi
  fi
  local b
  for b in "$parleyd" "$bench" /usr/bin/python3 "$@"; do
    [ -x "$b" ] || { echo "missing executable: $b" >&2; exit 1; }
  done
  if [ "$(nproc)" -ge 2 ]; then
    pin_broker=(taskset -c 0); pin_bench=(taskset -c 1); pinning="broker on CPU 0, parley-bench on CPU 1"
  else
    pin_broker=(); pin_bench=(); pinning="one CPU: no pinning (figures less comparable)"
  fi
  # The connection scenarios hold up to ~20,000 sockets in each process.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  work="$(mktemp -d -t "parley-$name.XXXXXX")"
  broker_pid=""
  broker_dir=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

# shellcheck disable=SC2317  # called by the EXIT trap
bench_cleanup() {
  if [ -n "$broker_pid" ]; then kill -KILL "$broker_pid" 2>/dev/null; wait "$broker_pid" 2>/dev/null; fi
  rm -rf "$work"
}

# True once something listens on 127.0.0.1:PORT (read from /proc: no probe connection to the broker).
bench_listening() {
  local hex; hex=$(printf '%04X' "$1")
  grep -q " 0100007F:$hex 00000000:0000 0A" /proc/net/tcp 2>/dev/null
}

# start_parleyd PORT [TOML_LINE...]: parleyd with one worker, a fresh data dir and one listener on
# 127.0.0.1:PORT; each further argument is a line of its config appended after the listener (so tables such
# as "[limits]" may follow). Sets broker_pid and broker_dir. Returns 1 (after printing its log) if it does not
# listen within 5 s. In every line, @DIR@ stands for the broker's own temporary directory.
start_parleyd() {
  local port=$1
  shift
  broker_dir="$(mktemp -d "$work/parleyd.XXXXXX")"
  mkdir -p "$broker_dir/data"
  {
    echo 'workers = 1'
    echo "data_dir = \"$broker_dir/data\""
    echo '[[listener]]'
    echo 'name = "mqtt"'
    echo 'bind = "127.0.0.1"'
    echo "port = $port"
    local line
    for line in "$@"; do echo "${line//@DIR@/$broker_dir}"; done
  } > "$broker_dir/parley.toml"
  "${pin_broker[@]}" "$parleyd" --config "$broker_dir/parley.toml" > "$broker_dir/broker.log" 2>&1 &
  broker_pid=$!
  bench_wait_listening "$port" parleyd
}

# start_mosquitto PORT [CONF_LINE...]: Debian's mosquitto on 127.0.0.1:PORT, anonymous, with the given lines
# (@DIR@ as above).
start_mosquitto() {
  local port=$1
  shift
  broker_dir="$(mktemp -d "$work/mosquitto.XXXXXX")"
  {
    echo "listener $port 127.0.0.1"
    echo 'allow_anonymous true'
    echo "user $(id -un)"
    local line
    for line in "$@"; do echo "${line//@DIR@/$broker_dir}"; done
  } > "$broker_dir/mosquitto.conf"
  "${pin_broker[@]}" mosquitto -c "$broker_dir/mosquitto.conf" > "$broker_dir/broker.log" 2>&1 &
  broker_pid=$!
  bench_wait_listening "$port" mosquitto
}

bench_wait_listening() {
  local port=$1 what=$2
  for _ in $(seq 100); do
    bench_listening "$port" && return 0
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "$what did not start listening on 127.0.0.1:$port; its log:" >&2
  tail -n 20 "$broker_dir/broker.log" >&2
  stop_broker
  return 1
}

# Stops the running broker (SIGTERM, SIGKILL after 5 s) and removes its directory.
stop_broker() {
  if [ -n "$broker_pid" ]; then
    kill -TERM "$broker_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$broker_pid" 2>/dev/null; then
      echo "  (broker pid $broker_pid ignored SIGTERM for 5 s; killed)" >&2
      kill -KILL "$broker_pid" 2>/dev/null
    fi
    wait "$broker_pid" 2>/dev/null
  fi
  broker_pid=""
  [ -n "$broker_dir" ] && rm -rf "$broker_dir"
  broker_dir=""
}

# run_bench OUT TIMEOUT_S ARGS...: parley-bench ARGS --broker-pid PID --json, pinned; the JSON report goes to
# OUT.json, stderr to OUT.err. parley-bench stops by itself; `timeout` is a second line of defence. On failure
# prints the tool's last lines and the broker's log tail and removes OUT.json.
run_bench() {
  local out=$1 limit=$2
  shift 2
  timeout -k 5 "$limit" "${pin_bench[@]}" "$bench" "$@" --broker-pid "$broker_pid" --json > "$out.json" 2> "$out.err"
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "    parley-bench failed (exit $rc): $(tail -n 3 "$out.err")" >&2
    if [ -n "$broker_dir" ] && [ -f "$broker_dir/broker.log" ]; then
      echo "    broker log:" >&2
      tail -n 10 "$broker_dir/broker.log" | sed 's/^/      /' >&2
    fi
    rm -f "$out.json"
  fi
  return $rc
}
