#!/usr/bin/env bash
# bench/onnx_bench.sh — ONNX Runtime on envit's exported graphs beside envit's own inference, same
# host, same images, FP32: all exits at batch 1 and batch 128, and the early-exit speed-up at the
# threshold `envit eval` calibrates for a 2x MAC speed-up on the checkpoint's validation split
# (confidence rule). The two runtimes are run one after the other, each timing its full model and
# its early exit alternately (paired ratios, median of REPEATS).
#   bench/onnx_bench.sh BUILD_DIR CHECKPOINT OUT_DIR [THREADS=1] [N=1000] [REPEATS=5]
# BUILD_DIR: a build with the envit program and tests/onnx_reference (cmake --build BUILD --target
# envit_cli onnx_reference); onnxruntime-node is installed into BUILD_DIR/onnx_node when missing
# (the version the tests pin). CHECKPOINT: trained with --val (calibration needs the split), e.g.
# out/readme/last.safetensors from scripts/main.sh. Prints both runtimes' numbers; writes OUT_DIR.
set -euo pipefail
build=$1 ckpt=$2 out=$3 threads=${4:-1} n=${5:-1000} repeats=${6:-5}
here=$(cd "$(dirname "$0")" && pwd)
envit=$build/examples/envit
reference=$build/tests/onnx_reference
node_dir=$build/onnx_node
ort_version=$(sed -n 's/^readonly ORT_VERSION=\([0-9.]*\).*/\1/p' "$here/../tests/onnx/onnx_test.sh")
mkdir -p "$out"
if [ ! -f "$node_dir/node_modules/onnxruntime-node/package.json" ]; then
  npm install --prefix "$node_dir" --ignore-scripts --no-audit --no-fund --no-save "onnxruntime-node@$ort_version" > "$out/npm.log" 2>&1
fi
export OMP_NUM_THREADS=$threads

# 1. envit: calibrate the 2x threshold, then time its full model and early exit at that threshold.
"$envit" eval --checkpoint "$ckpt" --target-speedup 2 --batch 128 --time-samples "$n" --stream-samples 0 \
  --repeats "$repeats" --threads "$threads" --out "$out/calibrate" > "$out/calibrate.log"
thr=$(python3 -c "import json,sys; print(repr(json.load(open(sys.argv[1]))['checkpoints'][0]['calibration'][0]['threshold']))" \
      "$out/calibrate/eval.json")
grep "calibrated on" "$out/calibrate.log" | sed 's/^ */  /'
"$envit" eval --checkpoint "$ckpt" --thresholds "$thr" --batch 128 --time-samples "$n" --stream-samples "$n" \
  --repeats "$repeats" --threads "$threads" --out "$out/envit" > "$out/envit.log"
echo "envit ($threads threads, $n test images, confidence threshold $thr calibrated for 2x MACs):"
grep -E "full model:|^  [0-9.]+ " "$out/envit.log" | sed 's/^/  /'
echo "  (columns: threshold, acc%, MACs x, wall x at batch 128, stream x at batch 1, exit histogram)"

# 2. ONNX Runtime on the exported graphs, the same images.
"$envit" convert --to onnx "$ckpt" --out "$out/all.onnx" 2> "$out/convert.log"
"$envit" convert --to onnx --early-exit confidence "$ckpt" --out "$out/early.onnx" 2>> "$out/convert.log"
"$reference" "$ckpt" /usr/share/datasets/fashion-mnist "$n" "$out/images.safetensors" confidence "$thr" > /dev/null
echo "onnxruntime-node $ort_version:"
node "$here/onnx_bench.mjs" "$node_dir/node_modules" "$out/all.onnx" "$out/early.onnx" "$out/images.safetensors" \
  "$thr" "$threads" 128 "$n" "$repeats" | tee "$out/onnx.json"
