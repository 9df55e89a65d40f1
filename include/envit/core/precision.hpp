// envit/core/precision.hpp — the arithmetic of float matrix products: FP32, or BF16 operands with
// FP32 accumulation.
//   Precision::fp32  every product in FP32 (the default).
//   Precision::bf16  every float matrix product (gemm<float>, gemm_weight_t<float>: linear forward,
//                    input and weight gradients, attention's QK^T and PV, patch embedding) rounds
//                    its two operands to BF16 (nearest even) and accumulates in FP32; everything
//                    else (LayerNorm, softmax, GELU, losses, reductions, optimizer, master weights)
//                    stays FP32. How the product runs is the kernel set's business
//                    (kernels/dispatch.hpp): AMX tiles, AVX512-BF16 dot products, or the FP32
//                    kernels on rounded operands where the CPU has neither.
//   Precision::int8  inference only: every product with a weight packed for INT8
//                    (PackedWeight::pack_int8, kernels/gemm.hpp: the Linear layers of the blocks)
//                    quantizes its activation rows to INT8 and runs the kernel set's INT8 product
//                    (INT32 accumulation, dequantized in FP32); every other product (attention's
//                    QK^T and PV, patch embedding, exit heads) runs in FP32, as does everything else.
// The setting is process-wide, like torch.set_float32_matmul_precision or oneDNN's fpmath mode:
// the ops run their GEMMs from OpenMP worker threads, which a thread-local setting would not reach.
// The model, trainer and evaluator set it from their own configuration for the duration of a call
// (PrecisionScope); double products ignore it.
#pragma once
#include <atomic>
#include <string>
#include <string_view>

#include "envit/core/error.hpp"

namespace envit {

enum class Precision { fp32, bf16, int8 };

inline const char* precision_name(Precision p) {
  return p == Precision::bf16 ? "bf16" : p == Precision::int8 ? "int8" : "fp32";
}

// "fp32" or "bf16" (the precisions training runs in); anything else is a ValueError naming `what`
// (a flag, a file, a field).
inline Precision parse_precision(std::string_view s, std::string_view what = "precision") {
  if (s == "fp32") return Precision::fp32;
  if (s == "bf16") return Precision::bf16;
  throw ValueError(detail::cat(what, ": unknown precision '", s, "' (expected fp32 or bf16)"));
}
// "fp32", "bf16" or "int8" (the precisions inference runs in).
inline Precision parse_inference_precision(std::string_view s, std::string_view what = "precision") {
  if (s == "int8") return Precision::int8;
  if (s == "fp32" || s == "bf16") return parse_precision(s, what);
  throw ValueError(detail::cat(what, ": unknown precision '", s, "' (expected fp32, bf16 or int8)"));
}

namespace detail {
inline std::atomic<Precision>& matmul_precision_ref() {
  static std::atomic<Precision> p{Precision::fp32};
  return p;
}
}  // namespace detail

inline Precision matmul_precision() { return detail::matmul_precision_ref().load(std::memory_order_relaxed); }
inline void set_matmul_precision(Precision p) { detail::matmul_precision_ref().store(p, std::memory_order_relaxed); }

// Sets the matrix-product precision for its lifetime and restores the previous one.
class PrecisionScope {
 public:
  explicit PrecisionScope(Precision p) : prev_(matmul_precision()) { set_matmul_precision(p); }
  ~PrecisionScope() { set_matmul_precision(prev_); }
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  Precision prev_;
};

}  // namespace envit
