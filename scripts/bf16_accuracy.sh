#!/usr/bin/env bash
# BF16 training accuracy against FP32 (issue: every exit within 0.3 points, mean over 3 seeds):
# README command 1's run (scripts/main.sh: `envit train --preset readme --val 5000`) with --seed S for
# S in $SEEDS (default 0 1 2), once with --precision fp32 and once with --precision bf16, each
# evaluated on the test set in the precision it was trained in; then a table of every exit's test
# accuracy: mean and spread (max - min) over the seeds per precision, and the difference of the means.
# Each run takes about 5-12 minutes on an unloaded 2-core machine (6 runs with the default seeds).
# Resumable: a run whose directory has a checkpoint continues from it (--resume; a finished run does
# nothing more), an evaluation whose eval.json exists is kept. Outputs:
#   $OUT/<precision>-s<seed>/{last.safetensors, log.jsonl, eval/eval.json}, $OUT/table.md
# Environment: OUT (out/bf16_accuracy), SEEDS ("0 1 2"), THREADS (cores), BUILD (build), JOBS.
# Extra arguments go to every `envit train` (e.g. --epochs 2 for a quick trial of the script).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/bf16_accuracy}
SEEDS=${SEEDS:-0 1 2}
THREADS=${THREADS:-$(nproc)}
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
if [ ! -x "$BUILD/examples/envit" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
  cmake --build "$BUILD" -j "$JOBS" --target envit_cli
fi
ENVIT=$BUILD/examples/envit
"$ENVIT" --version

for seed in $SEEDS; do
  for prec in fp32 bf16; do
    dir=$OUT/$prec-s$seed
    resume=()
    if [ -f "$dir/last.safetensors" ]; then resume=(--resume "$dir/last.safetensors"); fi
    echo "== train $prec seed $seed -> $dir ${resume[*]}"
    "$ENVIT" train --preset readme --val 5000 --seed "$seed" --precision "$prec" --threads "$THREADS" \
      --out "$dir" "${resume[@]}" "$@"
    if [ ! -f "$dir/eval/eval.json" ]; then
      # Per-exit test accuracy of the complete model; one threshold above 1 (no early exit) keeps
      # the sweep and its timings short.
      "$ENVIT" eval --checkpoint "$dir/last.safetensors" --precision "$prec" --threads "$THREADS" \
        --thresholds 2 --time-samples 256 --stream-samples 0 --repeats 1 --out "$dir/eval"
    fi
  done
done

python3 - "$OUT" $SEEDS <<'EOF'
import json, os, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
acc = {}
for prec in ("fp32", "bf16"):
    runs = []
    for s in seeds:
        with open(os.path.join(out, f"{prec}-s{s}", "eval", "eval.json")) as f:
            ck = json.load(f)["checkpoints"][0]
        assert ck.get("precision") == prec, (prec, s, ck.get("precision"))
        runs.append([100 * a for a in ck["exit_accuracy"]])
        exits = ck["exits"]
    acc[prec] = runs
lines = [f"README model (--preset readme --val 5000), test accuracy (%) per exit over seeds {', '.join(seeds)}; "
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
lines += ["", f"largest |difference of means|: {worst:.2f} points"]
text = "\n".join(lines) + "\n"
print(text)
with open(os.path.join(out, "table.md"), "w") as f:
    f.write(text)
EOF
