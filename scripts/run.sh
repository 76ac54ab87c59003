#!/bin/bash
# Installs what is missing, builds, and runs parleyd on its embedded default (MQTT on 127.0.0.1:1883).
# Extra arguments go to parleyd, e.g. scripts/run.sh --bind 0.0.0.0   or   scripts/run.sh --config conf/parley.toml
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/deps.sh" build
"$root/scripts/build.sh" "$root/build"
exec "$root/build/broker/main/parleyd" "$@"
