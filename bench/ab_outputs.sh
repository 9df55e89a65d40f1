#!/usr/bin/env bash
# bench/ab_outputs.sh OLD_ENVIT NEW_ENVIT [OUTDIR] — are two builds of the `envit` program bitwise
# the same in what they compute? For every training scheme, both programs run the same short
# `envit train` (a tiny model, a few dozen steps, fixed seed, --threads 2) and `envit eval` of its
# last checkpoint; the script compares the sha256 of
#   last.safetensors          the trained parameters and optimiser state
#   sweep.csv                 the threshold sweep without its two timing columns (speedup_wall,
#                             speedup_stream: measured, so they differ between any two runs)
#   exit histograms           the exit_histogram column of sweep.csv
#   logits_*.safetensors      every exit's test logits (the tensor data; the header names paths)
# prints one row per scheme and file, and exits 1 on any difference (2 on a failed run).
# lgvit runs both of its stages (half of the steps each). Runs take about a minute per scheme and
# program on 2 cores.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: bench/ab_outputs.sh OLD_ENVIT NEW_ENVIT [OUTDIR]" >&2
  exit 2
fi
OLD=$(readlink -f "$1")
NEW=$(readlink -f "$2")
OUT=${3:-$(mktemp -d /tmp/ab_outputs.XXXXXX)}
for p in "$OLD" "$NEW"; do
  [[ -x "$p" ]] || { echo "ab_outputs.sh: $p is not an executable" >&2; exit 2; }
done
mkdir -p "$OUT"
DATA=${ENVIT_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
SCHEMES=${AB_SCHEMES:-"vit-ee sdn byot lgvit beem cosee envit-sd envit-kd envit"}
STEPS=${AB_STEPS:-24}
MODEL="--dataset fashion-mnist --data $DATA --depth 4 --patch 7 --dim 16 --heads 2 --mlp 32 --exits 2,4
       --subset 512 --val 0 --batch 32 --epochs 2 --steps $STEPS --lr 2e-3 --warmup 2 --seed 0 --threads 2"
EVAL="--threads 2 --points 4 --time-samples 256 --stream-samples 0 --repeats 1"

run() {  # run PROGRAM DIR SCHEME
  local prog=$1 d=$2 s=$3
  rm -rf "$d"
  mkdir -p "$d"
  # shellcheck disable=SC2086
  "$prog" train --scheme "$s" $MODEL --out "$d" > "$d/train.log" 2>&1 ||
    { echo "ab_outputs.sh: $prog train --scheme $s failed, see $d/train.log" >&2; exit 2; }
  # shellcheck disable=SC2086
  "$prog" eval --checkpoint "$d/last.safetensors" --data "$DATA" $EVAL --out "$d/eval" > "$d/eval.log" 2>&1 ||
    { echo "ab_outputs.sh: $prog eval ($s) failed, see $d/eval.log" >&2; exit 2; }
}
sha() { sha256sum | cut -c1-16; }
# The sweep without the timing columns, and the histogram column alone (header names located).
sweep_cols() {  # sweep_cols FILE MODE (det|hist)
  awk -F, -v mode="$2" 'NR == 1 { for (i = 1; i <= NF; ++i) col[$i] = i }
    { if (mode == "hist") { print $col["exit_histogram"]; next }
      line = ""; for (i = 1; i <= NF; ++i) if (i != col["speedup_wall"] && i != col["speedup_stream"]) line = line $i ",";
      print line }' "$1"
}
digest() {  # digest DIR WHAT
  local d=$1
  case $2 in
    checkpoint) sha < "$d/last.safetensors" ;;
    sweep) sweep_cols "$d/eval/sweep.csv" det | sha ;;
    histograms) sweep_cols "$d/eval/sweep.csv" hist | sha ;;
    # the tensors only: the header's metadata names the checkpoint's path
    logits) for f in "$d"/eval/logits_*.safetensors; do
              n=$(od -An -tu8 -N8 "$f" | tr -d ' ')
              tail -c +$((9 + n)) "$f"
            done | sha ;;
  esac
}

fail=0
printf "%-9s %-11s %-16s %-16s %s\n" scheme output old new same
for s in $SCHEMES; do
  extra=""
  run "$OLD" "$OUT/old/$s" "$s"
  run "$NEW" "$OUT/new/$s" "$s"
  for what in checkpoint sweep histograms logits; do
    a=$(digest "$OUT/old/$s" $what)
    b=$(digest "$OUT/new/$s" $what)
    same=yes
    [[ "$a" == "$b" ]] || { same=NO; fail=1; }
    printf "%-9s %-11s %-16s %-16s %s\n" "$s" "$what" "$a" "$b" "$same"
  done
done
if [[ $fail == 1 ]]; then
  echo "ab_outputs.sh: outputs differ (runs in $OUT)" >&2
  exit 1
fi
echo "ab_outputs.sh: every output bitwise identical (runs in $OUT)"
