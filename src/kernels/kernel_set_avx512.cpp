// The "avx512" kernel set of envit::dispatch (include/envit/kernels/dispatch.hpp): the packed float
// GEMM (kernels/gemm_packed.hpp) and the float row kernels (kernels/vec_kernels.hpp).
// Compiled with -march=x86-64-v4 (AVX-512 F/BW/DQ/VL/CD) and nothing else in it: every
// symbol it defines is a template on the xsimd arch or inside kernels/isa.hpp's instruction-set
// namespace (checked by the test dispatch_symbols_avx512), so no other translation unit can end up
// calling this one's code.
#include <type_traits>

#include "envit/kernels/gemm_packed.hpp"
#include "envit/kernels/vec_kernels.hpp"

static_assert(xsimd::batch<float>::size == 16, "built with -march=x86-64-v4");

namespace envit::detail {
const GemmKernelSet& gemm_kernels_avx512() {
  static const GemmKernelSet ks = gemm_packed_kernels<xsimd::default_arch>("avx512", vec::vec_kernel_set());
  return ks;
}
}  // namespace envit::detail
