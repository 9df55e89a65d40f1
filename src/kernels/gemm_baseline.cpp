// The "baseline" packed GEMM kernel set of envit::dispatch (include/envit/kernels/dispatch.hpp).
// Compiled with no instruction-set flags (SSE2 on x86-64, NEON on AArch64) and nothing else in it:
// every symbol it defines is a template on the xsimd arch or inside gemm_packed.hpp's instruction-set
// namespace (checked by the test dispatch_symbols), so no other translation unit can end up calling
// this one's code.
#include <type_traits>

#include "envit/kernels/gemm_packed.hpp"

#if defined(__x86_64__)
static_assert(std::is_same_v<xsimd::default_arch, xsimd::sse2>, "the baseline set is built without -m flags");
#endif

namespace envit::detail {
const GemmKernelSet& gemm_kernels_baseline() {
  static const GemmKernelSet ks = gemm_packed_kernels<xsimd::default_arch>("baseline");
  return ks;
}
}  // namespace envit::detail
