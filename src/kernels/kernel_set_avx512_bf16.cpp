// The "avx512_bf16" kernel set of envit::dispatch (include/envit/kernels/dispatch.hpp): the BF16
// product on vdpbf16ps (kernels/gemm_bf16_avx512.hpp) on top of the "avx512" set's FP32 GEMM and
// row kernels, taken from that set's table (the same functions, so bitwise the same FP32 results;
// tested by test_gemm_bf16).
// and the INT8 product on vpdpbusd (kernels/gemm_int8_vnni.hpp).
// Compiled with -march=x86-64-v4 -mavx512bf16 -mavx512vnni and nothing else in it: every symbol it defines is
// inside kernels/isa.hpp's instruction-set namespace (isa_avx512_bf16) or is the entry point
// gemm_kernels_avx512_bf16() (checked by the test dispatch_symbols_avx512_bf16).
#include "envit/kernels/gemm_bf16_avx512.hpp"
#include "envit/kernels/gemm_int8_vnni.hpp"

namespace envit::detail {
const GemmKernelSet& gemm_kernels_avx512();  // kernel_set_avx512.cpp

const GemmKernelSet& gemm_kernels_avx512_bf16() {
  static const GemmKernelSet ks = gemm_i8::with_vnni_int8(gemm_bf16::with_bf16(gemm_kernels_avx512(), "avx512_bf16"));
  return ks;
}
}  // namespace envit::detail
