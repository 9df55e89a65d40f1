# GEMM (kernels/gemm.hpp, gemm_packed.hpp, dispatch.hpp).
# test_gemm: linked with envit::dispatch (when built; its discovered cases run the best set) and run
# once more per lower kernel set the host can run (gemm_isa_<set>: the whole executable with
# ENVIT_ISA=<set>), so every set passes every GEMM test on this machine.
# test_gemm_native: the header-only compile-time path with -march=x86-64-v4 (the AVX-512 tile
# without dispatch), built only when the host can run it, and not in the sanitizer build: there the
# dispatched AVX-512 set runs the same kernel source (kernels/gemm_packed.hpp), and CI time is short.
envit_add_test(test_gemm test_gemm.cpp)
envit_test_kernel_sets(test_gemm gemm)
# The object files of the x86-64 kernel sets define only symbols of their own instruction set.
foreach(set avx2 avx512)
  if(TARGET envit_kernels_${set})
    add_test(NAME dispatch_symbols_${set}
             COMMAND ${CMAKE_COMMAND} -DNM=${CMAKE_NM} "-DOBJECTS=$<TARGET_OBJECTS:envit_kernels_${set}>"
                     -DTAG=isa_${set} -DSET=${set} -P ${PROJECT_SOURCE_DIR}/cmake/CheckKernelSymbols.cmake)
    set_tests_properties(dispatch_symbols_${set} PROPERTIES LABELS kernels)
  endif()
endforeach()
if(ENVIT_HOST_X86_64_V4 AND NOT ENVIT_SANITIZE)
  envit_add_test(test_gemm_native test_gemm.cpp)
  # GCC 12 reports -Wmaybe-uninitialized inside Eigen's AVX-512 packet code (_mm512_undefined_ps).
  target_compile_options(test_gemm_native PRIVATE -march=x86-64-v4 -Wno-maybe-uninitialized -Wno-uninitialized)
endif()
