#!/usr/bin/env bash
# Installs envit's dependencies from Debian when they are missing.
# Usage: scripts/setup.sh main|test [extra-package...]   (root, or sudo available)
#   main: what README command 1 (scripts/main.sh) needs: the compiler, CMake, the header libraries,
#         zlib, stb and Fashion-MNIST.
#   test: main's packages and what the test suite adds (scripts/test.sh): Catch2, Google Benchmark,
#         Python, Open MPI, the `portability` tests' qemu-user, ARM64 cross compiler and arm64 zlib
#         (emulated older x86-64 CPUs, scripts/cross_arm64.sh), clang with libFuzzer (scripts/fuzz.sh),
#         pybind11, numpy and pytest (the Python module and its tests), python3-onnx (onnx.checker) and
#         Node.js (ONNX Runtime's npm package in the ONNX tests; the test fetches onnxruntime-node itself).
set -euo pipefail
what=${1:-}
case "$what" in
  main|test) shift ;;
  *) echo "usage: $0 main|test [extra-package...]" >&2; exit 2 ;;
esac
pkgs=(build-essential cmake libeigen3-dev libxsimd-dev xtl-dev libcli11-dev zlib1g-dev libstb-dev dataset-fashion-mnist)
if [ "$what" = test ]; then
  pkgs+=(catch2 libbenchmark-dev python3 libopenmpi-dev openmpi-bin qemu-user g++-aarch64-linux-gnu zlib1g-dev:arm64)
  pkgs+=(clang libfuzzer-14-dev libclang-rt-14-dev libomp-dev)  # scripts/fuzz.sh: libFuzzer harnesses
  pkgs+=(pybind11-dev python3-dev python3-numpy python3-pytest python3-onnx nodejs)
fi
pkgs+=("$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "envit setup ($what): installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "envit setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
if printf '%s\n' "${missing[@]}" | grep -q ':arm64$' && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
