#!/usr/bin/env bash
# Cross-builds envit for 64-bit ARM (NEON kernels through xsimd) with Debian's g++-aarch64-linux-gnu
# and runs it under qemu-aarch64. One command; exits non-zero on any failure.
# Needs: g++-aarch64-linux-gnu, qemu-user, zlib1g-dev:arm64 (`scripts/setup.sh test` installs them).
# Usage: scripts/cross_arm64.sh [build-dir]         (default build-arm64; JOBS sets the parallelism)
#        scripts/cross_arm64.sh --all [build-dir]   every test executable and the program, built only
# Default (ctest portability_arm64): builds test_gemm, test_vec and the `envit` program (envit_cli;
# no MPI for arm64) and runs, through ctest in the arm64 tree (each test under the toolchain's
# emulator, qemu-aarch64, here with QEMU_CPU=cortex-a72: ARMv8.0 + NEON):
#  - the code that differs on ARM: the dispatched baseline kernel set (NEON): the GEMM (register
#    tile, ragged sizes, alpha/beta, errors, two-thread tiles, row invariance of both backends) and
#    every test_vec case (the xsimd row kernels: GELU, softmax, LayerNorm, epilogues, partial
#    loads). test_gemm's cases with large problems (cache-block sizes, in-place A, pre-packed
#    weights: about 80 s emulated) are left to native runs and to --all;
#  - portability_train_eval (tests/portability/qemu_train_eval.sh, as for the x86 portability
#    tests): `envit --version` reports the kernel set "baseline", a 2-step training on 128
#    Fashion-MNIST images prints the per-exit test accuracy, and the evaluation of its checkpoint
#    exits 0, with 2 OpenMP threads.
# The emulator and the C runtime it gives the guest are set in one place, cmake/toolchain-aarch64.cmake
# (why the cross toolchain's own libc: docs/portability.md).
# --all: builds every target of the tree (all tests and the program; benchmarks off); runs nothing.
#  Then `ctest` in the tree runs the whole suite under qemu-aarch64 (docs/portability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
all=0
if [ "${1:-}" = --all ]; then all=1; shift; fi
BUILD=${1:-build-arm64}
JOBS=${JOBS:-$(nproc)}
for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "cross_arm64: $tool not found (run scripts/setup.sh test)" >&2; exit 1; }
done
[ -e /usr/lib/aarch64-linux-gnu/libz.so ] ||
  { echo "cross_arm64: zlib for arm64 not found (/usr/lib/aarch64-linux-gnu/libz.so; package zlib1g-dev:arm64)" >&2; exit 1; }
tests=(test_gemm test_vec)
fmnist=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
mkdir -p "$BUILD"
cmake -S . -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake -DCMAKE_BUILD_TYPE=Release \
      -DENVIT_BUILD_EXAMPLES=ON -DENVIT_MPI=OFF -DENVIT_BUILD_BENCH=OFF -DENVIT_INSTALL=OFF > "$BUILD/configure.log" 2>&1 ||
  { cat "$BUILD/configure.log" >&2; exit 1; }
if [ $all = 1 ]; then
  cmake --build "$BUILD" -j "$JOBS"
  echo "cross_arm64: every target built for aarch64 in $BUILD"
  exit 0
fi
cmake --build "$BUILD" -j "$JOBS" --target "${tests[@]}" envit_cli
for exe in "$BUILD/tests/test_gemm" "$BUILD/examples/envit"; do
  file "$exe" | grep -q "ARM aarch64" || { echo "cross_arm64: $exe is not an aarch64 executable" >&2; exit 1; }
done
gemm='gemm packed: (small sizes around the register tile|every ragged row count|alpha/beta variants)'
gemm+='|gemm: invalid sizes|gemm (packed|Eigen): a row.s result|gemm packed: two threads'
gemm+='|gemm packed: bitwise reproducible'
# vec_bad_isa (x86-64 kernel sets) is not ARM's: "^vec: " selects test_vec's cases only.
select=(-R "^dispatched: ($gemm)|^vec: |^portability_train_eval\$")
listed=$(ctest --test-dir "$BUILD" -N "${select[@]}")
for want in "gemm packed: small sizes" "gemm Eigen: a row" "vec: GELU at special values" portability_train_eval; do
  grep -q "$want" <<<"$listed" ||
    { echo "cross_arm64: no test '$want' in $BUILD (portability_train_eval needs $fmnist)" >&2; exit 1; }
done
OMP_NUM_THREADS=2 QEMU_CPU=cortex-a72 ctest --test-dir "$BUILD" --output-on-failure -j 2 "${select[@]}"
echo "cross_arm64: the test_gemm subset, test_vec and envit train + eval passed under qemu-aarch64"
