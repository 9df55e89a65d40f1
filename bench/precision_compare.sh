#!/usr/bin/env bash
# bench/precision_compare.sh — envit's whole-model passes in FP32, BF16 and INT8 on one host,
# interleaved (round r runs every precision of every mode before round r+1), reported as medians and
# as ratios to FP32. Training has no INT8 (post-training quantization only).
# usage: bench/precision_compare.sh [BENCH] [ROUNDS] [extra envit_model_bench flags...]
#   BENCH   build/bench/envit_model_bench (default); ROUNDS 5 (default)
#   e.g. bench/precision_compare.sh build/bench/envit_model_bench 5 --dim 768 --depth 12 --heads 12 \
#          --mlp 3072 --image 224 --channels 3 --patch 16 --classes 1000   (ViT-B/16 shapes)
# Prints one line per mode and precision: median seconds per iteration, images/s, ratio to FP32.
# Any other load on the machine spoils the figures: run it alone.
set -euo pipefail
BENCH=${1:-build/bench/envit_model_bench}
ROUNDS=${2:-5}
shift $(( $# < 2 ? $# : 2 ))
MODES=${MODES:-train infer latency}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$BENCH" --version
for r in $(seq "$ROUNDS"); do
  for m in $MODES; do
    for p in fp32 bf16 int8; do
      [[ $m == train && $p == int8 ]] && continue
      "$BENCH" --mode "$m" --precision "$p" "$@" | tail -n 1 >> "$log"
    done
  done
done
python3 - "$log" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault((r["mode"], r["precision"]), []).append(r)
print(f"{'mode':8} {'precision':9} {'median s':>10} {'images/s':>10} {'vs fp32':>8}  (runs)")
for mode in ("train", "infer", "latency"):
    if (mode, "fp32") not in runs:
        continue
    base = statistics.median(r["median_s"] for r in runs[(mode, "fp32")])
    for p in ("fp32", "bf16", "int8"):
        rs = runs.get((mode, p))
        if not rs:
            continue
        s = statistics.median(r["median_s"] for r in rs)
        print(f"{mode:8} {p:9} {s:10.6f} {rs[0]['batch'] / s:10.1f} {base / s:7.2f}x  ({len(rs)})")
EOF
