// The "baseline" kernel set of envit::dispatch (include/envit/kernels/dispatch.hpp): the packed
// float GEMM (kernels/gemm_packed.hpp) and the float row kernels (kernels/vec_kernels.hpp).
// Compiled with no instruction-set flags (SSE2 on x86-64, NEON on AArch64), like any translation
// unit of a build without -march; its code sits in kernels/isa.hpp's namespace as theirs does.
#include <type_traits>

#include "envit/kernels/gemm_packed.hpp"
#include "envit/kernels/vec_kernels.hpp"

#if defined(__x86_64__)
static_assert(std::is_same_v<xsimd::default_arch, xsimd::sse2>, "the baseline set is built without -m flags");
#endif

namespace envit::detail {
const GemmKernelSet& gemm_kernels_baseline() {
  static const GemmKernelSet ks = gemm_packed_kernels<xsimd::default_arch>("baseline", vec::vec_kernel_set());
  return ks;
}
}  // namespace envit::detail
