// The "avx512" packed GEMM kernel set of envit::dispatch (include/envit/kernels/dispatch.hpp).
// Compiled with -march=x86-64-v4 (AVX-512 F/BW/DQ/VL/CD) and nothing else in it: every symbol it
// defines is a template on the xsimd arch or inside gemm_packed.hpp's instruction-set namespace
// (checked by the test dispatch_symbols), so no other translation unit can end up calling this one's
// code.
#include <type_traits>

#include "envit/kernels/gemm_packed.hpp"

static_assert(xsimd::batch<float>::size == 16, "built with -march=x86-64-v4");

namespace envit::detail {
const GemmKernelSet& gemm_kernels_avx512() {
  static const GemmKernelSet ks = gemm_packed_kernels<xsimd::default_arch>("avx512");
  return ks;
}
}  // namespace envit::detail
