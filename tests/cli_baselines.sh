#!/usr/bin/env bash
# `envit train --scheme beem|cosee` on a Fashion-MNIST subset (a few steps of a tiny ViT with an exit
# after every block), then `envit eval --rule beem|energy` sweeping and calibrating on the
# validation split. Fails unless every command succeeds, the simulated and real early exits agree,
# both calibrations are reported, the sweeps have several operating points, and the cosee
# checkpoint carries its threshold range. Usage: cli_baselines.sh <envit binary> <work dir>
set -euo pipefail
envit=$1
dir=$2
rm -rf "$dir"
mkdir -p "$dir"
common=(--subset 512 --val 128 --batch 64 --dim 32 --depth 4 --heads 2 --mlp 64 --patch 7 --exits 1,2,3,4
        --epochs 2 --steps 12 --warmup 0 --threads 1 --eval-batch 128)
ev=(--points 8 --time-samples 200 --stream-samples 10 --repeats 1 --max-drop 0.02 --target-speedup 1.3 --threads 1)
fail() { echo "FAIL: $*" >&2; exit 1; }
check_eval() {  # <log> <sweep.csv>
  grep -q "identical exits and predictions at every threshold" "$1" || fail "simulated vs real early exit differ ($1)"
  [ "$(grep -c "calibrated on 128 validation samples" "$1")" = 2 ] || fail "calibration not reported ($1)"
  [ "$(($(wc -l < "$2") - 1))" -ge 3 ] || fail "sweep has fewer than 3 thresholds ($2)"
}
"$envit" train --scheme beem --out "$dir/beem" "${common[@]}" > "$dir/beem.log" 2>&1 || { cat "$dir/beem.log"; fail "train beem"; }
"$envit" eval --checkpoint "$dir/beem/last.safetensors" --rule beem --beem-weights cost "${ev[@]}" \
  > "$dir/beem_eval.log" 2>&1 || { cat "$dir/beem_eval.log"; fail "eval beem"; }
check_eval "$dir/beem_eval.log" "$dir/beem/eval/sweep.csv"
grep -q "beem exit weights (cost):" "$dir/beem_eval.log" || fail "beem weights not reported"
"$envit" eval --checkpoint "$dir/beem/last.safetensors" --rule beem --beem-weights accuracy "${ev[@]}" \
  --out "$dir/beem/eval_acc" > "$dir/beem_eval_acc.log" 2>&1 || { cat "$dir/beem_eval_acc.log"; fail "eval beem accuracy"; }
check_eval "$dir/beem_eval_acc.log" "$dir/beem/eval_acc/sweep.csv"
"$envit" train --scheme cosee --out "$dir/cosee" "${common[@]}" > "$dir/cosee.log" 2>&1 || { cat "$dir/cosee.log"; fail "train cosee"; }
grep -a -q '"cosee.range":"' "$dir/cosee/last.safetensors" || fail "cosee checkpoint lacks cosee.range"
"$envit" eval --checkpoint "$dir/cosee/last.safetensors" --rule energy "${ev[@]}" \
  > "$dir/cosee_eval.log" 2>&1 || { cat "$dir/cosee_eval.log"; fail "eval energy"; }
check_eval "$dir/cosee_eval.log" "$dir/cosee/eval/sweep.csv"
if "$envit" eval --checkpoint "$dir/beem/last.safetensors" --rule beem --beem-weights 1,2 "${ev[@]}" \
  > "$dir/bad.log" 2>&1; then fail "eval accepted 2 beem weights for 4 exits"; fi
grep -q "2 values for 4 exits" "$dir/bad.log" || fail "bad --beem-weights message: $(cat "$dir/bad.log")"
echo "cli baselines: ok"
