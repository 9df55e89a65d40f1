#!/usr/bin/env bash
# scripts/study.sh — the study of docs/results.md: every early-exit scheme, several seeds, two
# settings (from scratch; fine-tuned from one backbone pretrained without exits), each run trained
# with `envit train`, evaluated with `envit eval` (per-exit accuracy, threshold sweep, calibration on
# the validation split) and summarised by scripts/study_report.py into runs.csv, the Table 2 and
# Table 4 analogues and the Fig. 3 analogue (SVG).
#
# Every run lives in OUT/runs/<key>/ with its checkpoint, log and eval.json. The key hashes the
# run's flags and the scheme's behaviour fingerprint (a 2-step training probe of that scheme, whose
# logits change whenever the scheme's numerics change), so the study resumes where it stopped and a
# code change redoes only the schemes it affects. Evaluations are keyed on the eval flags and on the
# content of include/ and examples/, so they are redone after any code change (they are cheap).
# Deterministic for a given seed and thread count (the thread count is part of every key).
#
# usage: scripts/study.sh [--quick] [--out DIR] [--docs DIR] [--schemes "a b ..."] [--seeds "0 1 2"]
#                         [--settings "scratch finetune"] [--jobs N] [--threads N] [--envit PATH]
#                         [--report-only] [--plan]
# --plan lists the runs (setting, scheme, seed, cache key, flags) and whether each is cached, then stops.
set -euo pipefail
# The whole script is one function, parsed before it runs: editing this file during a study is safe.
main() {
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

QUICK=0
OUT=""
DOCS=""
SCHEMES="vit-ee sdn byot lgvit beem cosee envit-sd envit-kd envit"
SEEDS="0 1 2"
SETTINGS="scratch finetune"
JOBS=2
THREADS=1
ENVIT=""
REPORT_ONLY=0
PLAN=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT="$2"; shift ;;
    --docs) DOCS="$2"; shift ;;
    --schemes) SCHEMES="$2"; shift ;;
    --seeds) SEEDS="$2"; shift ;;
    --settings) SETTINGS="$2"; shift ;;
    --jobs) JOBS="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --envit) ENVIT="$2"; shift ;;
    --report-only) REPORT_ONLY=1 ;;
    --plan) PLAN=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "study.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for s in $SETTINGS; do
  [[ "$s" == scratch || "$s" == finetune ]] || { echo "study.sh: unknown setting '$s' (scratch, finetune)" >&2; exit 2; }
done

# ---- The design (docs/results.md explains each choice) -------------------------------------------
# 12 blocks, an exit after every other block, the paper's alpha 0.5, tau 4, p_M 0.3, AdamW (weight
# decay 0.05), batch 128. Target task: the first 12,000 Fashion-MNIST training images (10,000 train,
# 2,000 validation, seeded split), the full 10,000-image test set.
MODEL="--depth 12 --patch 7 --dim 64 --heads 2 --mlp 128 --p-max 0.3 --alpha 0.5 --tau 4 --weight-decay 0.05 --batch 128"
TARGET="--subset 12000 --val 2000"
SCRATCH="--epochs 6 --lr 2e-3 --warmup 100"
FINETUNE="--epochs 3 --lr 1e-3 --warmup 50"
# The backbone of the fine-tuning setting: one final exit only, trained on the disjoint images
# 12,000..59,999 restricted to classes 0-4, so the target task has unseen images and unseen classes.
BACKBONE="--scheme vit-ee --exits 12 --skip 12000 --classes 0,1,2,3,4 --val 1000 --epochs 6 --lr 2e-3 --warmup 100 --seed 0"
EVAL="--time-samples 300 --stream-samples 0 --repeats 1 --points 12 --target-speedup 1.5,2 --max-drop 0.01"
if [[ $QUICK == 1 ]]; then
  MODEL="--depth 12 --patch 7 --dim 32 --heads 2 --mlp 64 --p-max 0.3 --alpha 0.5 --tau 4 --weight-decay 0.05 --batch 64"
  TARGET="--subset 2000 --val 400"
  SCRATCH="--epochs 2 --lr 2e-3 --warmup 10"
  FINETUNE="--epochs 1 --lr 1e-3 --warmup 5"
  BACKBONE="--scheme vit-ee --exits 12 --skip 2000 --subset 4000 --classes 0,1,2,3,4 --val 400 --epochs 1 --lr 2e-3 --warmup 5 --seed 0"
  EVAL="--time-samples 200 --stream-samples 0 --repeats 1 --points 8 --target-speedup 1.5,2 --max-drop 0.01"
  [[ -n "$OUT" ]] || OUT="$ROOT/build/study-quick"
  [[ -n "$DOCS" ]] || DOCS="$OUT/report"
  SEEDS="${SEEDS%% *}"
fi
[[ -n "$OUT" ]] || OUT="$ROOT/build/study"
[[ -n "$DOCS" ]] || DOCS="$ROOT/docs/study"
mkdir -p "$OUT/runs" "$OUT/probe"
OUT="$(cd "$OUT" && pwd)"

# ---- The program ----------------------------------------------------------------------------------
hash() { sha1sum | cut -c1-16; }
# Content of the library and the program: the eval cache key.
CODE=$(cd "$ROOT" && find include examples -type f \( -name '*.hpp' -o -name '*.cpp' -o -name '*.h' \) | LC_ALL=C sort |
       xargs sha1sum | hash)
if [[ -z "$ENVIT" && $REPORT_ONLY == 0 ]]; then
  cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release > "$OUT/build.log" 2>&1
  cmake --build "$ROOT/build" -j2 --target envit_cli >> "$OUT/build.log" 2>&1 ||
    { echo "study.sh: building envit failed, see $OUT/build.log" >&2; exit 1; }
  # The study runs its own copy, so rebuilding the tree while it runs changes nothing under it.
  mkdir -p "$OUT/bin"
  cp "$ROOT/build/examples/envit" "$OUT/bin/envit-$CODE.tmp" && mv "$OUT/bin/envit-$CODE.tmp" "$OUT/bin/envit-$CODE"
  ENVIT="$OUT/bin/envit-$CODE"
fi

# Behaviour fingerprint of a scheme: logits of a tiny 2-step training run (1 thread), or "missing"
# when the program does not know the scheme.
fingerprint() {
  local s="$1" d="$OUT/probe/$1-$CODE"
  if [[ ! -f "$d/fingerprint" ]]; then
    mkdir -p "$d"
    if "$ENVIT" train --scheme "$s" --depth 4 --patch 14 --dim 16 --heads 2 --mlp 32 --subset 256 --batch 64 \
         --epochs 1 --steps 2 --lr 1e-3 --warmup 1 --threads 1 --seed 0 --out "$d" > "$d/train.log" 2>&1 &&
       "$ENVIT" eval --checkpoint "$d/last.safetensors" --threads 1 --points 2 --time-samples 8 --stream-samples 0 \
         --repeats 1 --out "$d/eval" > "$d/eval.log" 2>&1; then
      python3 -c 'import hashlib,sys; d=open(sys.argv[1],"rb").read(); n=int.from_bytes(d[:8],"little"); print(hashlib.sha1(d[8+n:]).hexdigest()[:16])' \
        "$d/eval/logits_0.safetensors" > "$d/fingerprint"
    elif grep -Eq "unknown scheme|--scheme: .* not in" "$d/train.log"; then
      echo missing > "$d/fingerprint"
    else
      echo "study.sh: probing scheme '$s' failed, see $d/train.log" >&2; exit 1
    fi
  fi
  cat "$d/fingerprint"
}

# The rule each scheme exits by (its authors' own).
rule_of() {
  case "$1" in beem) echo beem ;; cosee) echo energy ;; *) echo confidence ;; esac
}

# run_one SETTING SCHEME SEED KEY FLAGS: trains (unless cached) and evaluates (unless cached).
run_one() {
  local setting="$1" scheme="$2" seed="$3" key="$4" flags="$5" dir="$OUT/runs/$4"
  mkdir -p "$dir"
  local state="cached"
  if [[ ! -f "$dir/done" ]]; then
    state="trained"
    local t0=$SECONDS resume=""
    # An interrupted run continues exactly from its last epoch's checkpoint.
    [[ -f "$dir/last.safetensors" ]] && resume="--resume $dir/last.safetensors"
    # shellcheck disable=SC2086
    if ! "$ENVIT" train $flags $resume --threads "$THREADS" --out "$dir" >> "$dir/train.log" 2>&1; then
      echo "study.sh: training failed: $setting $scheme seed $seed, see $dir/train.log" >&2
      return 1
    fi
    echo $((SECONDS - t0)) > "$dir/done"
  fi
  [[ "$scheme" == backbone ]] && return 0
  local rule ekey
  rule=$(rule_of "$scheme")
  ekey=$(printf '%s|%s|%s|%s' "$EVAL" "$rule" "$THREADS" "$CODE" | hash)
  if [[ ! -f "$dir/eval-$ekey/eval.json" ]]; then
    # shellcheck disable=SC2086
    if ! "$ENVIT" eval --checkpoint "$dir/last.safetensors" --rule "$rule" $EVAL --threads "$THREADS" \
         --out "$dir/eval-$ekey.tmp" > "$dir/eval.log" 2>&1; then
      echo "study.sh: eval failed: $setting $scheme seed $seed, see $dir/eval.log" >&2
      return 1
    fi
    rm -rf "$dir/eval-$ekey" && mv "$dir/eval-$ekey.tmp" "$dir/eval-$ekey"
  fi
  printf '{"setting":"%s","scheme":"%s","seed":%s,"threads":%s,"rule":"%s","train_seconds":%s,"flags":"%s","eval_flags":"%s","eval":"eval-%s"}\n' \
    "$setting" "$scheme" "$seed" "$THREADS" "$rule" "$(cat "$dir/done")" "$flags" "$EVAL" "$ekey" > "$dir/run.json"
  echo "$(date -u +%H:%M:%S) $state: $setting $scheme seed $seed ($(cat "$dir/done") s training) -> $dir"
}

if [[ $REPORT_ONLY == 0 ]]; then
  declare -A FP
  MISSING=""
  for s in $SCHEMES; do
    FP[$s]=$(fingerprint "$s")
    [[ "${FP[$s]}" == missing ]] && MISSING="$MISSING $s"
  done
  [[ -z "$MISSING" ]] || echo "study.sh: the program does not know:$MISSING (reported as missing)"
  printf '%s\n' $MISSING > "$OUT/missing.txt"

  BB_FLAGS="$MODEL $BACKBONE"
  BB_KEY=$(printf '%s|%s|%s' "$BB_FLAGS" "$(fingerprint vit-ee)" "$THREADS" | hash)

  # Seed-major order, so that an interrupted study has whole seeds for every scheme. The manifest
  # names the runs of this configuration: the report reads those and nothing else under runs/.
  : > "$OUT/manifest.tmp"
  for seed in $SEEDS; do
    for setting in $SETTINGS; do
      for s in $SCHEMES; do
        [[ "${FP[$s]}" == missing ]] && continue
        if [[ $setting == scratch ]]; then
          flags="--scheme $s --seed $seed $MODEL $TARGET $SCRATCH"
          key=$(printf '%s|%s|%s' "$flags" "${FP[$s]}" "$THREADS" | hash)
        else
          flags="--scheme $s --seed $seed $MODEL $TARGET $FINETUNE --init $OUT/runs/$BB_KEY/last.safetensors --allow-new-heads"
          key=$(printf '%s|%s|%s|%s' "$flags" "${FP[$s]}" "$THREADS" "$BB_KEY" | hash)
        fi
        printf '%s\t%s\t%s\t%s\t%s\n' "$setting" "$s" "$seed" "$key" "$flags" >> "$OUT/manifest.tmp"
      done
    done
  done
  mv "$OUT/manifest.tmp" "$OUT/manifest.tsv"
  if [[ $PLAN == 1 ]]; then
    echo "backbone $BB_KEY $([[ -f "$OUT/runs/$BB_KEY/done" ]] && echo cached || echo to-train): $BB_FLAGS"
    while IFS=$'\t' read -r setting s seed key flags; do
      echo "$setting $s seed $seed $key $([[ -f "$OUT/runs/$key/done" ]] && echo cached || echo to-train)"
    done < "$OUT/manifest.tsv"
    exit 0
  fi
  if [[ " $SETTINGS " == *" finetune "* ]]; then
    echo "$(date -u +%H:%M:%S) backbone -> $OUT/runs/$BB_KEY"
    run_one finetune backbone 0 "$BB_KEY" "$BB_FLAGS"
  fi
  pids=()
  while IFS=$'\t' read -r setting s seed key flags; do
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
    run_one "$setting" "$s" "$seed" "$key" "$flags" &
    pids+=($!)
  done < "$OUT/manifest.tsv"
  fail=0
  for p in "${pids[@]}"; do wait "$p" || fail=1; done
  [[ $fail == 0 ]] || echo "study.sh: some runs failed (see above); the report covers those that finished" >&2
fi

# The full study's report also refreshes the tables in docs/results.md.
RESULTS=""
[[ $QUICK == 0 && "$DOCS" == "$ROOT/docs/study" ]] && RESULTS="$ROOT/docs/results.md"
python3 "$ROOT/scripts/study_report.py" --out "$OUT" --docs "$DOCS" --schemes "$SCHEMES" --seeds "$SEEDS" \
  --settings "$SETTINGS" --results "$RESULTS"
}
main "$@"
exit
