// envit/kernels/vec.hpp — shared xsimd helpers for the float element-wise and row kernels
// (kernels/vec_kernels.hpp): one batch width (xsimd::batch<float> of the translation unit's
// default arch: SSE2 without -march, AVX2 with x86-64-v3, AVX-512 with x86-64-v4, NEON on
// AArch64), partial loads/stores for ragged tails, horizontal reductions and vectorised GELU
// pieces. Float vectors only: double callers keep their scalar loops (gradient checks use std::erf
// / std::exp). The arch is the including translation unit's, and everything here sits in
// kernels/isa.hpp's namespace: envit::dispatch compiles the kernels built on it once per kernel
// set (kernels/dispatch.hpp), each with its set's flags.
//
// Tails are processed as a partial batch (masked load/store under AVX/AVX-512, a small stack
// buffer otherwise), never by a scalar loop, so an element's value never depends on where it
// falls relative to a chunk or row end: elementwise results are the same for any n and any
// thread split (batch invariance of early-exit compaction), in every kernel set.
// Not here: any GEMM, any op (vec_kernels.hpp).
#pragma once
#include <xsimd/xsimd.hpp>

#include <cstddef>
#include <cstdint>

#include "envit/kernels/isa.hpp"

#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

namespace envit::vec {
inline namespace ENVIT_KERNEL_ISA_NS {

using fbatch = xsimd::batch<float>;                      // default arch of this translation unit
using fmask = fbatch::batch_bool_type;
inline constexpr std::ptrdiff_t W = std::ptrdiff_t(fbatch::size);  // float lanes

inline fbatch load(const float* p) { return fbatch::load_unaligned(p); }
inline void store(float* p, const fbatch& v) { v.store_unaligned(p); }

#if defined(__AVX__) && !defined(__AVX512F__)
namespace detail {
// _mm256_loadu_si256(kMask8 + 8 - n): the first n of 8 lanes set.
alignas(64) inline constexpr std::int32_t kMask8[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                         0,  0,  0,  0,  0,  0,  0,  0};
inline __m256i avx_mask(std::ptrdiff_t n) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask8 + 8 - n));
}
}  // namespace detail
#endif

// Lanes [0, n) of p and `fill` in lanes [n, W), for 0 <= n <= W. Reads p[0, n) only.
inline fbatch load_part(const float* p, std::ptrdiff_t n, float fill = 0.f) {
#if defined(__AVX512F__)
  if constexpr (W == 16) {
    const auto m = static_cast<__mmask16>((1u << n) - 1u);
    return fbatch(_mm512_mask_loadu_ps(_mm512_set1_ps(fill), m, p));
  } else
#elif defined(__AVX__)
  if constexpr (W == 8) {
    const __m256i m = detail::avx_mask(n);
    return fbatch(_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m)));
  } else
#endif
  {
    alignas(64) float buf[W];
    for (std::ptrdiff_t i = 0; i < W; ++i) buf[i] = i < n ? p[i] : fill;
    return fbatch::load_aligned(buf);
  }
}

// Writes lanes [0, n) of v to p[0, n), for 0 <= n <= W; p[n, W) is not touched.
inline void store_part(float* p, const fbatch& v, std::ptrdiff_t n) {
#if defined(__AVX512F__)
  if constexpr (W == 16) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v);
  } else
#elif defined(__AVX__)
  if constexpr (W == 8) {
    _mm256_maskstore_ps(p, detail::avx_mask(n), v);
  } else
#endif
  {
    alignas(64) float buf[W];
    v.store_aligned(buf);
    for (std::ptrdiff_t i = 0; i < n; ++i) p[i] = buf[i];
  }
}

// Lane mask: lanes [0, n) true.
inline fmask first_lanes(std::ptrdiff_t n) {
  alignas(64) float iota[W];
  for (std::ptrdiff_t i = 0; i < W; ++i) iota[i] = float(i);
  return fbatch::load_aligned(iota) < fbatch(float(n));
}

// Horizontal sum and maximum: a fixed pairwise tree per arch (deterministic).
inline float hsum(const fbatch& v) {
#if defined(__AVX512F__)
  if constexpr (W == 16) {
    __m512 t = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, _MM_SHUFFLE(2, 3, 0, 1)));
    t = _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(1, 0, 3, 2)));
    t = _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(t);
  } else
#elif defined(__AVX__)
  if constexpr (W == 8) {
    __m256 t = _mm256_add_ps(v, _mm256_permute2f128_ps(v, v, 1));
    t = _mm256_add_ps(t, _mm256_permute_ps(t, _MM_SHUFFLE(1, 0, 3, 2)));
    t = _mm256_add_ps(t, _mm256_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm256_cvtss_f32(t);
  } else
#endif
  {
    return xsimd::hadd(v);
  }
}
// Sum of the lanes in double, in lane order (for statistics that need more than float's tree).
inline double hsum_double(const fbatch& v) {
  alignas(64) float buf[W];
  v.store_aligned(buf);
  double s = 0.0;
  for (std::ptrdiff_t i = 0; i < W; ++i) s += double(buf[i]);
  return s;
}
inline float hmax(const fbatch& v) {
#if defined(__AVX512F__)
  if constexpr (W == 16) {
    __m512 t = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    t = _mm512_max_ps(t, _mm512_shuffle_f32x4(t, t, _MM_SHUFFLE(2, 3, 0, 1)));
    t = _mm512_max_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(1, 0, 3, 2)));
    t = _mm512_max_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(t);
  } else
#elif defined(__AVX__)
  if constexpr (W == 8) {
    __m256 t = _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1));
    t = _mm256_max_ps(t, _mm256_permute_ps(t, _MM_SHUFFLE(1, 0, 3, 2)));
    t = _mm256_max_ps(t, _mm256_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm256_cvtss_f32(t);
  } else
#endif
  {
    alignas(64) float buf[W];
    v.store_aligned(buf);
    float m = buf[0];
    for (std::ptrdiff_t i = 1; i < W; ++i) m = buf[i] > m ? buf[i] : m;
    return m;
  }
}

// ----------------------------------------------------------------------------------- GELU
// Phi(x) = 0.5 * erfc(-x / sqrt 2). The erfc form keeps Phi relatively accurate on the negative
// tail, where 0.5 * (1 + erf(x / sqrt 2)) cancels (it returns 0 or a multiple of 2^-25 below
// x ~ -5.5). xsimd's float erfc (Boost.SIMD kernels) measured against double std::erfc over
// x in [-10, 10] (step 1e-5, SSE2 and AVX-512): Phi abs error <= 1.3e-7, relative error
// <= 1e-6 for x >= -5 (rising to 8e-6 at x = -10, from the rounding of x^2 inside exp).
inline fbatch normal_cdf(const fbatch& x) {
  return fbatch(0.5f) * xsimd::erfc(x * fbatch(-0.70710678118654752440f));
}
// GELU(x) = x * Phi(x)
inline fbatch gelu(const fbatch& x) { return x * normal_cdf(x); }
// GELU'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi)
inline fbatch gelu_grad(const fbatch& x) {
  const fbatch pdf = fbatch(0.39894228040143267794f) * xsimd::exp(fbatch(-0.5f) * x * x);
  return xsimd::fma(x, pdf, normal_cdf(x));
}

// ---------------------------------------------------------------------------- elementwise
// y[i] = f(x[i]) over [0, n); y may alias x. f maps fbatch -> fbatch lane by lane.
template <class F>
void map(float* y, const float* x, std::ptrdiff_t n, F&& f) {
  std::ptrdiff_t i = 0;
  for (; i + W <= n; i += W) store(y + i, f(load(x + i)));
  if (i < n) store_part(y + i, f(load_part(x + i, n - i)), n - i);
}
// y[i] = f(a[i], b[i]) over [0, n); y may alias a or b.
template <class F>
void map2(float* y, const float* a, const float* b, std::ptrdiff_t n, F&& f) {
  std::ptrdiff_t i = 0;
  for (; i + W <= n; i += W) store(y + i, f(load(a + i), load(b + i)));
  if (i < n) store_part(y + i, f(load_part(a + i, n - i), load_part(b + i, n - i)), n - i);
}

}  // namespace ENVIT_KERNEL_ISA_NS
}  // namespace envit::vec
