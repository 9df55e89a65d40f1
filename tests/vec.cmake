# xsimd float kernels (kernels/vec.hpp and the ops using them): accuracy, ragged tails, guard
# pages, fused-block equivalence. Built once without -march (SSE2 batches, like every other test)
# and once per wider ISA that the host can run, so the AVX2 (masked 8-lane) and AVX-512 (masked
# 16-lane) tail paths are tested too.
envit_add_test(test_vec test_vec.cpp)

include(CheckCXXSourceRuns)
foreach(envit_vec_arch x86-64-v3 x86-64-v4)
  string(REPLACE "-" "_" envit_vec_suffix ${envit_vec_arch})
  string(REPLACE "x86_64_" "" envit_vec_suffix ${envit_vec_suffix})
  set(CMAKE_REQUIRED_FLAGS "-march=${envit_vec_arch}")
  check_cxx_source_runs([=[
    int main() {
    #if defined(__AVX512F__)
      if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
          !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq")) return 1;
    #endif
    #if defined(__AVX2__)
      if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") ||
          !__builtin_cpu_supports("bmi2")) return 1;
    #endif
      return 0;
    }]=] ENVIT_HOST_RUNS_${envit_vec_suffix})
  unset(CMAKE_REQUIRED_FLAGS)
  if(ENVIT_HOST_RUNS_${envit_vec_suffix})
    envit_add_test(test_vec_${envit_vec_suffix} test_vec.cpp)
    # GCC 12's AVX-512 intrinsic headers (_mm512_undefined_* inside xsimd's and Eigen's kernels)
    # trip -Wmaybe-uninitialized under -Wall; the warnings are in the system headers' expansions.
    target_compile_options(test_vec_${envit_vec_suffix} PRIVATE -march=${envit_vec_arch}
                           -Wno-maybe-uninitialized -Wno-uninitialized)
  endif()
endforeach()
