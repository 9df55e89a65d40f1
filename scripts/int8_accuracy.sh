#!/usr/bin/env bash
# INT8 post-training quantization accuracy against FP32 (issue: every exit's test accuracy within
# 0.5 points, and the accuracy at the calibrated operating point within 0.5 points at the same
# target speed-up). For each FP32 checkpoint given (default: README command 1's model and the first
# study's scratch-recipe vit-ee and envit models, seed 0, as trained by scripts/bf16_accuracy.sh):
#   - eval in FP32 (--target-speedup 2, calibrated on the checkpoint's validation split);
#   - `envit quantize` with each activation-scale choice in $VARIANTS: dynamic (per token, every
#     family), static (per tensor, $CALIB validation images, every family), and one family static
#     at a time (static-<family>: the others dynamic) to show where static scales lose accuracy;
#   - eval of each quantized checkpoint (INT8 selected by the file) with the same flags.
# Then a table per model: every exit's test accuracy, and the calibrated point's test accuracy and
# MAC speed-up, FP32 vs each INT8 variant, with the differences and whether they are within 0.5.
# Accuracy only: evaluations run with --time-samples 256 --repeats 1, so their wall-clock columns
# mean nothing on a loaded machine (bench/README or docs/performance.md for timings).
# Outputs: $OUT/<model>/{fp32,<variant>}/eval/eval.json, $OUT/<model>/<variant>.safetensors,
# $OUT/table.md. Environment: OUT (out/int8_accuracy), CALIB (1000), THREADS, BUILD (build),
# VARIANTS ("dynamic static static-qkv static-proj static-fc1 static-fc2").
# Arguments: label=checkpoint pairs (default: the three models under /work/runs, see below).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/int8_accuracy}
CALIB=${CALIB:-1000}
THREADS=${THREADS:-$(nproc)}
BUILD=${BUILD:-build}
VARIANTS=${VARIANTS:-dynamic static static-qkv static-proj static-fc1 static-fc2}
if [ ! -x "$BUILD/examples/envit" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
  cmake --build "$BUILD" -j "$THREADS" --target envit_cli
fi
ENVIT=$BUILD/examples/envit
"$ENVIT" --version
MODELS=("$@")
if [ ${#MODELS[@]} -eq 0 ]; then
  MODELS=(readme=out/bf16_accuracy/fp32-s0/last.safetensors
          scratch-vit-ee=out/bf16_accuracy_scratch/vit-ee-fp32-s0/last.safetensors
          scratch-envit=out/bf16_accuracy_scratch/envit-fp32-s0/last.safetensors)
fi
act_of() {  # variant -> --act value (qkv,proj,fc1,fc2)
  case $1 in
    dynamic) echo dynamic ;;
    static) echo static ;;
    static-qkv) echo static,dynamic,dynamic,dynamic ;;
    static-proj) echo dynamic,static,dynamic,dynamic ;;
    static-fc1) echo dynamic,dynamic,static,dynamic ;;
    static-fc2) echo dynamic,dynamic,dynamic,static ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}
evaluate() {  # checkpoint outdir
  [ -f "$2/eval.json" ] || "$ENVIT" eval --checkpoint "$1" --threads "$THREADS" --target-speedup 2 \
    --time-samples 256 --stream-samples 0 --repeats 1 --points 8 --out "$2" > "$2.log" 2>&1 || { cat "$2.log"; exit 1; }
}
labels=()
for m in "${MODELS[@]}"; do
  label=${m%%=*} ckpt=${m#*=}
  labels+=("$label")
  dir=$OUT/$label
  mkdir -p "$dir/fp32"
  echo "== $label: $ckpt"
  evaluate "$ckpt" "$dir/fp32/eval"
  for v in $VARIANTS; do
    mkdir -p "$dir/$v"
    [ -f "$dir/$v.safetensors" ] || "$ENVIT" quantize --checkpoint "$ckpt" --out "$dir/$v.safetensors" \
      --act "$(act_of "$v")" --calib "$CALIB" --threads "$THREADS"
    evaluate "$dir/$v.safetensors" "$dir/$v/eval"
  done
done

/usr/bin/python3 - "$OUT" "$VARIANTS" "${labels[@]}" <<'PY'
import json, os, sys
out, variants, labels = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
def load(path):
    with open(path) as f:
        return json.load(f)["checkpoints"][0]
lines = []
for label in labels:
    base = load(os.path.join(out, label, "fp32", "eval", "eval.json"))
    assert base["precision"] == "fp32"
    exits = base["exits"]
    lines += [f"### {label}", "", "Test accuracy (%) per exit (after block), and at the operating point calibrated on the "
              "validation split for a 2x MAC speed-up (accuracy / MAC speed-up); INT8 - FP32 in parentheses.", "",
              "| | " + " | ".join(f"exit {j} ({b})" for j, b in enumerate(exits)) + " | calibrated 2x | within 0.5 |",
              "| --- | " + " | ".join("---" for _ in exits) + " | --- | --- |"]
    def cal(ck):
        c = ck["calibration"][0]
        return 100 * c["test_accuracy"], c["test_speedup"]
    ba, bs = cal(base)
    lines.append("| fp32 | " + " | ".join(f"{100 * a:.2f}" for a in base["exit_accuracy"]) + f" | {ba:.2f} / {bs:.2f}x | |")
    for v in variants:
        ck = load(os.path.join(out, label, v, "eval", "eval.json"))
        assert ck["precision"] == "int8", (label, v, ck["precision"])
        assert ck["mismatches"] == 0, (label, v, "real early exit differs from the simulation")
        d = [100 * (a - b) for a, b in zip(ck["exit_accuracy"], base["exit_accuracy"])]
        a, s = cal(ck)
        ok = all(abs(x) <= 0.5 for x in d) and abs(a - ba) <= 0.5
        lines.append(f"| int8 {v} | " + " | ".join(f"{100 * x:.2f} ({y:+.2f})" for x, y in zip(ck["exit_accuracy"], d))
                     + f" | {a:.2f} ({a - ba:+.2f}) / {s:.2f}x | {'yes' if ok else 'NO'} |")
    lines.append("")
text = "\n".join(lines)
print(text)
with open(os.path.join(out, "table.md"), "w") as f:
    f.write(text)
PY
