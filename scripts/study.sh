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
# usage: scripts/study.sh [--design first|rerun-weightsum|regime|paper] [--quick] [--out DIR] [--docs DIR]
#                         [--schemes "a b ..."] [--seeds "0 1 2"] [--settings "..."] [--jobs N] [--threads N]
#                         [--envit PATH] [--report-only] [--plan]
#                         paper design: --init HF_DIR|TIMM.safetensors --dataset folder --data DIR
#                                       [--image-size N] [--epochs N] [--val N] [--lr X]
# Designs (docs/results.md, "The study" and "The regime study"):
#   first            the first study: 9 schemes, seeds 0-2, from scratch and fine-tuned from one backbone
#   rerun-weightsum  the first study's design with --clip-mode weight-sum in every run
#   regime           2,000 training images, LONG (60 epochs) and SHORT (10 epochs) fine-tuning arms,
#                    seeds 0-4, each fine-tuned from its own backbone; --clip-mode weight-sum
#   paper            Table 4 / Table 2 at paper scale: every scheme fine-tuned from --init (a Hugging Face
#                    ViT directory or timm safetensors) on an image folder at lr 5e-5
# Every design but `first` copies each finished run's log.jsonl, sweep.csv, eval.json and run.json to
# DOCS/<design>/<setting>-<scheme>-s<seed>/, from which scripts/study_report.py regenerates its tables.
# --plan lists the runs (setting, scheme, seed, cache key), whether each is cached and the estimated CPU
# time of the rest, then stops.
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
DESIGN=first
INIT="" DATASET="" DATA="" IMAGE_SIZE="" P_EPOCHS=5 P_VAL=5000 P_LR=5e-5
SCHEMES_GIVEN=0 SEEDS_GIVEN=0 SETTINGS_GIVEN=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT="$2"; shift ;;
    --docs) DOCS="$2"; shift ;;
    --schemes) SCHEMES="$2"; SCHEMES_GIVEN=1; shift ;;
    --seeds) SEEDS="$2"; SEEDS_GIVEN=1; shift ;;
    --settings) SETTINGS="$2"; SETTINGS_GIVEN=1; shift ;;
    --jobs) JOBS="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --envit) ENVIT="$2"; shift ;;
    --report-only) REPORT_ONLY=1 ;;
    --plan) PLAN=1 ;;
    --design) DESIGN="$2"; shift ;;
    --init) INIT="$2"; shift ;;
    --dataset) DATASET="$2"; shift ;;
    --data) DATA="$2"; shift ;;
    --image-size) IMAGE_SIZE="$2"; shift ;;
    --epochs) P_EPOCHS="$2"; shift ;;
    --val) P_VAL="$2"; shift ;;
    --lr) P_LR="$2"; shift ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "study.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$DESIGN" in
  first|rerun-weightsum) KNOWN_SETTINGS="scratch finetune" ;;
  regime)
    KNOWN_SETTINGS="long short long-x12"
    [[ $SCHEMES_GIVEN == 1 ]] || SCHEMES="vit-ee envit-sd envit-kd envit envit-p0.1"
    [[ $SEEDS_GIVEN == 1 ]] || SEEDS="0 1 2 3 4" ;;
  paper)
    KNOWN_SETTINGS="paper"
    [[ $SCHEMES_GIVEN == 1 ]] || SCHEMES="vit-ee envit-sd envit-kd envit"
    [[ $SEEDS_GIVEN == 1 ]] || SEEDS="0"
    [[ -n "$INIT" && -n "$DATA" ]] || { echo "study.sh: --design paper needs --init (a Hugging Face ViT directory or timm safetensors) and --data (an image folder)" >&2; exit 2; }
    [[ -z "$DATASET" || "$DATASET" == folder ]] || { echo "study.sh: --design paper trains on an image folder (--dataset folder)" >&2; exit 2; }
    INIT="$(cd "$(dirname "$INIT")" && pwd)/$(basename "$INIT")"
    DATA="$(cd "$DATA" && pwd)" ;;
  *) echo "study.sh: unknown design '$DESIGN' (first, rerun-weightsum, regime, paper)" >&2; exit 2 ;;
esac
[[ $SETTINGS_GIVEN == 1 ]] || SETTINGS="$KNOWN_SETTINGS"
for s in $SETTINGS; do
  [[ " $KNOWN_SETTINGS " == *" $s "* ]] || { echo "study.sh: design $DESIGN has no setting '$s' ($KNOWN_SETTINGS)" >&2; exit 2; }
done
[[ "$DESIGN" == paper || ( -z "$INIT" && -z "$DATA" && -z "$DATASET" && -z "$IMAGE_SIZE" ) ]] ||
  { echo "study.sh: --init, --dataset, --data and --image-size belong to --design paper" >&2; exit 2; }

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
BACKBONE="--scheme vit-ee --exits 12 --skip 12000 --classes 0,1,2,3,4 --val 1000 --epochs 6 --lr 2e-3 --warmup 100"
EVAL="--time-samples 300 --stream-samples 0 --repeats 1 --points 12 --target-speedup 1.5,2 --max-drop 0.01"
# Every flag whose default the program could change, given explicitly (designs after the first).
FM=/usr/share/datasets/fashion-mnist
EXPLICIT="--dataset fashion-mnist --data $FM --norm auto --crop-pad 0 --rrc-scale 0 --min-lr 1e-5 --clip 1.0 --reduction batch --teacher full --eval-batch 256"
# The regime study: fine-tuning only, 2,000 training and 1,000 validation images (the first 3,000,
# seeded split), LONG and SHORT arms with the same lr and warm-up, every run clipped by weight sum.
R_MODEL="--depth 12 --patch 7 --dim 64 --heads 2 --mlp 128 --alpha 0.5 --tau 4 --weight-decay 0.05 --batch 128"
R_TARGET="--subset 3000 --val 1000"
R_LONG="--epochs 60 --lr 1e-3 --warmup-steps 30"
R_SHORT="--epochs 10 --lr 1e-3 --warmup-steps 30"
# The paper-scale design: the paper's batch 128, lr 5e-5, alpha 0.5, tau 4, p_M 0.3, AdamW; what the
# paper does not state (epochs, warm-up, weight decay, clipping, augmentation) is ours and explicit.
P_FLAGS="--dataset folder --alpha 0.5 --tau 4 --weight-decay 0.05 --batch 128 --min-lr 0 --clip 1.0 --clip-mode weight-sum --reduction batch --teacher full --norm auto --crop-pad 0 --rrc-scale 0.08 --hflip --crop-fraction 1 --eval-batch 64"
if [[ $QUICK == 1 ]]; then
  MODEL="--depth 12 --patch 7 --dim 32 --heads 2 --mlp 64 --p-max 0.3 --alpha 0.5 --tau 4 --weight-decay 0.05 --batch 64"
  TARGET="--subset 2000 --val 400"
  SCRATCH="--epochs 2 --lr 2e-3 --warmup 10"
  FINETUNE="--epochs 1 --lr 1e-3 --warmup 5"
  BACKBONE="--scheme vit-ee --exits 12 --skip 2000 --subset 4000 --classes 0,1,2,3,4 --val 400 --epochs 1 --lr 2e-3 --warmup 5"
  EVAL="--time-samples 200 --stream-samples 0 --repeats 1 --points 8 --target-speedup 1.5,2 --max-drop 0.01"
  R_MODEL="--depth 12 --patch 7 --dim 32 --heads 2 --mlp 64 --alpha 0.5 --tau 4 --weight-decay 0.05 --batch 64"
  R_TARGET="--subset 600 --val 200"
  R_LONG="--epochs 2 --lr 1e-3 --warmup-steps 2"
  R_SHORT="--epochs 1 --lr 1e-3 --warmup-steps 2"
  [[ -n "$OUT" ]] || OUT="$ROOT/build/study-quick"
  [[ -n "$DOCS" ]] || DOCS="$OUT/report"
  [[ $DESIGN == regime ]] || SEEDS="${SEEDS%% *}"
fi
if [[ $DESIGN == paper ]]; then
  EVAL="$EVAL --data $DATA"
  P_FLAGS="$P_FLAGS --data $DATA --epochs $P_EPOCHS --lr $P_LR --val $P_VAL --warmup-steps 0"
  [[ -z "$IMAGE_SIZE" ]] || P_FLAGS="$P_FLAGS --image-size $IMAGE_SIZE"
fi
[[ -n "$OUT" ]] || OUT="$ROOT/build/study"
[[ -n "$DOCS" ]] || DOCS="$ROOT/docs/study"
mkdir -p "$OUT/runs" "$OUT/probe"
OUT="$(cd "$OUT" && pwd)"
# The first design keeps its manifest name (and its report the docs/study/ top level); the others
# have their own manifest and copy their runs' files under DOCS/<design>/.
MANIFEST="$OUT/manifest.tsv"
[[ $DESIGN == first ]] || MANIFEST="$OUT/manifest-$DESIGN.tsv"
RUN_DOCS=""
[[ $DESIGN == first ]] || RUN_DOCS="$DOCS/$DESIGN"

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

# ---- CPU-time estimate for --plan --------------------------------------------------------------
# CPU seconds (user + system, 1 thread) per training step of the study's model (dim 64, 12 blocks,
# batch 128), the epoch's validation pass included: a 2-epoch minus a 1-epoch run of the regime
# design's flags (15 steps an epoch; the backbone: 40 minus 20 steps of its recipe); one evaluation
# (EVAL_S) likewise. Measured on the 2-core AMD EPYC VM of docs/performance.md at load 10, which
# inflates CPU time too; schemes not listed take vit-ee's.
declare -A STEP_S=([vit-ee]=0.257 [envit-sd]=0.255 [envit-kd]=0.187 [envit]=0.233 [backbone]=0.303)
EVAL_S=6.3
# Paper design: ViT-B/16 at 224x224, 2 threads: 45.3 s per batch-128 step (docs/performance.md, 3 x the
# measured batch-128 forward of 8.47 img/s), evaluation at 8.47 img/s.
PAPER_STEP_S=45.3 PAPER_IMG_S=8.47
PLAN_TOTAL=0
plan_seconds() {  # LABEL FLAGS RUN_DIR: estimated CPU seconds still needed (0 when cached)
  local steps sec
  if [[ -f "$3/done" ]]; then echo 0; return; fi
  if [[ $DESIGN == paper ]]; then
    local n_train n_eval
    n_train=$(find "$DATA/train" -type f | wc -l)
    n_eval=$(find "$DATA/val" "$DATA/test" -type f 2>/dev/null | wc -l || true)
    steps=$(( (n_train - P_VAL) / 128 * P_EPOCHS ))
    sec=$(python3 -c "print(round($steps * $PAPER_STEP_S + ($n_eval + $P_VAL + 300 * 15) / $PAPER_IMG_S))")
  else
    # shellcheck disable=SC2086
    steps=$("$ENVIT" train $(echo "$2" | sed 's/--init [^ ]*//; s/--allow-new-heads//') --print-config \
              --threads 1 --out "$OUT/plan-probe" < /dev/null 2>/dev/null | sed -n 's/^train.total_steps=//p')
    local per=${STEP_S[$(base_scheme "$1")]:-${STEP_S[vit-ee]}} ev=$EVAL_S
    [[ "$1" == backbone ]] && ev=0
    sec=$(python3 -c "print(round(${steps:-0} * $per + $ev))")
  fi
  echo "$sec"
}
plan_total() {
  if [[ $DESIGN == paper ]]; then
    echo "estimated time of the runs still to train, for ViT-B/16 at 224x224 on 2 threads (--threads 2 --jobs 1): $(python3 -c "print('%.1f hours' % ($PLAN_TOTAL / 3600))") ($PLAN_TOTAL s)"
    return
  fi
  echo "estimated CPU time of the runs still to train: $(python3 -c "print('%.2f core-hours' % ($PLAN_TOTAL / 3600))") ($PLAN_TOTAL s; with --jobs $JOBS about $(python3 -c "print('%.1f' % ($PLAN_TOTAL / 3600 / $JOBS))") hours of wall-clock)"
}

# The rule each scheme exits by (its authors' own).
rule_of() {
  case "$1" in beem) echo beem ;; cosee) echo energy ;; *) echo confidence ;; esac
}
# A scheme label of the regime design: envit-p0.1 is envit at p_M 0.1; every other label is a scheme.
base_scheme() { [[ "$1" == envit-p* ]] && echo envit || echo "$1"; }
p_max_of() { [[ "$1" == envit-p* ]] && echo "${1#envit-p}" || echo 0.3; }

# committed SETTING SCHEME SEED KEY: true when the repository already holds this run's files
# (DOCS/<design>/..., copied by run_one) under the same key: same flags, scheme numerics and thread
# count. Such a run is not trained again, on this machine or any other: the study continues across
# machines whose OUT is empty, from what earlier working periods committed. Its files are kept as
# they are (run.json names the evaluation they came from).
committed() {
  [[ -n "$RUN_DOCS" ]] || return 1
  local f="$RUN_DOCS/$1-$2-s$3/run.json"
  [[ -f "$f" ]] && grep -q "\"key\":\"$4\"" "$f"
}

# run_one SETTING SCHEME SEED KEY FLAGS: trains (unless cached) and evaluates (unless cached).
run_one() {
  local setting="$1" scheme="$2" seed="$3" key="$4" flags="$5" dir="$OUT/runs/$4"
  if [[ ! -f "$dir/done" ]] && committed "$setting" "$scheme" "$seed" "$key"; then
    echo "$(date -u +%H:%M:%S) committed: $setting $scheme seed $seed ($RUN_DOCS/$setting-$scheme-s$seed)"
    return 0
  fi
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
    # The machine that trained it: CPU model and the kernel set in use (envit --version).
    printf '{"cpu":"%s","kernels":"%s"}\n' "$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//')" \
      "$("$ENVIT" --version | tail -n 1 | sed 's/^kernels: //' | tr -d '"')" > "$dir/machine.json"
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
  local machine='{}'
  [[ -f "$dir/machine.json" ]] && machine=$(cat "$dir/machine.json")
  # How soft the soft labels are: the final exit's mean normalised entropy at tau 4 on the test set.
  [[ -f "$dir/eval-$ekey/teacher_entropy" ]] ||
    python3 "$ROOT/scripts/study_report.py" --teacher-entropy "$dir/eval-$ekey/logits_0.safetensors" --tau 4 \
      > "$dir/eval-$ekey/teacher_entropy"
  printf '{"setting":"%s","scheme":"%s","seed":%s,"key":"%s","threads":%s,"rule":"%s","train_seconds":%s,"flags":"%s","eval_flags":"%s","eval":"eval-%s","machine":%s,"teacher_entropy_tau4":%s}\n' \
    "$setting" "$scheme" "$seed" "$key" "$THREADS" "$rule" "$(cat "$dir/done")" "${flags//$OUT/OUT}" "$EVAL" "$ekey" "$machine" \
    "$(cat "$dir/eval-$ekey/teacher_entropy")" > "$dir/run.json"
  if [[ -n "$RUN_DOCS" ]]; then  # the files the report regenerates from, kept in the repository
    local d="$RUN_DOCS/$setting-$scheme-s$seed"
    mkdir -p "$d"
    cp "$dir/run.json" "$dir/log.jsonl" "$dir/eval-$ekey/eval.json" "$dir/eval-$ekey/sweep.csv" "$d/"
  fi
  echo "$(date -u +%H:%M:%S) $state: $setting $scheme seed $seed ($(cat "$dir/done") s training) -> $dir"
}

if [[ $REPORT_ONLY == 0 ]]; then
  declare -A FP
  MISSING=""
  for s in $SCHEMES; do
    FP[$s]=$(fingerprint "$(base_scheme "$s")")
    [[ "${FP[$s]}" == missing ]] && MISSING="$MISSING $s"
  done
  [[ -z "$MISSING" ]] || echo "study.sh: the program does not know:$MISSING (reported as missing)"
  printf '%s\n' $MISSING > "$OUT/missing.txt"

  # Backbones: the first study's one (seed 0); the regime design's, one per seed, same recipe.
  declare -A BB_FLAGS BB_KEY
  bb_seeds="0"
  [[ $DESIGN == regime ]] && bb_seeds="$SEEDS"
  for seed in $bb_seeds; do
    f="$MODEL $BACKBONE --seed $seed"
    [[ $DESIGN == first ]] || f="$f $EXPLICIT --clip-mode weight-sum"
    BB_FLAGS[$seed]="$f"
    BB_KEY[$seed]=$(printf '%s|%s|%s' "$f" "$(fingerprint vit-ee)" "$THREADS" | hash)
  done
  CLIP=""
  [[ $DESIGN == first ]] || CLIP="$EXPLICIT --clip-mode weight-sum"

  # Seed-major order, so that an interrupted study has whole seeds for every scheme. The manifest
  # names the runs of this configuration: the report reads those and nothing else under runs/.
  : > "$MANIFEST.tmp"
  for seed in $SEEDS; do
    for setting in $SETTINGS; do
      for s in $SCHEMES; do
        [[ "${FP[$s]}" == missing ]] && continue
        bkey=""
        case "$DESIGN:$setting" in
          *:scratch) flags="--scheme $s --seed $seed $MODEL $TARGET $SCRATCH $CLIP" ;;
          *:finetune)
            bkey=${BB_KEY[0]}
            flags="--scheme $s --seed $seed $MODEL $TARGET $FINETUNE --init $OUT/runs/$bkey/last.safetensors --allow-new-heads $CLIP" ;;
          regime:*)
            # LONG: every scheme; SHORT: not the p_M 0.1 dose; long-x12: the single-exit model only.
            [[ $setting == short && $s == envit-p* ]] && continue
            [[ $setting == long-x12 && $s != vit-ee ]] && continue
            exits="2,4,6,8,10,12" arm="$R_LONG"
            [[ $setting == long-x12 ]] && exits=12
            [[ $setting == short ]] && arm="$R_SHORT"
            bkey=${BB_KEY[$seed]}
            flags="--scheme $(base_scheme "$s") --seed $seed $R_MODEL --p-max $(p_max_of "$s") --exits $exits $R_TARGET $arm $CLIP --init $OUT/runs/$bkey/last.safetensors --allow-new-heads" ;;
          paper:*) flags="--scheme $(base_scheme "$s") --seed $seed --p-max $(p_max_of "$s") $P_FLAGS --init $INIT --allow-new-heads" ;;
        esac
        # The key names OUT by a placeholder, so that a run's key is the same on every machine.
        key=$(printf '%s|%s|%s' "${flags//$OUT/OUT}" "${FP[$s]}" "$THREADS" | hash)
        [[ -z "$bkey" ]] || key=$(printf '%s|%s|%s|%s' "${flags//$OUT/OUT}" "${FP[$s]}" "$THREADS" "$bkey" | hash)
        printf '%s\t%s\t%s\t%s\t%s\n' "$setting" "$s" "$seed" "$key" "$flags" >> "$MANIFEST.tmp"
      done
    done
  done
  mv "$MANIFEST.tmp" "$MANIFEST"
  need_bb=0
  [[ " $SETTINGS " == *" finetune "* || $DESIGN == regime ]] && need_bb=1
  # A backbone is trained only for runs still to train (not cached here, not committed).
  declare -A BB_NEEDED
  while IFS=$'\t' read -r setting s seed key flags; do
    [[ "$flags" == *"--init $OUT/runs/"* ]] || continue
    [[ -f "$OUT/runs/$key/done" ]] && continue
    committed "$setting" "$s" "$seed" "$key" && continue
    k=${flags#*--init "$OUT"/runs/}
    BB_NEEDED[${k%%/*}]=1
  done < "$MANIFEST"
  if [[ $PLAN == 1 ]]; then
    if [[ $need_bb == 1 ]]; then
      for seed in $bb_seeds; do
        k=${BB_KEY[$seed]}
        [[ -n "${BB_NEEDED[$k]:-}" ]] || { echo "backbone seed $seed $k not needed 0 s"; continue; }
        t=$(plan_seconds backbone "${BB_FLAGS[$seed]}" "$OUT/runs/$k")
        PLAN_TOTAL=$((PLAN_TOTAL + t))
        echo "backbone seed $seed $k $([[ -f "$OUT/runs/$k/done" ]] && echo cached || echo to-train) ${t} s: ${BB_FLAGS[$seed]}"
      done
    fi
    while IFS=$'\t' read -r setting s seed key flags; do
      if [[ ! -f "$OUT/runs/$key/done" ]] && committed "$setting" "$s" "$seed" "$key"; then
        echo "$setting $s seed $seed $key committed 0 s"
        continue
      fi
      t=$(plan_seconds "$s" "$flags" "$OUT/runs/$key")
      PLAN_TOTAL=$((PLAN_TOTAL + t))
      echo "$setting $s seed $seed $key $([[ -f "$OUT/runs/$key/done" ]] && echo cached || echo to-train) ${t} s"
    done < <(cat "$MANIFEST")
    plan_total
    exit 0
  fi
  if [[ $need_bb == 1 ]]; then
    for seed in $bb_seeds; do
      [[ -n "${BB_NEEDED[${BB_KEY[$seed]}]:-}" ]] || continue
      echo "$(date -u +%H:%M:%S) backbone seed $seed -> $OUT/runs/${BB_KEY[$seed]}"
      run_one finetune backbone "$seed" "${BB_KEY[$seed]}" "${BB_FLAGS[$seed]}" &
      while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
    done
    wait
    for seed in $bb_seeds; do
      [[ -n "${BB_NEEDED[${BB_KEY[$seed]}]:-}" ]] || continue
      [[ -f "$OUT/runs/${BB_KEY[$seed]}/done" ]] || { echo "study.sh: backbone seed $seed failed" >&2; exit 1; }
    done
  fi
  pids=()
  while IFS=$'\t' read -r setting s seed key flags; do
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
    run_one "$setting" "$s" "$seed" "$key" "$flags" &
    pids+=($!)
  done < "$MANIFEST"
  fail=0
  for p in "${pids[@]}"; do wait "$p" || fail=1; done
  [[ $fail == 0 ]] || echo "study.sh: some runs failed (see above); the report covers those that finished" >&2
fi

# The full study's report also refreshes the tables in docs/results.md; the other designs' reports
# are regenerated from the files copied under DOCS/<design>/ (study_report.py --design).
RESULTS=""
[[ $QUICK == 0 && "$DOCS" == "$ROOT/docs/study" ]] && RESULTS="$ROOT/docs/results.md"
if [[ $DESIGN == first ]]; then
  python3 "$ROOT/scripts/study_report.py" --out "$OUT" --docs "$DOCS" --schemes "$SCHEMES" --seeds "$SEEDS" \
    --settings "$SETTINGS" --results "$RESULTS"
else
  python3 "$ROOT/scripts/study_report.py" --design "$DESIGN" --docs "$DOCS" --schemes "$SCHEMES" --seeds "$SEEDS" \
    --settings "$SETTINGS" --results "$RESULTS"
fi
}
main "$@"
exit
