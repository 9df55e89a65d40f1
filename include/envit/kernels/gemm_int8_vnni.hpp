// envit/kernels/gemm_int8_vnni.hpp — the INT8 product (kernels/gemm_int8.hpp's contract and weight
// layout) on AVX512-VNNI vpdpbusd, single-threaded: the run_int8 of the "avx512_bf16" and "amx"
// kernel sets (every CPU with AVX512-BF16 has AVX512-VNNI) and of a translation unit built with
// -mavx512vnni. Compiled only where __AVX512VNNI__ is defined.
//   vpdpbusd multiplies unsigned bytes by signed bytes, four per 32-bit lane, and adds the four
//   products to an int32 lane (no saturation; 4 * 255 * 127 per step, no overflow for K < 2^15).
//   A (s8) enters as u8 = A + 128 (a xor 0x80 on the broadcast word); the extra
//   128 * sum_k W[j, k] is the panel's precomputed comp[j], subtracted once per tile:
//     sum_k (A[i,k] + 128) W[j,k] - comp[j] = sum_k A[i,k] W[j,k]   exactly.
//   Register tile 8 x 48 (24 accumulators + 3 weight vectors + 1 broadcast of the 32 zmm), each
//   instruction covering 4 k; ragged last panels run 1 or 2 vectors, ragged row groups fewer rows
//   (a row past m reads row m - 1 again and is not stored).
// Not here: threading and quantization (gemm.hpp), the portable kernel (gemm_int8.hpp).
#pragma once
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__)
#error "gemm_int8_vnni.hpp needs -mavx512vnni and AVX-512 BW (e.g. -march=x86-64-v4 -mavx512vnni)"
#endif
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "envit/kernels/gemm_int8.hpp"

namespace envit {
namespace detail::gemm_i8 {
inline namespace ENVIT_KERNEL_ISA_NS {

constexpr int kVnniMR = 8, kVnniNV = 3, kVnniNR = 16 * kVnniNV, kVnniMC = 64;

inline __mmask16 vnni_lanes(int n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n > 0 ? n : 0)) - 1u); }

// acc(r, j) = sum_q dot4(A[r, 4q..], W[j, 4q..]) for r < m <= R, j < n <= 16 NV, then stored as
// INT32 (Ci) or float(acc) * sa[r] * sw[j] (C).
template <int R, int NV>
__attribute__((noinline)) void micro_vnni(std::ptrdiff_t quads, const std::int8_t* A, std::ptrdiff_t lda,
                                          const unsigned char* panel, int m, int n, const float* sa,
                                          const float* sw, float* C, std::int32_t* Ci, std::ptrdiff_t ldc) {
  const std::int8_t* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = A + (r < m ? r : m - 1) * lda;
  const auto* comp = reinterpret_cast<const std::int32_t*>(panel);
  const auto* w = reinterpret_cast<const std::int32_t*>(panel + 4 * kVnniNR);
  __m512i acc[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_si512();
  for (std::ptrdiff_t q = 0; q < quads; ++q) {
    __m512i b[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_si512(w + q * kVnniNR + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      std::uint32_t word;
      std::memcpy(&word, rows[r] + 4 * q, 4);
      const __m512i a = _mm512_set1_epi32(static_cast<int>(word ^ 0x80808080u));
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], a, b[v]);
    }
  }
#pragma GCC unroll 3
  for (int v = 0; v < NV; ++v) {
    const __mmask16 k = vnni_lanes(n - 16 * v);
    const __m512i cv = _mm512_loadu_si512(comp + 16 * v);
    const __m512 swv = Ci ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(k, sw + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      if (r >= m) break;
      const __m512i s = _mm512_sub_epi32(acc[r][v], cv);
      if (Ci) {
        _mm512_mask_storeu_epi32(Ci + r * ldc + 16 * v, k, s);
      } else {
        const __m512 x = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(sa[r])), swv);
        _mm512_mask_storeu_ps(C + r * ldc + 16 * v, k, x);
      }
    }
  }
}

// GemmKernelSet::run_int8 on vpdpbusd (see gemm_types.hpp and gemm_int8.hpp).
inline void run_vnni(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, const std::int8_t* A, std::ptrdiff_t lda,
                     const float* a_scale, const void* bpre, const float* w_scale, float* C, std::int32_t* Ci,
                     std::ptrdiff_t ldc, const GemmEpilogue* epi, std::ptrdiff_t row_off, std::ptrdiff_t col_off) {
  auto tile = [](std::ptrdiff_t quads, const std::int8_t* a, std::ptrdiff_t ld, const unsigned char* panel, int m,
                 int n, const float* sa, const float* sw, float* c, std::int32_t* ci, std::ptrdiff_t ldc_) {
    auto rows = [&]<int NV>() {
      if (m > 4) micro_vnni<8, NV>(quads, a, ld, panel, m, n, sa, sw, c, ci, ldc_);
      else if (m > 2) micro_vnni<4, NV>(quads, a, ld, panel, m, n, sa, sw, c, ci, ldc_);
      else if (m > 1) micro_vnni<2, NV>(quads, a, ld, panel, m, n, sa, sw, c, ci, ldc_);
      else micro_vnni<1, NV>(quads, a, ld, panel, m, n, sa, sw, c, ci, ldc_);
    };
    if (n <= 16) rows.template operator()<1>();
    else if (n <= 32) rows.template operator()<2>();
    else rows.template operator()<3>();
  };
  run_blocked<kVnniMR, kVnniNR, kVnniMC>(M, N, K, A, lda, a_scale, bpre, w_scale, C, Ci, ldc, epi, row_off, col_off,
                                         tile);
}
inline std::size_t packed_bytes_vnni(std::ptrdiff_t n, std::ptrdiff_t k) { return packed_bytes<kVnniNR>(n, k); }
inline void pack_weight_vnni(void* dst, const std::int8_t* W, std::ptrdiff_t n, std::ptrdiff_t k) {
  pack_weight<kVnniNR>(dst, W, n, k);
}

// GemmKernelSet::probe_int8: 16 independent vpdpbusd chains (16 lanes x 4 products x 2 ops = 128
// integer ops per instruction).
inline float probe_vnni(long iters, float x, float y, double* ops) {
  constexpr int kChains = 16;
  __m512i acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_epi32(i);
  const __m512i a = _mm512_set1_epi8(static_cast<char>(static_cast<int>(x) & 0x7f));
  const __m512i b = _mm512_set1_epi8(static_cast<char>(static_cast<int>(y) & 0x7f));
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
  }
  __m512i s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_epi32(s, acc[i]);
  *ops = 128.0 * kChains * double(iters);
  return static_cast<float>(_mm512_reduce_add_epi32(s));
}

// Kernel set `ks` with the vpdpbusd INT8 product.
inline GemmKernelSet with_vnni_int8(GemmKernelSet ks) {
  ks.int8 = "avx512_vnni";
  ks.int8_native = true;
  ks.int8_mr = kVnniMR, ks.int8_nr = kVnniNR;
  ks.run_int8 = &run_vnni;
  ks.packed_weight_int8_bytes = &packed_bytes_vnni;
  ks.pack_weight_t_int8 = &pack_weight_vnni;
  ks.probe_int8 = &probe_vnni;
  return ks;
}

}  // namespace ENVIT_KERNEL_ISA_NS
}  // namespace detail::gemm_i8
}  // namespace envit
