#!/usr/bin/env bash
# A new user's first run on a small data set of their own, with every default: scikit-learn's 8x8
# digits upsampled to 28x28 (bench/digits_data.py; 1,500 train / 297 test), as IDX files and as a
# folder of PNG files, each trained by `envit train --data DIR` and nothing else but --threads/--out.
# Checks the final exit's test accuracy (the last epoch's line of log.jsonl) against MIN (default
# 0.90) and prints the wall time and peak resident size (/usr/bin/time -v) of each run.
# Exit 77 (skipped) without python3-sklearn or /usr/bin/time.
# Usage: bench/digits.sh ENVIT_BINARY WORK_DIR [THREADS] [MIN]
set -euo pipefail
envit=$1 work=$2 threads=${3:-1} min=${4:-0.90}
here=$(cd "$(dirname "$0")" && pwd)
/usr/bin/python3 -c "import sklearn, scipy" 2>/dev/null || { echo "digits: python3-sklearn not installed: skipped"; exit 77; }
[ -x /usr/bin/time ] || { echo "digits: /usr/bin/time not installed: skipped"; exit 77; }
mkdir -p "$work"
[ -d "$work/data/idx" ] || /usr/bin/python3 "$here/digits_data.py" "$work/data"
status=0
for form in idx folder; do
  rm -rf "$work/$form"
  /usr/bin/time -v "$envit" train --data "$work/data/$form" --threads "$threads" --out "$work/$form" \
    > "$work/$form.log" 2>&1 || { tail -30 "$work/$form.log"; echo "digits ($form): training failed"; exit 1; }
  acc=$(tail -1 "$work/$form/log.jsonl" | sed 's/.*_acc":\[\([^]]*\)\].*/\1/' | awk -F, '{print $NF}')
  secs=$(grep "Elapsed (wall clock)" "$work/$form.log" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$work/$form.log" | awk '{print $NF}')
  plan=$(tail -1 "$work/$form/log.jsonl" | sed 's/.*"memory_planned":\([0-9]*\).*/\1/')
  echo "digits ($form): final-exit test accuracy $acc, wall $secs, peak RSS $rss KiB, planned $plan bytes"
  awk -v a="$acc" -v m="$min" 'BEGIN { exit !(a >= m) }' || { echo "digits ($form): below $min"; status=1; }
done
exit $status
