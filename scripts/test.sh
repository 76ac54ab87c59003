#!/bin/bash
# Installs what is missing, builds, and runs every test: unit tests and broker tests with real clients,
# first in a normal build, then again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Usage: scripts/test.sh [--no-sanitize]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/deps.sh" test
ulimit -n 20000 2>/dev/null || true

run_suite() {
  local dir="$1"; shift
  echo "=== build $dir $*"
  "$root/scripts/build.sh" "$dir" "$@"
  echo "=== test $dir"
  (cd "$dir" && ctest --output-on-failure --timeout 1800)
}

run_suite "$root/build"
if [ "${1:-}" != "--no-sanitize" ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # tools/ (parley-bench) has no tests: not rebuilt under the sanitizers.
  run_suite "$root/build-asan" -DPARLEY_SANITIZE=ON -DPARLEY_TOOLS=OFF
fi
echo "all test suites passed"
