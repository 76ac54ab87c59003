#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (ASan + UBSan) and runs each for N minutes.
#
#   scripts/fuzz.sh [MINUTES] [TARGET...]     MINUTES defaults to 10; TARGETs default to every fuzz_* target
#
# Each target starts from a scratch copy of its seed corpus, tests/fuzz/corpus/<name>, where <name> is the
# target name without "fuzz_" (fuzz_mqtt_decoder -> mqtt_decoder, else its first word: mqtt). The seed
# corpus in the tree is never modified; the scratch directory (new inputs, crash artifacts, logs) is
# printed at the end so interesting inputs can be minimised and committed by hand.
# Exit status: 0 if no target crashed, 1 otherwise.
set -euo pipefail

minutes="${1:-10}"
shift || true
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || [ "$minutes" -eq 0 ]; then
  echo "usage: $0 [MINUTES] [TARGET...]" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"

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
  for candidate in "$name" "${name%%_*}"; do
    if [ -d "$root/tests/fuzz/corpus/$candidate" ]; then
      cp -r "$root/tests/fuzz/corpus/$candidate/." "$work/corpus/"
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
  echo "== $target: $minutes min, $seeds seeds, work dir $work"
  if ! "$binary" -max_total_time=$((minutes * 60)) -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log.txt" 2>&1; then
    status=1
    echo "!! $target FAILED; see $work/log.txt and $work/artifacts/"
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added' \
    "$work/log.txt" | sed 's/^/   /' || true
done
echo "scratch directory: $scratch"
exit "$status"
