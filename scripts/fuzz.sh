#!/usr/bin/env bash
# Builds envit's libFuzzer harnesses with clang (ASan + UBSan) in build-fuzz/ and runs each for
# SECONDS seconds on a copy of its seed corpus (tests/fuzz/corpus/<harness>), one process per
# harness, PARALLEL harnesses at a time. Fails if any harness finds a crash, leak or timeout;
# the reproducer is kept in build-fuzz/findings/<harness>/. Each harness's last libFuzzer line
# (executions, cov, ft) goes to build-fuzz/findings/summary.txt (FUZZ_OUT sets that directory).
#   bash scripts/fuzz.sh [SECONDS=30] [harness ...]      PARALLEL=2 by default
#   bash scripts/fuzz.sh --list                           the harnesses this tree has
set -euo pipefail
cd "$(dirname "$0")/.."
ALL=(json safetensors checkpoint idx idx_gz cifar)
[ -f include/envit/data/image_folder.hpp ] && ALL+=(image)      # readers that exist in this tree
[ -f include/envit/weights/pretrained.hpp ] && ALL+=(hf_config)
if [ "${1:-}" = --list ]; then echo "${ALL[@]}"; exit 0; fi
SECS=${1:-30}
shift || true
[ $# -gt 0 ] && HARNESSES=("$@") || HARNESSES=("${ALL[@]}")
PARALLEL=${PARALLEL:-2}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENVIT_FUZZ=ON \
      -DENVIT_BUILD_TESTS=OFF -DENVIT_BUILD_EXAMPLES=OFF -DENVIT_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$JOBS" --target $(printf 'fuzz_%s ' "${HARNESSES[@]}")
OUT=${FUZZ_OUT:-build-fuzz/findings}
mkdir -p "$OUT"
: > "$OUT/summary.txt"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/fuzz/ubsan.supp
run_one() {
  local h=$1 work=$OUT/corpus/$1
  mkdir -p "$work" "$OUT/$h"
  cp -n tests/fuzz/corpus/"$h"/* "$work"/ 2>/dev/null || true
  local t0=$SECONDS rc=0
  build-fuzz/tests/fuzz/fuzz_"$h" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$OUT/$h/" "$work" >"$OUT/$h.log" 2>&1 || rc=$?
  local last
  last=$(grep -E '^#[0-9]+' "$OUT/$h.log" | tail -1 || true)
  echo "$h: rc=$rc wall=$((SECONDS - t0))s $last" | tee -a "$OUT/summary.txt"
  return $rc
}
fail=0
pids=()
names=()
for h in "${HARNESSES[@]}"; do
  run_one "$h" & pids+=($!); names+=("$h")
  if [ ${#pids[@]} -ge "$PARALLEL" ]; then
    wait "${pids[0]}" || { echo "fuzz_${names[0]}: FAILED (see $OUT/${names[0]}.log)"; fail=1; }
    pids=("${pids[@]:1}"); names=("${names[@]:1}")
  fi
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "fuzz_${names[$i]}: FAILED (see $OUT/${names[$i]}.log)"; fail=1; }
done
[ $fail -eq 0 ] && echo "envit: fuzzing clean (${SECS}s per harness)"
exit $fail
