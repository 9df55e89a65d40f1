// The "avx2" kernel set of envit::dispatch (include/envit/kernels/dispatch.hpp): the packed float
// GEMM (kernels/gemm_packed.hpp) and the float row kernels (kernels/vec_kernels.hpp).
// Compiled with -march=x86-64-v3 (AVX2, FMA, BMI1/2, F16C) and nothing else in it: every
// symbol it defines is a template on the xsimd arch or inside kernels/isa.hpp's instruction-set
// namespace (checked by the test dispatch_symbols_avx2), so no other translation unit can end up
// calling this one's code.
#include <type_traits>

#include "envit/kernels/gemm_packed.hpp"
#include "envit/kernels/vec_kernels.hpp"

static_assert(std::is_same_v<xsimd::default_arch, xsimd::fma3<xsimd::avx2>>, "built with -march=x86-64-v3");

namespace envit::detail {
const GemmKernelSet& gemm_kernels_avx2() {
  static const GemmKernelSet ks = gemm_packed_kernels<xsimd::default_arch>("avx2", vec::vec_kernel_set());
  return ks;
}
}  // namespace envit::detail
