#!/usr/bin/env bash
# bench/mpi_scaling.sh [STEPS] [PRESETS...] — data-parallel scaling of `envit train` on this host:
# throughput of 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1 thread (same global batch
# 64, Fashion-MNIST), and the gradient MPI_Allreduce time per step, per preset (default: readme
# tiny28; vit-b16 needs 224x224x3 data). Needs a build with ENVIT_MPI (build/examples/envit).
# Prints one line per configuration: preset, ranks x threads, img/s, scaling efficiency vs 1x1,
# allreduce ms/step.
set -eu
steps=${1:-20}
shift || true
presets=("${@:-readme tiny28}")
envit=${ENVIT:-build/examples/envit}
mpirun=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--batch 64 --steps "$steps" --subset $((64 * steps + 64)) --val 64 --epochs 1 --warmup-steps 0)
ips() { grep -o '"images_per_s":[0-9.e+-]*' "$1/log.jsonl" | tail -1 | cut -d: -f2; }
for preset in ${presets[@]}; do
  "$envit" train --preset "$preset" "${common[@]}" --threads 1 --out "$work/a" 2>/dev/null
  "$envit" train --preset "$preset" "${common[@]}" --threads 2 --out "$work/b" 2>/dev/null
  "${mpirun[@]}" -np 2 "$envit" train --preset "$preset" "${common[@]}" --threads 1 --out "$work/c" 2>"$work/c.err"
  a=$(ips "$work/a") b=$(ips "$work/b") c=$(ips "$work/c")
  ar=$(grep -o 'allreduce: [0-9.]* ms' "$work/c.err" | cut -d' ' -f2)
  awk -v p="$preset" -v a="$a" -v b="$b" -v c="$c" -v ar="$ar" 'BEGIN {
    printf "%-8s 1x1 %8.1f img/s\n", p, a
    printf "%-8s 1x2 %8.1f img/s  efficiency %.2f\n", p, b, b / (2 * a)
    printf "%-8s 2x1 %8.1f img/s  efficiency %.2f  allreduce %s ms/step\n", p, c, c / (2 * a), ar }'
done
