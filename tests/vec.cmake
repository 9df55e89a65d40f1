# xsimd float kernels (kernels/vec.hpp, kernels/vec_kernels.hpp and the ops using them): accuracy,
# ragged tails, guard pages, position independence, fused-block equivalence.
# test_vec: linked with envit::dispatch (when built): its discovered cases run the best kernel set,
#   one case calls every runnable set's row kernels directly, and vec_isa_<set> runs the whole
#   executable once more per lower set the host can run (ENVIT_ISA=<set>), so every set passes every
#   test here (SSE2 4-lane, AVX2 8-lane and AVX-512 16-lane masked tails).
# test_vec_v4: the header-only compile-time path with -march=x86-64-v4 (the AVX-512 kernels called
#   directly, no dispatch), built only when the host can run it, and not in the sanitizer build
#   (the dispatched AVX-512 set runs the same kernel source there).
envit_add_test(test_vec kernels/test_vec.cpp)
envit_test_kernel_sets(test_vec vec)
if(TARGET envit_dispatch)
  add_test(NAME vec_bad_isa COMMAND test_vec "[bad_isa]")
  set_tests_properties(vec_bad_isa PROPERTIES ENVIRONMENT "ENVIT_ISA=avx9;OMP_NUM_THREADS=2" LABELS kernels)
endif()
if(ENVIT_HOST_X86_64_V4 AND NOT ENVIT_SANITIZE)
  envit_add_test(test_vec_v4 kernels/test_vec.cpp)
  # GCC 12's AVX-512 intrinsic headers (_mm512_undefined_* inside xsimd's and Eigen's kernels)
  # trip -Wmaybe-uninitialized under -Wall; the warnings are in the system headers' expansions.
  target_compile_options(test_vec_v4 PRIVATE -march=x86-64-v4 -Wno-maybe-uninitialized -Wno-uninitialized)
endif()
