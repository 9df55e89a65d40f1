# GEMM (kernels/gemm.hpp, kernels/gemm_packed.hpp): the same tests compiled twice, once without
# architecture flags (xsimd's SSE2 batch: the portable path) and once with envit::arch
# (-march=x86-64-v4: the AVX-512 micro-kernel that envit's benchmarks and examples use).
envit_add_test(test_gemm test_gemm.cpp)
envit_add_test(test_gemm_arch test_gemm.cpp)
target_link_libraries(test_gemm_arch PRIVATE envit::arch)
# GCC 12 reports -Wmaybe-uninitialized inside Eigen's AVX-512 packet code (_mm512_undefined_ps).
target_compile_options(test_gemm_arch PRIVATE -Wno-maybe-uninitialized -Wno-uninitialized)
