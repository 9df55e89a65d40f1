# GEMM (kernels/gemm.hpp, gemm_packed.hpp, dispatch.hpp).
# test_gemm: linked with envit::dispatch (when built; its discovered cases run the best set) and run
# once more per lower kernel set the host can run (gemm_isa_<set>: the whole executable with
# ENVIT_ISA=<set>), so every set passes every GEMM test on this machine.
# test_gemm_native: the header-only compile-time path with -march=x86-64-v4 (the AVX-512 tile
# without dispatch), built only when the host can run it.
include(CheckCXXSourceRuns)
set(envit_host_sets)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  check_cxx_source_runs([=[
    int main() { __builtin_cpu_init(); return __builtin_cpu_supports("x86-64-v4") ? 0 : 1; }
  ]=] ENVIT_HOST_X86_64_V4)
  check_cxx_source_runs([=[
    int main() { __builtin_cpu_init(); return __builtin_cpu_supports("x86-64-v3") ? 0 : 1; }
  ]=] ENVIT_HOST_X86_64_V3)
  if(ENVIT_HOST_X86_64_V4)
    list(APPEND envit_host_sets avx512)
  endif()
  if(ENVIT_HOST_X86_64_V3)
    list(APPEND envit_host_sets avx2)
  endif()
endif()
list(APPEND envit_host_sets baseline)

envit_add_test(test_gemm test_gemm.cpp)
if(TARGET envit_dispatch)
  target_link_libraries(test_gemm PRIVATE envit::dispatch)
  list(REMOVE_AT envit_host_sets 0)  # the best set: the discovered cases run it
  foreach(set ${envit_host_sets})
    add_test(NAME gemm_isa_${set} COMMAND test_gemm)
    set_tests_properties(gemm_isa_${set} PROPERTIES ENVIRONMENT "ENVIT_ISA=${set}" LABELS kernels)
  endforeach()
endif()
# The object files of the x86-64 kernel sets define only symbols of their own instruction set.
foreach(set avx2 avx512)
  if(TARGET envit_kernels_${set})
    add_test(NAME dispatch_symbols_${set}
             COMMAND ${CMAKE_COMMAND} -DNM=${CMAKE_NM} "-DOBJECTS=$<TARGET_OBJECTS:envit_kernels_${set}>"
                     -DTAG=isa_${set} -DSET=${set} -P ${PROJECT_SOURCE_DIR}/cmake/CheckKernelSymbols.cmake)
    set_tests_properties(dispatch_symbols_${set} PROPERTIES LABELS kernels)
  endif()
endforeach()
if(ENVIT_HOST_X86_64_V4)
  envit_add_test(test_gemm_native test_gemm.cpp)
  # GCC 12 reports -Wmaybe-uninitialized inside Eigen's AVX-512 packet code (_mm512_undefined_ps).
  target_compile_options(test_gemm_native PRIVATE -march=x86-64-v4 -Wno-maybe-uninitialized -Wno-uninitialized)
endif()
