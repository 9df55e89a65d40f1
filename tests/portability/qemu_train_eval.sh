#!/usr/bin/env bash
# A short training and evaluation of the `envit` program under qemu user-mode emulation of another
# CPU (qemu-x86_64 -cpu Haswell/Nehalem; the ARM64 cross build's emulator, qemu-aarch64): the
# program must run there to the end, print the per-exit test accuracy, exit 0 and never die of a
# signal (SIGILL: an instruction the emulated CPU lacks).
# Usage: qemu_train_eval.sh <qemu> <cpu model> <envit> <work dir> <fashion-mnist dir> [kernel set] [threads]
#   <qemu> "-": <envit> already runs under its emulator (a cross build's tests/run/envit_cli
#   wrapper, tests/CMakeLists.txt); <cpu model> then only names it in messages.
# Emulation is 10-50x slower than native, so everything is small: a 128-image training / 64-image
# test cut of Fashion-MNIST (IDX headers rewritten), the readme preset narrowed to D = 48, 4 blocks,
# 2 steps of 64 images, and an evaluation sweep of 2 thresholds. [kernel set]: the set the program must report
# in `envit --version` when it prints one ("kernels: <set> ..."). [threads]: --threads (default 2).
set -euo pipefail
qemu=$1 cpu=$2 envit=$3 work=$4 src=$5 want=${6:-} threads=${7:-2}
if [ "$qemu" = - ]; then
  program=("$envit") emu="the $cpu emulator"
else
  program=("$qemu" -cpu "$cpu" "$envit") emu="$(basename "$qemu") -cpu $cpu"
fi
rm -rf "$work"
mkdir -p "$work/data"

be32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }
# cut <name> <n> <header bytes> <bytes per item>: the first n items, with the count field set to n.
cut_idx() {
  local name=$1 n=$2 hdr=$3 item=$4 in="$src/$1.gz" head="$work/head.bin"
  [ -r "$in" ] || { echo "portability: $in not readable" >&2; exit 1; }
  (zcat "$in" || true) | head -c $((hdr + n * item)) > "$head"  # zcat stops on SIGPIPE: expected
  [ "$(stat -c %s "$head")" -eq $((hdr + n * item)) ] || { echo "portability: $in is too short" >&2; exit 1; }
  {
    head -c 4 "$head"
    printf "$(be32 "$n")"
    tail -c +9 "$head"
  } > "$work/data/$name"
  rm -f "$head"
}
cut_idx train-images-idx3-ubyte 128 16 784
cut_idx train-labels-idx1-ubyte 128 8 1
cut_idx t10k-images-idx3-ubyte 64 16 784
cut_idx t10k-labels-idx1-ubyte 64 8 1

run() {  # runs the program under the emulated CPU; a signal or a non-zero exit fails the test
  local rc=0
  "${program[@]}" "$@" > "$work/$1.log" 2>&1 || rc=$?
  cat "$work/$1.log"
  if [ "$rc" -ge 128 ]; then
    echo "portability: envit $1 under $emu died of signal $((rc - 128))" >&2
    exit 1
  elif [ "$rc" -ne 0 ]; then
    echo "portability: envit $1 under $emu exited with $rc" >&2
    exit 1
  fi
}

if [ -n "$want" ]; then
  version=$("${program[@]}" --version 2>/dev/null || true)
  if grep -q "kernels:" <<<"$version"; then
    grep -q "kernels: $want" <<<"$version" ||
      { echo "portability: $emu: expected kernel set $want, envit reports: $version" >&2; exit 1; }
  fi
fi
run train --preset readme --dim 48 --heads 2 --mlp 96 --depth 4 --data "$work/data" --epochs 1 --steps 2 \
    --batch 64 --eval-batch 64 --threads "$threads" --out "$work/run"
grep -q "test accuracy per exit: [0-9.]*% [0-9.]*%" "$work/train.log" ||
  { echo "portability: envit train under $emu printed no per-exit test accuracy" >&2; exit 1; }
ckpt=$(find "$work/run" -name '*.safetensors' | sort | tail -n 1)
[ -n "$ckpt" ] || { echo "portability: no checkpoint written under $work/run" >&2; exit 1; }
run eval --checkpoint "$ckpt" --data "$work/data" --points 2 --repeats 1 --stream-samples 0 --time-samples 16 \
    --batch 64 --threads "$threads" --out "$work/eval"
echo "portability: train + eval under $emu: exit 0"
