#!/usr/bin/env bash
# tests/mpi/run.sh MODE ENVIT COMPARE MPIRUN WORKDIR — data-parallel `envit train` checks (tests/mpi.cmake).
#   parity: 2 ranks x 1 thread vs 1 process x 1 thread, same seed and global batch, 20 steps of
#           envit: every step's loss and the final weights within 1e-5 relative.
#   lgvit, cosee, reduction, mmrazor: the same for the options whose loss uses batch statistics
#           (computed over the global batch through the BatchReduce hook): scheme lgvit with
#           BatchNorm heads (10 steps of stage 1, 10 of stage 2; the heads' near-shift entries within
#           1e-3, see compare_runs.cpp), cosee over two epochs (the second uses the first's signal
#           range, which must agree within 1e-5 relative), envit with --reduction remaining, byot mmrazor. cosee and
#           mmrazor at lr 1e-3: their hinge (COSEE's margin) and norm (mmrazor's hint) make the
#           trajectory sensitive to rounding at 3e-3, where even 1 against 2 threads of one process
#           drift to 3e-5 (mmrazor) by step 20.
#   resume: 10 steps on 2 ranks, resumed on 1 rank to step 20: steps 11-20 and the final weights
#           match the uninterrupted 1-process run (constant learning rate, so --steps does not
#           change the schedule).
#   fault:  a rank that fails (unreadable dataset on rank 1) and a rank killed with SIGKILL each
#           end the job with a non-zero exit; the last checkpoint is byte-for-byte intact.
set -u
mode=$1 envit=$2 compare=$3 mpirun=$4 work=$5
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
mpi=("$mpirun" --allow-run-as-root --oversubscribe)
common=(train --dim 32 --depth 4 --heads 2 --mlp 64 --patch 7 --val 64 --batch 32 --seed 3 --threads 1 --warmup-steps 0)
flags=("${common[@]}" --subset 704 --lr 0.003 --min-lr 0.003 --scheme envit --p-max 0.5)
fail() { echo "FAIL: $*"; exit 1; }

case $mode in
parity)
  OMP_NUM_THREADS=1 "$envit" "${flags[@]}" --steps 20 --out one --step-log one.jsonl 2>one.err || fail "1 process: $(cat one.err)"
  "${mpi[@]}" -np 2 "$envit" "${flags[@]}" --steps 20 --out two --step-log two.jsonl 2>two.err || fail "2 ranks: $(cat two.err)"
  [ "$(wc -l <two.jsonl)" = 20 ] || fail "2 ranks logged $(wc -l <two.jsonl) steps, expected 20 (rank 0 alone logs)"
  "$compare" steps one.jsonl two.jsonl 1e-5 || fail "losses differ"
  "$compare" weights one/last.safetensors two/last.safetensors 1e-5 || fail "weights differ"
  ;;
resume)
  "$envit" "${flags[@]}" --steps 20 --out one --step-log one.jsonl 2>one.err || fail "1 process: $(cat one.err)"
  "${mpi[@]}" -np 2 "$envit" "${flags[@]}" --steps 10 --out two --step-log two.jsonl 2>two.err || fail "2 ranks: $(cat two.err)"
  "$envit" "${flags[@]}" --steps 20 --out two --resume two/last.safetensors --step-log two.jsonl 2>res.err \
    || fail "resume on 1 rank: $(cat res.err)"
  grep -q "resumed from two/last.safetensors at step 10" res.err || fail "did not resume at step 10: $(cat res.err)"
  "$compare" steps one.jsonl two.jsonl 1e-5 11 || fail "resumed trajectory differs"
  "$compare" weights one/last.safetensors two/last.safetensors 1e-5 || fail "weights differ"
  ;;
fault)
  "${mpi[@]}" -np 2 "$envit" "${flags[@]}" --steps 4 --out run 2>good.err || fail "setup run: $(cat good.err)"
  sum0=$(cksum <run/last.safetensors)
  # Rank 1 reads a dataset directory that does not exist (MPMD launch: same flags otherwise).
  "${mpi[@]}" -np 1 "$envit" "${flags[@]}" --steps 400 --save-every 1000 --out run --resume run/last.safetensors : \
    -np 1 "$envit" "${flags[@]}" --steps 400 --save-every 1000 --out run --resume run/last.safetensors \
    --data /nonexistent/fashion-mnist >bad.out 2>bad.err
  rc=$?
  [ $rc -ne 0 ] || fail "a failing rank left exit code 0"
  grep -q "/nonexistent/fashion-mnist" bad.err || fail "no message naming the bad directory: $(cat bad.err)"
  grep -q "rank 1 of 2 failed" bad.err || fail "no rank failure message: $(cat bad.err)"
  [ "$(cksum <run/last.safetensors)" = "$sum0" ] || fail "checkpoint changed by the failed job"
  # A rank killed mid-run: the job ends non-zero; the checkpoint (saved every 2 steps) is whole.
  "${mpi[@]}" -np 2 "$envit" "${flags[@]}" --steps 100000 --epochs 1000 --save-every 2 --out kill >kill.out 2>kill.err &
  job=$!
  victim=
  for _ in $(seq 200); do
    sleep 0.1
    [ -f kill/last.safetensors ] || continue
    for p in $(pgrep -P $job); do
      grep -qz "^OMPI_COMM_WORLD_RANK=1$" /proc/$p/environ 2>/dev/null && victim=$p
    done
    [ -n "$victim" ] && break
  done
  [ -n "$victim" ] || { kill $job; fail "rank 1 or the first checkpoint never appeared: $(cat kill.err)"; }
  kill -9 "$victim"
  wait $job
  rc=$?
  [ $rc -ne 0 ] || fail "killing rank 1 left exit code 0"
  "$compare" weights kill/last.safetensors kill/last.safetensors 0 >/dev/null || fail "checkpoint unreadable after the kill"
  echo "fault: failing rank exit $rc; checkpoints intact"
  ;;
lgvit|cosee|reduction|mmrazor)
  head_tol=1e-5
  lr3=(--subset 704 --lr 0.003 --min-lr 0.003) lr1=(--subset 704 --lr 0.001 --min-lr 0.001)
  case $mode in
  lgvit) extra=("${lr3[@]}" --scheme lgvit --exits 1,2,3,4) head_tol=1e-3 ;;
  cosee) extra=(--subset 384 --lr 0.001 --min-lr 0.001 --scheme cosee) ;;
  reduction) extra=("${lr3[@]}" --scheme envit --p-max 0.5 --reduction remaining) ;;
  mmrazor) extra=("${lr1[@]}" --scheme byot --byot-variant mmrazor) ;;
  esac
  OMP_NUM_THREADS=1 "$envit" "${common[@]}" "${extra[@]}" --steps 20 --out one --step-log one.jsonl 2>one.err \
    || fail "1 process: $(cat one.err)"
  "${mpi[@]}" -np 2 "$envit" "${common[@]}" "${extra[@]}" --steps 20 --out two --step-log two.jsonl 2>two.err \
    || fail "2 ranks: $(cat two.err)"
  [ "$(wc -l <two.jsonl)" = 20 ] || fail "2 ranks logged $(wc -l <two.jsonl) steps, expected 20"
  "$compare" steps one.jsonl two.jsonl 1e-5 || fail "losses differ"
  "$compare" weights one/last.safetensors two/last.safetensors 1e-5 $head_tol || fail "weights differ"
  if [ $mode = cosee ]; then  # the signal range of epoch 1, which sets epoch 2's thresholds
    r1=$(grep -ao 'cosee.range":"[^"]*' one/last.safetensors) r2=$(grep -ao 'cosee.range":"[^"]*' two/last.safetensors)
    [ -n "$r1" ] && awk -v a="${r1#*:\"}" -v b="${r2#*:\"}" 'BEGIN { n = split(a, x, ","); split(b, y, ",")
      for (i = 1; i <= n; ++i) { d = x[i] - y[i]; m = x[i] < 0 ? -x[i] : x[i]
        if ((d < 0 ? -d : d) > 1e-5 * (m > 1e-30 ? m : 1e-30)) exit 1 }
      exit n == 5 ? 0 : 1 }' || fail "COSEE signal ranges differ: $r1 / $r2"
    echo "$r1"
  fi
  ;;
*) fail "unknown mode $mode" ;;
esac
echo "ok: $mode"
