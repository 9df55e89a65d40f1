#!/usr/bin/env bash
# Program-level fault tests of `envit train` on a small synthetic dataset (envit_fault_data):
#   geometry     a 27x27 test split against 28x28 training images: refused before any step, naming the file
#   interrupt    SIGINT mid-run: stops after the step with a checkpoint (exit 130); the resumed run
#                ends with the uninterrupted run's checkpoint, byte for byte
#   kill_resume  kill -9 KILLS times, resuming each time: at a random instant, every other kill
#                then at the start of the next checkpoint write; every checkpoint left behind
#                restores (all tensors, shapes, finite values), and the final one equals the
#                uninterrupted run's
#   disk_full    a checkpoint write past `prlimit --fsize`: clear error, exit 1, no temporary left,
#                the previous checkpoint byte-identical and resumable
#   lock         a second trainer on a directory in use refuses with the holder's pid
# Usage: faults.sh <test> <envit program> <envit_fault_data>
set -euo pipefail
TEST=$1 ENVIT=$2 MKDATA=$3
T=$(mktemp -d "${TMPDIR:-/tmp}/envit-fault-XXXXXX")
BG=""
cleanup() { [ -n "$BG" ] && kill -9 "$BG" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL ($TEST): $*" >&2; exit 1; }

mkdir -p "$T/data" && "$MKDATA" "$T/data" 512 64 28 28
# 32 steps per epoch, 3 epochs; a checkpoint after every step (--save-every 1) and at epoch ends.
BASE=(--data "$T/data" --patch 7 --dim 16 --depth 2 --heads 2 --mlp 32 --exits 1,2 --batch 16 --lr 2e-3 --warmup 5
      --threads 1 --eval-batch 64 --seed 5)
FLAGS=("${BASE[@]}" --epochs 3 --save-every 1)
reference() {  # the uninterrupted run, in $T/ref
  "$ENVIT" train "${FLAGS[@]}" --out "$T/ref" > "$T/ref.log" 2>&1 || { cat "$T/ref.log"; fail "reference run failed"; }
  [ -f "$T/ref/last.safetensors" ] || fail "reference run wrote no checkpoint"
}
resume_flags() { [ -f "$1/last.safetensors" ] && echo "--resume $1/last.safetensors" || true; }

case "$TEST" in
geometry)
  rm -rf "$T/data" && mkdir -p "$T/data" && "$MKDATA" "$T/data" 64 32 28 27
  rc=0
  "$ENVIT" train "${FLAGS[@]}" --out "$T/run" > "$T/log" 2>&1 || rc=$?
  [ $rc -eq 1 ] || { cat "$T/log"; fail "exit code $rc, expected 1"; }
  grep -qF "'$T/data/t10k-images-idx3-ubyte' (idx:$T/data/test) has 1x27x27 images (C x H x W), the training split '$T/data/train-images-idx3-ubyte' has 1x28x28" "$T/log" || { cat "$T/log"; fail "no message naming the file"; }
  ! grep -q "epoch 1" "$T/log" || fail "training started"
  [ ! -e "$T/run/last.safetensors" ] || fail "a checkpoint was written"
  ;;
interrupt)
  reference
  "$ENVIT" train "${FLAGS[@]}" --out "$T/run" > "$T/int.log" 2>&1 & BG=$!
  for _ in $(seq 1 2000); do [ -f "$T/run/last.safetensors" ] && break; sleep 0.005; done
  kill -INT "$BG"
  rc=0; wait "$BG" || rc=$?; BG=""
  [ $rc -eq 130 ] || { cat "$T/int.log"; fail "exit code $rc after SIGINT, expected 130 (the run may have ended first)"; }
  grep -q "stopped by SIGINT after step" "$T/int.log" || { cat "$T/int.log"; fail "no stop message"; }
  step=$(sed -n 's/.*stopped by SIGINT after step \([0-9]*\).*/\1/p' "$T/int.log")
  ls "$T/run" | grep -q '\.tmp\.' && fail "temporary file left"
  "$ENVIT" train "${FLAGS[@]}" --out "$T/run" --resume "$T/run/last.safetensors" > "$T/res.log" 2>&1 || { cat "$T/res.log"; fail "resume failed"; }
  grep -q "resumed from .* at step $step " "$T/res.log" || { cat "$T/res.log"; fail "did not resume at step $step"; }
  cmp "$T/ref/last.safetensors" "$T/run/last.safetensors" || fail "resumed run differs from the uninterrupted run"
  echo "interrupted at step $step; resumed run identical to the uninterrupted one"
  ;;
kill_resume)
  KILLS=${KILLS:-12}
  t0=$(date +%s%N); reference; t1=$(date +%s%N)
  "$ENVIT" train "${FLAGS[@]}" --steps 0 --out "$T/start" > "$T/start.log" 2>&1 || { cat "$T/start.log"; fail "startup run failed"; }
  t2=$(date +%s%N)
  span_ms=$(( (t1 - t0) / 1000000 )) start_ms=$(( (t2 - t1) / 1000000 ))  # one run; its startup alone
  [ $start_ms -lt $span_ms ] || start_ms=0
  RANDOM=${SEED:-20}
  kills=0 during_write=0 loads=0 runs=0
  while :; do
    runs=$((runs + 1))
    [ $runs -le $((KILLS * 3)) ] || fail "no progress after $runs runs"
    # shellcheck disable=SC2046
    "$ENVIT" train "${FLAGS[@]}" --out "$T/run" $(resume_flags "$T/run") >> "$T/kill.log" 2>&1 & BG=$!
    if [ $kills -lt "$KILLS" ]; then
      # uniform in [0, startup + 1.5 x (span - startup) / KILLS]: each run restarts from its
      # checkpoint, so the kills spread over the whole run (startup included) whatever share
      # startup takes, and most land before the run ends
      sleep "$(awk -v r=$RANDOM -v s="$span_ms" -v b="$start_ms" -v k="$KILLS" \
                 'BEGIN { printf "%.3f", (r / 32767.0) * (b + 1.5 * (s - b) / k) / 1000.0 }')"
      if [ $((kills % 2)) -eq 1 ]; then
        # every other kill then waits for this process's next checkpoint write (its <name>.tmp.<pid>
        # exists); builtins only, so the kill follows within microseconds, whatever the write takes
        until compgen -G "$T/run/*.tmp.$BG" > /dev/null || ! kill -0 "$BG" 2>/dev/null; do :; done
      fi
      if kill -9 "$BG" 2>/dev/null; then
        wait "$BG" 2>/dev/null || true
        kills=$((kills + 1))
        compgen -G "$T/run/*.tmp.$BG" > /dev/null && during_write=$((during_write + 1))  # its own temporary
        BG=""
        if [ -f "$T/run/last.safetensors" ]; then  # what is left must be a whole, loadable checkpoint
          "$ENVIT" train "${FLAGS[@]}" --steps 0 --out "$T/check" --resume "$T/run/last.safetensors" > "$T/check.log" 2>&1 \
            || { cat "$T/check.log"; fail "checkpoint left by kill $kills does not load"; }
          loads=$((loads + 1))
        fi
        continue
      fi
    fi
    rc=0; wait "$BG" || rc=$?; BG=""
    [ $rc -eq 0 ] || { tail -20 "$T/kill.log"; fail "run exited with $rc"; }
    break
  done
  cmp "$T/ref/last.safetensors" "$T/run/last.safetensors" || fail "run killed $kills times differs from the uninterrupted run"
  echo "kill -9 x $kills ($during_write during a checkpoint write, $loads checkpoints loaded after a kill), $runs runs: final checkpoint identical to the uninterrupted run; checkpoints lost: 0"
  ;;
disk_full)
  "$ENVIT" train "${BASE[@]}" --epochs 1 --out "$T/run" > "$T/e1.log" 2>&1 || { cat "$T/e1.log"; fail "first epoch failed"; }
  size=$(stat -c %s "$T/run/last.safetensors")
  cp "$T/run/last.safetensors" "$T/epoch1.safetensors"
  rc=0
  prlimit --fsize=$((size / 2)) "$ENVIT" train "${BASE[@]}" --epochs 2 --out "$T/run" \
      --resume "$T/run/last.safetensors" > "$T/full.log" 2>&1 || rc=$?
  [ $rc -eq 1 ] || { cat "$T/full.log"; fail "exit code $rc under a file-size limit, expected 1"; }
  grep -q "File too large" "$T/full.log" || { cat "$T/full.log"; fail "no EFBIG message"; }
  grep -q "the previous checkpoint '$T/run/last.safetensors' (if any) is intact" "$T/full.log" || { cat "$T/full.log"; fail "no intact note"; }
  ls "$T/run" | grep -q '\.tmp\.' && fail "temporary file left"
  cmp "$T/epoch1.safetensors" "$T/run/last.safetensors" || fail "the previous checkpoint changed"
  "$ENVIT" train "${BASE[@]}" --epochs 2 --out "$T/run" --resume "$T/run/last.safetensors" > "$T/e2.log" 2>&1 \
    || { cat "$T/e2.log"; fail "resume from the kept checkpoint failed"; }
  echo "write past the file-size limit ($((size / 2)) bytes) refused cleanly; previous checkpoint intact and resumed"
  ;;
lock)
  "$ENVIT" train "${BASE[@]}" --epochs 200 --save-every 1 --out "$T/run" > "$T/first.log" 2>&1 & BG=$!
  for _ in $(seq 1 2000); do [ -f "$T/run/last.safetensors" ] && break; sleep 0.005; done
  rc=0
  "$ENVIT" train "${FLAGS[@]}" --out "$T/run" > "$T/second.log" 2>&1 || rc=$?
  [ $rc -eq 1 ] || { cat "$T/second.log"; fail "second trainer exit code $rc, expected 1"; }
  grep -q "output directory '$T/run' is in use by another envit process (pid $BG" "$T/second.log" \
    || { cat "$T/second.log"; fail "no clear lock message"; }
  kill -TERM "$BG"; rc=0; wait "$BG" || rc=$?; BG=""
  [ $rc -eq 143 ] || { cat "$T/first.log"; fail "first trainer exit code $rc after SIGTERM, expected 143"; }
  "$ENVIT" train "${BASE[@]}" --epochs 200 --save-every 1 --steps 0 --out "$T/run" --resume "$T/run/last.safetensors" > "$T/third.log" 2>&1 \
    || { cat "$T/third.log"; fail "the directory stays locked after its holder exits"; }
  echo "second trainer refused while the first held the directory; free again after it stopped"
  ;;
*) fail "unknown test" ;;
esac
# In a sanitizer build a report can end a run with the exit code a test expects (ASan's default
# exit code is 1); a report in any log fails the test.
if grep -H -E "ERROR: [A-Za-z]+Sanitizer|runtime error: " "$T"/*log; then fail "sanitizer report above"; fi
