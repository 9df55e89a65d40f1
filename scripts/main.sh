#!/usr/bin/env bash
# README command 1: install what is missing, build, train EnViT on Fashion-MNIST (about 5-12 min on 2
# cores), evaluate it (per-exit accuracy, early-exit sweep with MAC and wall-clock speed-ups,
# calibration on a validation split) and draw the accuracy/speed-up plot.
# Outputs: out/readme/{last.safetensors, log.jsonl, eval/{sweep.csv, eval.json, tradeoff.svg, ...}}.
# Extra arguments go to `envit train` (e.g. --epochs 2 for a quicker run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh main  # no test, benchmark, MPI or cross tool chain: scripts/test.sh installs those
JOBS=${JOBS:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DENVIT_BUILD_TESTS=OFF -DENVIT_BUILD_BENCH=OFF
cmake --build build -j "$JOBS" --target envit_cli
OUT=${OUT:-out/readme}
THREADS=${THREADS:-$(nproc)}
build/examples/envit train --preset readme --val 5000 --threads "$THREADS" --out "$OUT" "$@"
build/examples/envit eval --checkpoint "$OUT/last.safetensors" --threads "$THREADS" \
  --target-speedup 2.0 --max-drop 0.01 --out "$OUT/eval"
echo
echo "outputs: $OUT/last.safetensors (checkpoint), $OUT/log.jsonl (per-epoch metrics),"
echo "         $OUT/eval/sweep.csv, eval.json, tradeoff.svg, tradeoff_wall.svg, logits_0.safetensors"
