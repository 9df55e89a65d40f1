// The "amx" kernel set of envit::dispatch (include/envit/kernels/dispatch.hpp): the BF16 product on
// AMX tiles (kernels/gemm_bf16_amx.hpp) on top of the "avx512" set's FP32 GEMM and row kernels,
// taken from that set's table (the same functions, so bitwise the same FP32 results).
// The INT8 product is vpdpbusd (kernels/gemm_int8_vnni.hpp; no AMX-INT8 tile kernel).
// Compiled with -march=x86-64-v4 -mavx512bf16 -mavx512vnni -mamx-tile -mamx-bf16 and nothing else in it: every
// symbol it defines is inside kernels/isa.hpp's instruction-set namespace (isa_amx) or is the entry
// point gemm_kernels_amx() (checked by the test dispatch_symbols_amx). dispatch.hpp offers this set
// only where the CPU reports AMX-BF16 and AMX-TILE, the OS enables the tile state (XCR0) and Linux
// grants this process the tile data (arch_prctl).
#include "envit/kernels/gemm_bf16_amx.hpp"
#include "envit/kernels/gemm_int8_vnni.hpp"

namespace envit::detail {
const GemmKernelSet& gemm_kernels_avx512();  // kernel_set_avx512.cpp

const GemmKernelSet& gemm_kernels_amx() {
  static const GemmKernelSet ks = gemm_i8::with_vnni_int8(gemm_bf16_amx::with_bf16(gemm_kernels_avx512(), "amx"));
  return ks;
}
}  // namespace envit::detail
