#!/bin/bash
# Runs the Eclipse Paho MQTT interoperability suites (3.1.1 and 5.0) against parleyd.
# The suite is not part of this repository: pass the path of its `interoperability` folder, e.g. from
#   git clone https://github.com/eclipse/paho.mqtt.testing  (or any copy of it).
# Usage: tests/interop/run_paho.sh SUITE_DIR [PARLEYD] [PORT]
#   SUITE_DIR  the paho.mqtt.testing/interoperability directory
#   PARLEYD    the broker binary (default: build/broker/main/parleyd)
#   PORT       port to run the broker on (default 18883)
# Each test runs in its own process under a timeout (some tests wait forever on a broken broker).
# Prints one line per test and a summary "N passed, M failed"; exits non-zero if any failed.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
suite="${1:?usage: run_paho.sh SUITE_DIR [PARLEYD] [PORT]}"
parleyd="${2:-$root/build/broker/main/parleyd}"
port="${3:-18883}"
per_test_timeout="${PAHO_TEST_TIMEOUT:-90}"
only="${PAHO_ONLY:-}"   # optional: run only tests whose name contains this string

work="$(mktemp -d)"
trap 'kill $broker_pid 2>/dev/null; wait $broker_pid 2>/dev/null; rm -rf "$work"' EXIT
"$parleyd" --config "$root/conf/interop.toml" --port "$port" --data-dir "$work/data" >"$work/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 50); do
  (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  sleep 0.1
done

passed=0; failed=0; failed_names=()
for module in client_test client_test5; do
  tests=$(grep -oE '^    def (test[A-Za-z0-9_]*)' "$suite/$module.py" | awk '{print $2}')
  for t in $tests; do
    [ -n "$only" ] && [[ "$t" != *"$only"* ]] && continue
    start=$(date +%s)
    if timeout "$per_test_timeout" /usr/bin/python3 "$here/paho_runner.py" "$suite" "$module" "$t" 127.0.0.1 "$port" \
        >"$work/$module.$t.log" 2>&1; then
      status=PASS; passed=$((passed + 1))
    else
      status=FAIL; failed=$((failed + 1)); failed_names+=("$module.$t")
      tail -n 30 "$work/$module.$t.log" | sed 's/^/    /'
    fi
    printf '%-6s %-14s %-34s %3ss\n' "$status" "$module" "$t" "$(( $(date +%s) - start ))"
    if ! kill -0 $broker_pid 2>/dev/null; then
      echo "broker died; log:"; tail -n 50 "$work/broker.log"; exit 1
    fi
  done
done
echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "paho interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
