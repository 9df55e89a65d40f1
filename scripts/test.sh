#!/usr/bin/env bash
# README command 2: install what is missing, build everything, run the test suite, then build and
# run it again under AddressSanitizer + UndefinedBehaviorSanitizer, then run each libFuzzer harness
# briefly (scripts/fuzz.sh; clang). Fails on any failure or report.
# Build trees: build/ (Release), build-asan/ (sanitizers), build-fuzz/ (clang, libFuzzer). Set JOBS to change parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."
# python3-torch is optional: parity fixtures are checked in; it is only needed to regenerate them.
bash scripts/setup.sh test
JOBS=${JOBS:-$(nproc)}
# ON explicitly: a tree first configured by scripts/main.sh has tests, benchmarks and MPI cached off.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DENVIT_BUILD_TESTS=ON -DENVIT_BUILD_BENCH=ON -DENVIT_MPI=ON
cmake --build build -j "$JOBS"
ctest --test-dir build --output-on-failure -j "$JOBS"
# -O1 -g1: the sanitizer build dominates CI time (-O2 -g: 19 of 31 minutes); line tables are all
# ASan/UBSan reports need, and -O1 keeps the instrumented tests fast enough.
# The sanitizer build holds the tests and the `envit` program (for the program-level fault tests);
# no benchmarks, no library examples (ENVIT_SANITIZE leaves them out), no MPI (its tests and
# OpenMPI's own allocations stay in the Release pass).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
      -DENVIT_SANITIZE=ON -DENVIT_BUILD_EXAMPLES=ON -DENVIT_BUILD_BENCH=OFF -DENVIT_MPI=OFF
# alloc_dealloc_mismatch=0: several tests replace the global operator new/delete to count allocations;
# the nothrow variants Catch2 uses then pair ASan's new with the test's free. Exported before the
# build too: catch_discover_tests runs each test binary at build time to list its tests.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:alloc_dealloc_mismatch=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cmake --build build-asan -j "$JOBS"
# Every unit test and the program-level fault tests (`fault: *`: kill -9, SIGINT/SIGTERM, file-size
# limit, lock, split geometry; about 35 s). Left to the Release pass: the program on Fashion-MNIST
# (`envit cli: *`, labels cli, e2e, study: 10 s to minutes each under ASan), the short training on
# real Fashion-MNIST (same paths as the resume test), the per-kernel-set reruns of infer_agreement
# (the row kernels' memory accesses are covered by vec_isa_*), packaging, headers, portability.
ctest --test-dir build-asan --output-on-failure -j "$JOBS" -LE "packaging|headers|portability|cli|e2e|study" \
        -E "^envit cli: |short EnViT training on real Fashion-MNIST|^infer_agreement_isa_"
# Fuzzing: every libFuzzer harness (tests/fuzz) for FUZZ_SECONDS (default 10) each, two at a time,
# when clang can link libFuzzer: a smoke run of every harness on its corpus, about 2 minutes with the
# harnesses' build; campaigns run separately (scripts/fuzz.sh, docs/reliability.md).
if echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
     clang++ -fsanitize=fuzzer -x c++ - -o build-asan/fuzz-probe >/dev/null 2>&1; then
  PARALLEL=2 bash scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
else
  echo "envit: clang with libFuzzer not found: fuzzing skipped"
fi
echo "envit: all tests passed (Release and ASan+UBSan, fuzzing)"
