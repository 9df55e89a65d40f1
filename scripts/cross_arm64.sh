#!/usr/bin/env bash
# Cross-builds envit's library test subset for 64-bit ARM (NEON kernels through xsimd) with Debian's
# g++-aarch64-linux-gnu and runs it under qemu-aarch64. One command; exits non-zero on any failure.
# Needs: g++-aarch64-linux-gnu, qemu-user, zlib1g-dev:arm64 (scripts/setup.sh installs them).
# Usage: scripts/cross_arm64.sh [build-dir]   (default build-arm64; JOBS sets the parallelism)
# Subset: the code that differs on ARM: the dispatched baseline kernel set (NEON): the GEMM and the
# xsimd row kernels (GELU, softmax, LayerNorm, epilogues, partial loads). Emulation is 10-50x slower than native,
# so the cases with large double references (test_gemm's cache-block sizes, test_vec's 200,000-point
# GELU sweep and fused-block composition) are left to native runs; the rest runs in about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-arm64}
JOBS=${JOBS:-$(nproc)}
for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "cross_arm64: $tool not found (run scripts/setup.sh)" >&2; exit 1; }
done
[ -e /usr/lib/aarch64-linux-gnu/libz.so ] ||
  { echo "cross_arm64: zlib for arm64 not found (/usr/lib/aarch64-linux-gnu/libz.so; package zlib1g-dev:arm64)" >&2; exit 1; }
tests=(test_gemm test_vec)
cmake -S . -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake -DCMAKE_BUILD_TYPE=Release \
      -DENVIT_BUILD_EXAMPLES=OFF -DENVIT_BUILD_BENCH=OFF -DENVIT_INSTALL=OFF > "$BUILD.configure.log" 2>&1 ||
  { cat "$BUILD.configure.log" >&2; exit 1; }
cmake --build "$BUILD" -j "$JOBS" --target "${tests[@]}"
export ENVIT_TEST_DATA="$PWD/tests/data" OMP_NUM_THREADS=2
failed=()
for t in "${tests[@]}"; do
  exe=$(find "$BUILD/tests" -maxdepth 2 -type f -name "$t" | head -n 1)
  file "$exe" | grep -q "ARM aarch64" || { echo "cross_arm64: $exe is not an aarch64 executable" >&2; exit 1; }
  args=()
  # test_gemm: the register-tile, ragged and error cases (the large references take many minutes emulated)
  [ "$t" = test_gemm ] && args=("*small sizes around the register tile*,*every ragged row count*,*alpha/beta variants*,*invalid sizes*")
  [ "$t" = test_vec ] && args=("~*accuracy over*" "~*fused block*")
  echo "== $t ${args[*]} (qemu-aarch64)"
  if ! qemu-aarch64 -L /usr/aarch64-linux-gnu "$exe" "${args[@]}"; then failed+=("$t"); fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "cross_arm64: FAILED under qemu-aarch64: ${failed[*]}" >&2
  exit 1
fi
echo "cross_arm64: all ${#tests[@]} test executables passed under qemu-aarch64"
