#!/usr/bin/env bash
# Interleaved A/B timing of the GEMM kernel sets (docs/performance.md, "Kernel sets"): the default
# dispatched build with ENVIT_ISA=avx512 and =avx2, against a compile-time -march=x86-64-v4 build.
# Each round runs every variant once, in turn, so slow phases of a shared host hit all of them;
# the script prints the per-round values and the median of each variant's ratios to the v4 build.
# Usage: scripts/ab_kernel_sets.sh <dispatched build dir> <v4 build dir> [rounds (3)] [baseline]
#   v4 build: cmake -S . -B build-v4 -DENVIT_ARCH=x86-64-v4 -DENVIT_DISPATCH=OFF
#             cmake --build build-v4 --target bench_gemm bench_train_step
#   "baseline" as a 4th argument adds ENVIT_ISA=baseline (SSE2) to the variants.
# Measures: bench_gemm's AVX-512 FMA peak probe (v4 build, 2 threads) and the packed GEMM at 2
# threads on five shapes (GFLOP/s, their geometric mean); bench_train_step's tiny28 training step
# (p_M = 0, batch 128) and complete-model inference (batch 128), images/s.
set -euo pipefail
disp=$1 v4=$2 rounds=${3:-3} extra=${4:-}
variants=(v4 avx512 avx2)
[ "$extra" = baseline ] && variants+=(baseline)
peak_filter='^peak/threads:2/'
gemm_filter='^gemm/packed/t2/(fwd_qkv|fwd_fc1|dx_fc1|dW_fc1|B16_fwd_fc1)_'
step_filter='^BM_TrainStep/p_M_pct:0/|^BM_Inference/batch:128/'
export OMP_NUM_THREADS=2
out=$(mktemp -d)
# csv_col <file> <column name>: "name value" per benchmark row.
csv_col() {
  awk -F, -v col="$2" 'NR == 1 { for (i = 1; i <= NF; ++i) if ($i == "\"" col "\"" || $i == col) c = i; next }
                       c && $c != "" { gsub(/"/, "", $1); print $1, $c }' "$1"
}
for r in $(seq 1 "$rounds"); do
  for v in "${variants[@]}"; do
    if [ "$v" = v4 ]; then dir=$v4; isa=; else dir=$disp; isa=$v; fi
    # The probe and the GEMMs in separate runs: benchmark's CSV needs the same counters in every row.
    for f in "$peak_filter" "$gemm_filter"; do
      ENVIT_ISA=$isa "$dir/bench/bench_gemm" --benchmark_filter="$f" --benchmark_min_time=0.2 \
        --benchmark_format=csv 2>/dev/null > "$out/gemm.csv"
      csv_col "$out/gemm.csv" GFLOPs | sed "s/^/$r $v /" >> "$out/all.txt"
    done
    ENVIT_ISA=$isa "$dir/bench/bench_train_step" --benchmark_filter="$step_filter" --benchmark_min_time=0.5 \
      --benchmark_format=csv 2>/dev/null > "$out/step.csv"
    csv_col "$out/step.csv" items_per_second | sed "s/^/$r $v /" >> "$out/all.txt"
  done
done
echo "# round variant benchmark value (GFLOP/s or images/s)"
cat "$out/all.txt"
echo
echo "# median over rounds of value / v4 value (same round); gemm_geomean: geometric mean of the 5 GEMM shapes"
awk '
  function median(a, m,   i, j, t) {  # a[1..m], sorted in place
    for (i = 2; i <= m; ++i) for (j = i; j > 1 && a[j - 1] > a[j]; --j) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  $3 !~ /^peak/ { val[$2, $1, $3] = $4; names[$3] = 1; rounds[$1] = 1
                  if ($3 ~ /^gemm/) { g[$2, $1] += log($4); gn[$2, $1]++ } }
  END {
    split("avx512 avx2 baseline", vl, " ")
    for (i = 1; i <= 3; ++i) {
      v = vl[i]
      for (n in names) {
        m = 0
        for (r in rounds) if ((v, r, n) in val && ("v4", r, n) in val) x[++m] = val[v, r, n] / val["v4", r, n]
        if (m) printf "%-8s %-60s %.3f (n=%d)\n", v, n, median(x, m), m
      }
      m = 0
      for (r in rounds) if ((v, r) in gn && ("v4", r) in gn) x[++m] = exp(g[v, r] / gn[v, r] - g["v4", r] / gn["v4", r])
      if (m) printf "%-8s %-60s %.3f (n=%d)\n", v, "gemm_geomean", median(x, m), m
    }
  }' "$out/all.txt"
rm -rf "$out"
