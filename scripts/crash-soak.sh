#!/bin/bash
# Long kill -9 soak: parleyd is SIGKILLed at random moments under QoS 1/2 load and restarted on the same data
# dir, for MINUTES (default 10), then every acknowledged message is checked (tests/crash/crash_test.py).
# Prints a Markdown block to paste into docs/reliability.md; exit code 0 only if nothing acknowledged was lost
# and no QoS 2 message was delivered twice.
#
# Usage: scripts/crash-soak.sh [MINUTES]
#   PARLEYD=path    broker binary (default build/broker/main/parleyd; build it with scripts/build.sh)
#   SEED=n          replay a run (default: time-based, printed)
#   Any further arguments go to crash_test.py, e.g. scripts/crash-soak.sh 30 --publishers 8 --rate 500
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
minutes="${1:-10}"
shift || true
case "$minutes" in
  ''|*[!0-9]*) echo "usage: $0 [MINUTES] [crash_test.py options]" >&2; exit 2 ;;
esac
parleyd="${PARLEYD:-$root/build/broker/main/parleyd}"
if [ ! -x "$parleyd" ]; then
  echo "no parleyd at $parleyd (build it: scripts/build.sh, or set PARLEYD)" >&2
  exit 2
fi
seed="${SEED:-$(date +%s)}"
ulimit -n 4096 2>/dev/null || true

# The rounds run for MINUTES; draining and verification add up to about a minute.
# The round cap is far above what MINUTES allows (each round is >= 0.2 s of traffic plus a restart).
echo "crash soak: $minutes min, parleyd $parleyd, seed $seed (progress on stderr)" >&2
exec /usr/bin/python3 "$root/tests/crash/crash_test.py" \
  --parleyd "$parleyd" --seed "$seed" \
  --duration "$((minutes * 60))" --rounds 100000 --seconds 8 \
  --publishers 6 --subscribers 4 --rate 200 \
  --drain-timeout 120 --drain-idle 15 \
  --markdown "$@"
