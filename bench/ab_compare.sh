#!/usr/bin/env bash
# bench/ab_compare.sh — time two revisions of envit against each other in one process (envit_ab).
#
#   bench/ab_compare.sh REV_A [REV_B] [-- envit_ab flags...]
#
# REV_A / REV_B: git revisions, or "." for the working tree (REV_B defaults to "."). Each side is
# compiled from its own tree with the library's namespace renamed, linked into one executable with
# bench/ab/main.cpp from the working tree, and run with the given flags (see bench/ab/main.cpp:
# --mode latency|infer|train, --config tiny28|vitb16, --pairs, --threads, ...). The driver
# prints t(B)/t(A) over alternating passes and whether the results are bitwise equal.
# Compiler flags: -O3 -DNDEBUG -fopenmp -march=$ENVIT_ARCH (default x86-64-v4), as envit::arch.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[[ $# -ge 1 ]] || usage
rev_a="$1"; shift
rev_b="."
if [[ $# -ge 1 && "$1" != "--" ]]; then rev_b="$1"; shift; fi
if [[ $# -ge 1 ]]; then [[ "$1" == "--" ]] || usage; shift; fi

work="$(mktemp -d "${TMPDIR:-/tmp}/envit_ab.XXXXXX")"
cleanup() {
  for wt in "$work"/tree_*; do [[ -d "$wt" ]] && git -C "$repo" worktree remove --force "$wt" >/dev/null 2>&1 || true; done
  git -C "$repo" worktree prune >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

tree_of() {  # $1 revision, $2 side name: prints the include directory of that side
  if [[ "$1" == "." ]]; then echo "$repo/include"; return; fi
  git -C "$repo" rev-parse --verify --quiet "$1^{commit}" >/dev/null || { echo "ab_compare: unknown revision '$1'" >&2; exit 2; }
  git -C "$repo" worktree add --detach --force "$work/tree_$2" "$1" >/dev/null 2>&1 \
    || { echo "ab_compare: git worktree add failed for '$1'" >&2; exit 2; }
  echo "$work/tree_$2/include"
}
inc_a="$(tree_of "$rev_a" a)"
inc_b="$(tree_of "$rev_b" b)"

cxx="${CXX:-c++}"
flags=(-std=c++20 -O3 -DNDEBUG -fopenmp "-march=${ENVIT_ARCH:-x86-64-v4}" -isystem /usr/include/eigen3)
describe() { [[ "$1" == "." ]] && echo "working tree" || git -C "$repo" rev-parse --short "$1^{commit}"; }
echo "ab_compare: A = $rev_a ($(describe "$rev_a")), B = $rev_b ($(describe "$rev_b")); compiling..." >&2
"$cxx" "${flags[@]}" -I"$inc_a" -DENVIT_AB_SIDE=ab_a -c "$here/ab/side.cpp" -o "$work/a.o" &
pa=$!
"$cxx" "${flags[@]}" -I"$inc_b" -DENVIT_AB_SIDE=ab_b -c "$here/ab/side.cpp" -o "$work/b.o" &
pb=$!
# The driver: the working tree's command-line conventions (examples/envit/cli.hpp, CLI11).
"$cxx" "${flags[@]}" -I"$repo/examples/envit" -I"$repo/include" -c "$here/ab/main.cpp" -o "$work/main.o"
wait "$pa" && wait "$pb"
"$cxx" -fopenmp "$work/main.o" "$work/a.o" "$work/b.o" -lz -o "$work/envit_ab"
"$work/envit_ab" "$@"
