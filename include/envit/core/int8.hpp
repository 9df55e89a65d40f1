// envit/core/int8.hpp — symmetric INT8 quantization, the one definition every INT8 path uses
// (PackedWeight's weights, the activation rows entering an INT8 product, the quantized checkpoint):
//   scale s > 0,  q = clamp(round_half_even(x / s), -127, 127),  x ~ q * s.
// -128 is never produced, so the range is symmetric and q + 128 fits an unsigned byte (VNNI).
//   Weights: one scale per output channel (row of W (n, k)): s_j = max_k |W[j,k]| / 127 (a zero row
//   gets s_j = 1, all q = 0), so every row's largest entry maps to +-127.
//   Activations: per row ("per token", dynamic: s_i = max_k |A[i,k]| / 127, 1 for a zero row) or
//   one static per-tensor scale calibrated beforehand (values beyond 127 s saturate).
// Not here: the products (kernels/gemm_int8.hpp), calibration (weights/quantize.hpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace envit {

// round_half_even(x / s) clamped to [-127, 127] (std::nearbyint under the default rounding mode).
inline std::int8_t quantize_int8(float x, float s) {
  const float y = std::nearbyint(x / s);
  if (std::isnan(y)) return 0;  // a NaN activation or weight: 0 (the FP32 parts keep their NaNs)
  return static_cast<std::int8_t>(std::clamp(y, -127.0f, 127.0f));
}

// The symmetric scale of values whose largest magnitude is amax: amax / 127, or 1 when amax is 0.
inline float int8_scale(float amax) { return amax > 0.0f ? amax / 127.0f : 1.0f; }

// W (n, k) row-major -> q (n, k) and scale (n), per output channel.
inline void quantize_weight_int8(std::int8_t* q, float* scale, const float* W, std::ptrdiff_t n, std::ptrdiff_t k) {
  for (std::ptrdiff_t j = 0; j < n; ++j) {
    const float* w = W + j * k;
    float amax = 0.0f;
    for (std::ptrdiff_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(w[i]));
    const float s = int8_scale(amax);
    scale[j] = s;
    for (std::ptrdiff_t i = 0; i < k; ++i) q[j * k + i] = quantize_int8(w[i], s);
  }
}

// A (m, k) row-major (lda floats per row) -> q (m, ldq bytes per row: k values, then zeros up to
// ldq) and scale (m): per row when static_scale == 0, else static_scale for every row.
inline void quantize_rows_int8(std::int8_t* q, std::ptrdiff_t ldq, float* scale, const float* A, std::ptrdiff_t lda,
                               std::ptrdiff_t m, std::ptrdiff_t k, float static_scale) {
  for (std::ptrdiff_t i = 0; i < m; ++i) {
    const float* a = A + i * lda;
    float s = static_scale;
    if (s == 0.0f) {
      float amax = 0.0f;
      for (std::ptrdiff_t t = 0; t < k; ++t) amax = std::max(amax, std::fabs(a[t]));
      s = int8_scale(amax);
    }
    scale[i] = s;
    std::int8_t* r = q + i * ldq;
    for (std::ptrdiff_t t = 0; t < k; ++t) r[t] = quantize_int8(a[t], s);
    for (std::ptrdiff_t t = k; t < ldq; ++t) r[t] = 0;
  }
}

}  // namespace envit
