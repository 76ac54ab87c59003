#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (ASan + UBSan) and runs each for N minutes.
#
#   scripts/fuzz.sh [MINUTES] [TARGET...]     MINUTES defaults to 10; TARGETs default to every fuzz_* target
#
# Each target starts from a scratch copy of its seed corpus, tests/fuzz/corpus/<name>, where <name> is the
# target name without "fuzz_" (fuzz_mqtt_decoder -> mqtt_decoder, else its first word: mqtt), and gets
# tests/fuzz/corpus/<name>.dict as its libFuzzer dictionary (-dict) when there is one. The seed corpus in
# the tree is never modified; the scratch directory (new inputs, crash artifacts, logs) is printed at the
# end so interesting inputs can be minimised and committed by hand.
#
# Environment:
#   PARLEY_FUZZ_BUILD    build directory (default: build-fuzz in the tree)
#   PARLEY_FUZZ_TIMEOUT  seconds one input may run before libFuzzer reports a hang (default: 25)
#   PARLEY_FUZZ_ARGS     extra libFuzzer flags, e.g. "-jobs=2" or "-fork=1 -ignore_crashes=1"
# Exit status: 0 if no target crashed, 1 otherwise.
set -euo pipefail

minutes="${1:-10}"
shift || true
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || [ "$minutes" -eq 0 ]; then
  echo "usage: $0 [MINUTES] [TARGET...]" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${PARLEY_FUZZ_BUILD:-$root/build-fuzz}"
timeout="${PARLEY_FUZZ_TIMEOUT:-25}"
read -r -a extra_args <<<"${PARLEY_FUZZ_ARGS:-}"
# UBSan findings are recoverable in this build: without halt_on_error they are printed and fuzzing goes on,
# so libFuzzer never reports them. Make them crashes (an explicit UBSAN_OPTIONS wins).
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARLEY_FUZZ=ON -DPARLEY_TESTS=ON >/dev/null

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(ninja -C "$build" -t targets all | sed -n 's/^\(fuzz_[A-Za-z0-9_]*\): .*/\1/p' | sort -u)
fi
if [ "${#targets[@]}" -eq 0 ]; then
  echo "no fuzz targets found in $build" >&2
  exit 2
fi
cmake --build "$build" --target "${targets[@]}"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/parley-fuzz.XXXXXX")"
status=0
for target in "${targets[@]}"; do
  name="${target#fuzz_}"
  work="$scratch/$target"
  mkdir -p "$work/corpus" "$work/artifacts"
  dict_args=()
  for candidate in "$name" "${name%%_*}"; do
    if [ -d "$root/tests/fuzz/corpus/$candidate" ]; then
      cp -r "$root/tests/fuzz/corpus/$candidate/." "$work/corpus/"
      [ -f "$root/tests/fuzz/corpus/$candidate.dict" ] && dict_args=(-dict="$root/tests/fuzz/corpus/$candidate.dict")
      break
    fi
  done
  seeds=$(find "$work/corpus" -type f | wc -l)
  binary="$(find "$build" -type f -name "$target" -perm -u+x | head -n 1)"
  if [ -z "$binary" ]; then
    echo "!! $target: binary not found under $build" >&2
    status=1
    continue
  fi
  echo "== $target: $minutes min, $seeds seeds${dict_args:+, ${dict_args[0]#-dict=}}, work dir $work"
  if ! "$binary" -max_total_time=$((minutes * 60)) -timeout="$timeout" -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/" "${dict_args[@]}" "${extra_args[@]}" "$work/corpus" \
      >"$work/log.txt" 2>&1; then
    status=1
    echo "!! $target FAILED; see $work/log.txt and $work/artifacts/"
    grep -E '^(==[0-9]+== ?ERROR|SUMMARY|[a-z_]+_fuzz: )' "$work/log.txt" | head -n 5 | sed 's/^/   /' || true
    find "$work/artifacts" -type f | sed 's/^/   artifact: /'
  fi
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added' \
    "$work/log.txt" | sed 's/^/   /' || true
done
echo "scratch directory: $scratch"
exit "$status"
