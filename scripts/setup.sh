#!/usr/bin/env bash
# Installs envit's build and test dependencies from Debian when they are missing.
# Usage: scripts/setup.sh [extra-package...]   (root, or sudo available)
set -euo pipefail
pkgs=(build-essential cmake libeigen3-dev libxsimd-dev xtl-dev catch2 libbenchmark-dev libcli11-dev zlib1g-dev
      dataset-fashion-mnist libopenmpi-dev openmpi-bin "$@")
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
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
