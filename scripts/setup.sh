#!/usr/bin/env bash
# Installs envit's build and test dependencies from Debian when they are missing.
# Usage: scripts/setup.sh [extra-package...]   (root, or sudo available)
set -euo pipefail
# qemu-user, g++-aarch64-linux-gnu, zlib1g-dev:arm64: the `portability` tests (emulated older x86-64
# CPUs, the ARM64 cross build of scripts/cross_arm64.sh); arm64 packages need that architecture.
pkgs=(build-essential cmake libeigen3-dev libxsimd-dev xtl-dev catch2 libbenchmark-dev libcli11-dev zlib1g-dev libstb-dev
      dataset-fashion-mnist python3 qemu-user g++-aarch64-linux-gnu zlib1g-dev:arm64 libopenmpi-dev openmpi-bin "$@")
pkgs+=(clang libfuzzer-14-dev libclang-rt-14-dev libomp-dev)  # scripts/fuzz.sh: libFuzzer harnesses
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "envit setup: installing ${missing[*]}"
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
