#!/usr/bin/env bash
# BF16 training accuracy against FP32 (issue: every exit within 0.3 points, mean over 3 seeds):
# one recipe's run with --seed S for S in $SEEDS (default 0 1 2), once with --precision fp32 and once
# with --precision bf16, each evaluated on the test set in the precision it was trained in; then a
# table of every exit's test accuracy: mean and spread (max - min) over the seeds per precision, and
# the difference of the means. Recipes (RECIPE):
#   readme   README command 1's run (scripts/main.sh: `envit train --preset readme --val 5000`);
#            about 5-12 minutes per run on an unloaded 2-core machine
#   scratch  the first study's from-scratch recipe (scripts/study.sh: MODEL, TARGET, SCRATCH) for each
#            scheme in $SCHEMES (default "vit-ee envit"), one thread per run as in the study; about
#            3-5 minutes per run
# Resumable: a run whose directory has a checkpoint continues from it (--resume; a finished run does
# nothing more), an evaluation whose eval.json exists is kept. Outputs:
#   $OUT/<precision>-s<seed>/... (readme) or $OUT/<scheme>-<precision>-s<seed>/... (scratch), each with
#   {last.safetensors, log.jsonl, eval/eval.json}; $OUT/table.md
# Environment: OUT (out/bf16_accuracy, or out/bf16_accuracy_scratch), SEEDS ("0 1 2"), RECIPE (readme),
# SCHEMES, THREADS (cores; 1 for scratch), BUILD (build), JOBS.
# Extra arguments go to every `envit train` (e.g. --epochs 2 for a quick trial of the script).
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=${RECIPE:-readme}
SEEDS=${SEEDS:-0 1 2}
case "$RECIPE" in
  readme) OUT=${OUT:-out/bf16_accuracy}; THREADS=${THREADS:-$(nproc)}; SCHEMES=readme ;;
  # The first study's scratch runs (scripts/study.sh, design first, setting scratch).
  scratch) OUT=${OUT:-out/bf16_accuracy_scratch}; THREADS=${THREADS:-1}; SCHEMES=${SCHEMES:-vit-ee envit} ;;
  *) echo "bf16_accuracy.sh: RECIPE must be readme or scratch, got '$RECIPE'" >&2; exit 2 ;;
esac
STUDY_SCRATCH=(--depth 12 --patch 7 --dim 64 --heads 2 --mlp 128 --p-max 0.3 --alpha 0.5 --tau 4
  --weight-decay 0.05 --batch 128 --subset 12000 --val 2000 --epochs 6 --lr 2e-3 --warmup 100)
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
if [ ! -x "$BUILD/examples/envit" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
  cmake --build "$BUILD" -j "$JOBS" --target envit_cli
fi
ENVIT=$BUILD/examples/envit
"$ENVIT" --version

for seed in $SEEDS; do
 for scheme in $SCHEMES; do
  for prec in fp32 bf16; do
    if [ "$RECIPE" = readme ]; then
      dir=$OUT/$prec-s$seed
      recipe=(--preset readme --val 5000)
    else
      dir=$OUT/$scheme-$prec-s$seed
      recipe=(--scheme "$scheme" "${STUDY_SCRATCH[@]}")
    fi
    resume=()
    if [ -f "$dir/last.safetensors" ]; then resume=(--resume "$dir/last.safetensors"); fi
    echo "== train $RECIPE $scheme $prec seed $seed -> $dir ${resume[*]}"
    "$ENVIT" train "${recipe[@]}" --seed "$seed" --precision "$prec" --threads "$THREADS" \
      --out "$dir" "${resume[@]}" "$@"
    if [ ! -f "$dir/eval/eval.json" ]; then
      # Per-exit test accuracy of the complete model; one threshold above 1 (no early exit) keeps
      # the sweep and its timings short.
      "$ENVIT" eval --checkpoint "$dir/last.safetensors" --precision "$prec" --threads "$THREADS" \
        --thresholds 2 --time-samples 256 --stream-samples 0 --repeats 1 --out "$dir/eval"
    fi
  done
 done
done

python3 - "$OUT" "$RECIPE" "$SCHEMES" $SEEDS <<'EOF'
import json, os, statistics, sys
out, recipe, schemes, seeds = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4:]
lines = []
for scheme in schemes:
    prefix = "" if recipe == "readme" else f"{scheme}-"
    acc = {}
    for prec in ("fp32", "bf16"):
        runs = []
        for s in seeds:
            with open(os.path.join(out, f"{prefix}{prec}-s{s}", "eval", "eval.json")) as f:
                ck = json.load(f)["checkpoints"][0]
            assert ck.get("precision") == prec, (prec, s, ck.get("precision"))
            runs.append([100 * a for a in ck["exit_accuracy"]])
            exits = ck["exits"]
        acc[prec] = runs
    what = ("README model (--preset readme --val 5000)" if recipe == "readme"
            else f"{scheme}, the first study's scratch recipe")
    lines += [f"{what}, test accuracy (%) per exit over seeds {', '.join(seeds)}; "
              "mean [spread = max - min]; each run evaluated in its training precision.", "",
              "| exit (after block) | fp32 | bf16 | bf16 - fp32 | within 0.3 |", "| --- | --- | --- | --- | --- |"]
    worst = 0.0
    for j, blk in enumerate(exits):
        cols, means = [], {}
        for prec in ("fp32", "bf16"):
            v = [r[j] for r in acc[prec]]
            means[prec] = statistics.fmean(v)
            cols.append(f"{means[prec]:.2f} [{max(v) - min(v):.2f}]")
        d = means["bf16"] - means["fp32"]
        worst = max(worst, abs(d))
        lines.append(f"| {j} ({blk}) | {cols[0]} | {cols[1]} | {d:+.2f} | {'yes' if abs(d) <= 0.3 else 'NO'} |")
    lines += ["", f"largest |difference of means|: {worst:.2f} points", ""]
text = "\n".join(lines)
print(text)
with open(os.path.join(out, "table.md"), "w") as f:
    f.write(text)
EOF
