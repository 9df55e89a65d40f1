#!/usr/bin/env bash
# `envit train --scheme lgvit` for a few steps on a Fashion-MNIST subset (both stages), then
# `envit eval` on its checkpoint: the checkpoint carries the LGViT heads and their BatchNorm running
# statistics, and real early exit agrees with the simulation. Usage: lgvit_cli_test.sh <envit> <dir>
set -euo pipefail
envit=$1
dir=$2
rm -rf "$dir"
"$envit" train --scheme lgvit --subset 256 --val 64 --batch 32 --steps 6 --epochs 1 --lgvit-stage1-frac 0.5 \
  --threads 1 --out "$dir" > "$dir.train.log" 2>&1 || { cat "$dir.train.log"; exit 1; }
grep -q "exit heads lgvit" "$dir.train.log" || { echo "train: model is not an LGViT one"; cat "$dir.train.log"; exit 1; }
test -s "$dir/last.safetensors"
grep -q '"step":6' "$dir/log.jsonl" || { echo "train: no step-6 log line"; cat "$dir/log.jsonl"; exit 1; }
"$envit" eval --checkpoint "$dir/last.safetensors" --time-samples 100 --stream-samples 0 --repeats 1 --points 3 \
  --threads 1 > "$dir.eval.log" 2>&1 || { cat "$dir.eval.log"; exit 1; }
grep -q "per-exit test accuracy" "$dir.eval.log" || { echo "eval: no accuracy line"; cat "$dir.eval.log"; exit 1; }
grep -q "identical exits and predictions" "$dir.eval.log" || { echo "eval: real and simulated exits differ"; cat "$dir.eval.log"; exit 1; }
test -s "$dir/eval/sweep.csv"
echo "lgvit train + eval: ok"
