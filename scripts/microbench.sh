#!/bin/bash
# Micro-benchmarks in one command: builds codec_bench and topic_tree_bench (Google Benchmark; sources beside
# the tests of the same code, tests/unit/codec/codec_bench.cc and tests/unit/core/topic_tree_bench.cc) and runs
# both, pinned to CPU 1 when the machine has two or more. Prints Google Benchmark's tables: wall and CPU time
# per operation, bytes/s, items/s, allocs/op (heap allocations per operation) and matches/op.
#
# No Mosquitto counterpart, so no ratio: the figures are absolute and drift ±20 % on a shared machine.
# Compare runs made back to back on one machine (before and after a change), not figures from elsewhere.
# "Library was built as DEBUG" comes from Debian's build of libbenchmark itself, not from Parley's code.
#
# Usage: scripts/microbench.sh [FILTER] [benchmark options...]
#   FILTER  regex of the cases to run (--benchmark_filter), e.g. 'DecodePublish/v:5|FanOut'; default: all
#   the options after it go to both binaries, e.g. --benchmark_repetitions=5 --benchmark_report_aggregates_only
# Environment:
#   BUILD_DIR  build directory (default: build); configured with -DPARLEY_MICROBENCH=ON if it is not yet
#   NO_BUILD=1 run the binaries already in BUILD_DIR
#   MIN_TIME   seconds per case (--benchmark_min_time; default 0.5)
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
filter="${1:-.}"
shift || true
min_time="${MIN_TIME:-0.5}"
build="${BUILD_DIR:-$root/build}"
cache="$build/CMakeCache.txt"

cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$cache" 2>/dev/null; }

if [ "${NO_BUILD:-0}" != 1 ]; then
  if [ -x "$root/scripts/deps.sh" ]; then "$root/scripts/deps.sh" build >&2 || exit 1; fi
  if [ -f "$cache" ]; then
    if [ "$(cache_value PARLEY_SANITIZE)" = ON ] || [ "$(cache_value PARLEY_TSAN)" = ON ] ||
       [ "$(cache_value PARLEY_FUZZ)" = ON ]; then
      echo "$build is a sanitizer build: its timings would mean nothing; set BUILD_DIR to a plain build" >&2
      exit 1
    fi
    if [ "$(cache_value PARLEY_MICROBENCH)" != ON ]; then
      cmake -S "$root" -B "$build" -DPARLEY_MICROBENCH=ON >/dev/null || exit 1
    fi
  else
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARLEY_MICROBENCH=ON >/dev/null ||
      exit 1
  fi
  cmake --build "$build" -j "$(nproc)" --target codec_bench topic_tree_bench >&2 || exit 1
fi
case "$(cache_value CMAKE_BUILD_TYPE)" in
  Release|RelWithDebInfo) ;;
  *) echo "warning: $build is a '$(cache_value CMAKE_BUILD_TYPE)' build, not an optimised one" >&2 ;;
esac

if [ "$(nproc)" -ge 2 ]; then
  pin=(taskset -c 1); pinning="pinned to CPU 1"
else
  pin=(); pinning="one CPU: not pinned"
fi
echo "# micro-benchmarks $(date -u '+%Y-%m-%d %H:%M UTC'), $(git -C "$root" describe --always --dirty 2>/dev/null)," \
     "$(basename "$build"), $pinning, load $(cut -d' ' -f1-3 /proc/loadavg)"

status=0
ran=0
for bin in "$build/tests/codec_bench" "$build/tests/topic_tree_bench"; do
  [ -x "$bin" ] || { echo "missing executable: $bin" >&2; exit 1; }
  # Skip a binary none of whose cases the filter selects (Google Benchmark would call that an error).
  if [ -z "$("$bin" --benchmark_list_tests=true --benchmark_filter="$filter" 2>/dev/null)" ]; then continue; fi
  echo
  echo "## $(basename "$bin")"
  "${pin[@]}" "$bin" --benchmark_filter="$filter" --benchmark_min_time="$min_time" "$@" || status=1
  ran=1
done
if [ "$ran" = 0 ]; then echo "no case matches '$filter'" >&2; exit 2; fi
exit $status
