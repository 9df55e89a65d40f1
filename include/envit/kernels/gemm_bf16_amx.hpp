// envit/kernels/gemm_bf16_amx.hpp — the BF16 product on AMX tiles (tdpbf16ps), single-threaded:
//   C(M,N) = alpha * bf16(op(A))(M,K) * bf16(op(B))(K,N) + beta * C     (FP32 accumulation)
// the run_bf16 of the "amx" kernel set (src/kernels/kernel_set_amx.cpp). Compiled only with
// -mamx-tile -mamx-bf16 -mavx512bf16 (AVX-512 does the packing and the epilogue). The process must
// have been granted the tile data state (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) in
// kernels/dispatch.hpp's detection), or the first tile instruction faults.
// Operands are packed as in gemm_bf16_avx512.hpp (BF16 k-pairs, one 32-bit word per pair, round to
// nearest even by vcvtne2ps2bf16), in the layouts the tiles load directly:
//   * op(A) row-major pair panels of MR = 32 rows (row r at r * KPC words), whatever ta: an A tile
//     is 16 rows x 64 bytes (16 pairs = 32 BF16 of one row). Trans::T goes through 16 x 16 word
//     transposes.
//   * op(B) in panels of NR = 32 columns, pair-major ("VNNI" layout): a B tile is 16 pairs x 16
//     columns x 2 BF16, rows 64 bytes apart in a 128-byte panel row.
//   * K padded with zeros to whole tiles of 16 pairs (32 elements); K blocks of <= KC = 768
//     elements, multiples of 32.
//   * Tile configuration (palette 1): tmm0-3 the four 16 x 16 FP32 accumulators of a 32 x 32 block
//     of C (2 A tiles x 2 B tiles), tmm4-5 the A tiles, tmm6-7 the B tiles. Per 16 pairs: 4 tile
//     loads, 4 tdpbf16ps. After the K loop the accumulators are stored (_tile_stored) to a 32 x 32
//     buffer and the epilogue (alpha, beta, masked ragged edges) runs on AVX-512.
//   * Ragged last row panels are zero rows in the tiles (the tiles keep one shape); a row's
//     results depend on its own row of op(A) only (fixed order per (N, K)): row invariant and
//     identical across thread counts.
// The configuration is loaded at the start of every call and the tile state released at its end
// (tile state is per thread; OpenMP threads each run whole calls).
// UNEXECUTED on the machines this was written on (AMD Zen 4: AVX512-BF16, no AMX, and AMX cannot be
// emulated there): written from Intel's instruction reference; its tests (gemm_bf16_amx) run
// wherever the CPU and kernel grant AMX and are reported as skipped elsewhere.
#pragma once
#if !defined(__AMX_TILE__) || !defined(__AMX_BF16__)
#error "gemm_bf16_amx.hpp needs -mamx-tile -mamx-bf16"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "envit/kernels/gemm_bf16_avx512.hpp"

namespace envit {
namespace detail::gemm_bf16_amx {
inline namespace ENVIT_KERNEL_ISA_NS {

using gemm_bf16::kKC;
using gemm_bf16::kKPC;
using gemm_bf16::lanes;
using gemm_pk::ceil_div;
using gemm_pk::round_up;

constexpr int kMR = 32, kNR = 32;  // a 32 x 32 block of C: 2 x 2 accumulator tiles
constexpr int kMC = 128;           // rows of op(A) packed at a time
static_assert(kKC % 32 == 0 && kKPC % 16 == 0);

// LDTILECFG's 64-byte operand: byte 0 palette, 1 start_row, 16..47 bytes per row of tiles 0..15
// (2 bytes each), 48..63 rows of tiles 0..15; everything else zero.
struct alignas(64) TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};  // tmm0-7: 64 bytes per row
  std::uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};    // tmm0-7: 16 rows
};
static_assert(sizeof(TileConfig) == 64);

// Packs op(A)(0:mc, 0:kc) into ceil(mc / MR) row-major pair panels of MR * KPC words (row r of a
// panel at r * KPC), pairs kp..kpp and rows past mc zero.
inline void pack_a(Trans ta, const float* A, std::ptrdiff_t lda, std::ptrdiff_t mc, std::ptrdiff_t kc,
                   std::ptrdiff_t kpp, std::uint32_t* __restrict pa) {
  for (std::ptrdiff_t i0 = 0; i0 < mc; i0 += kMR) {
    const std::ptrdiff_t m = std::min<std::ptrdiff_t>(kMR, mc - i0);
    std::uint32_t* __restrict dst = pa + (i0 / kMR) * (kMR * kKPC);
    if (ta == Trans::N) {
      gemm_bf16::pack_a_rows_n<kMR>(A + i0 * lda, lda, m, kc, kpp, dst);
      continue;
    }
    // A stored (K, M): element (i, k) at A[k*lda + i]. Per 16 rows x 16 pairs: t[q][r] = the pair
    // (2 (p0 + q), 2 (p0 + q) + 1) of row r (rows 2p, 2p+1 of the stored A, interleaved), then
    // transposed into the panel's rows.
    alignas(64) std::uint32_t t[16 * 16], tt[16 * 16];
    for (std::ptrdiff_t r0 = 0; r0 < kMR; r0 += 16) {
      const __mmask16 mm = lanes(m - r0);
      for (std::ptrdiff_t p0 = 0; p0 < kpp; p0 += 16) {
        for (std::ptrdiff_t q = 0; q < 16; ++q) {
          const std::ptrdiff_t k = 2 * (p0 + q);
          const __m512 lo = k < kc ? _mm512_maskz_loadu_ps(mm, A + k * lda + i0 + r0) : _mm512_setzero_ps();
          const __m512 hi = k + 1 < kc ? _mm512_maskz_loadu_ps(mm, A + (k + 1) * lda + i0 + r0) : _mm512_setzero_ps();
          _mm512_store_si512(t + q * 16, gemm_bf16::pairs_interleaved(lo, hi));
        }
        gemm_pk::transpose16(reinterpret_cast<const float*>(t), 16, reinterpret_cast<float*>(tt), 16);
        for (std::ptrdiff_t r = 0; r < 16; ++r)
          _mm512_mask_storeu_epi32(dst + (r0 + r) * kKPC + p0, lanes(kpp - p0), _mm512_load_si512(tt + r * 16));
      }
    }
  }
}

// One 32 x 32 block of C (m <= 32 rows, n <= 32 columns valid) from kpp pairs (a multiple of 16):
// pa a row-major pair panel (row stride KPC words), pb a pair-major panel (NR words per pair).
// C = alpha * acc + beta * C (beta == 0: C not read). The tile configuration must be loaded.
__attribute__((noinline)) inline void block(std::ptrdiff_t kpp, const std::uint32_t* pa, const std::uint32_t* pb,
                                            float* __restrict C, std::ptrdiff_t ldc, float alpha, float beta, int m,
                                            int n) {
  constexpr long a_stride = kKPC * 4, b_stride = kNR * 4;  // bytes between tile rows
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (std::ptrdiff_t p = 0; p < kpp; p += 16) {
    _tile_loadd(4, pa + p, a_stride);
    _tile_loadd(5, pa + 16 * kKPC + p, a_stride);
    _tile_loadd(6, pb + p * kNR, b_stride);
    _tile_loadd(7, pb + p * kNR + 16, b_stride);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float acc[kMR * kNR];
  _tile_stored(0, acc, kNR * 4);
  _tile_stored(1, acc + 16, kNR * 4);
  _tile_stored(2, acc + 16 * kNR, kNR * 4);
  _tile_stored(3, acc + 16 * kNR + 16, kNR * 4);
  const __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
  for (int r = 0; r < m; ++r)
    for (int v = 0; v < 2; ++v) {
      const __mmask16 k = lanes(n - 16 * v);
      if (!k) continue;
      float* c = C + r * ldc + 16 * v;
      const __m512 x = _mm512_mul_ps(_mm512_load_ps(acc + r * kNR + 16 * v), valpha);
      if (beta == 0.0f) _mm512_mask_storeu_ps(c, k, x);
      else _mm512_mask_storeu_ps(c, k, _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(k, c), x));
    }
}

// Pairs per packed B panel for a K block of kc elements: whole tiles of 16 pairs.
inline std::ptrdiff_t panel_pairs(std::ptrdiff_t kc) { return round_up(ceil_div(kc, 2), 16); }

// GemmKernelSet::run_bf16 on AMX (see gemm_types.hpp): gemm_bf16_avx512.hpp's loop nest with K
// blocks of whole tiles. bpre: pack_weight_t's words (panels of NR columns over the whole K, panel
// i at bpre + i * panel_pairs(K) * NR words).
inline void run(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, float alpha,
                const float* A, std::ptrdiff_t lda, const float* B, std::ptrdiff_t ldb, float beta, float* C,
                std::ptrdiff_t ldc, const void* bpre, const GemmEpilogue* epi, std::ptrdiff_t row_off,
                std::ptrdiff_t col_off) {
  static const TileConfig cfg{};
  _tile_loadconfig(&cfg);
  gemm_bf16::run_blocked<kMR, kNR, 32, kMC>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bpre, epi, row_off,
                                            col_off, &panel_pairs, &pack_a, &block);
  _tile_release();
}

inline std::size_t packed_weight_bytes(std::ptrdiff_t n, std::ptrdiff_t k) {
  return static_cast<std::size_t>(round_up(n, kNR) * panel_pairs(k)) * sizeof(std::uint32_t);
}
inline void pack_weight_t(void* dst, const float* W, std::ptrdiff_t n, std::ptrdiff_t k) {
  gemm_bf16::pack_b<kNR>(Trans::T, W, k, k, n, static_cast<std::uint32_t*>(dst), panel_pairs(k));
}

// GemmKernelSet::probe_bf16: tdpbf16ps into four independent accumulator tiles (tmm0-3) from two
// A and two B tiles loaded once; each instruction is 16 x 16 x 32 multiply-adds (16384 flops).
inline float probe(long iters, float x, float y, double* flops) {
  alignas(64) std::uint32_t a[16 * 16], b[16 * 16];
  const __m512i wa = gemm_bf16::pairs_interleaved(_mm512_set1_ps(x), _mm512_set1_ps(x));
  const __m512i wb = gemm_bf16::pairs_interleaved(_mm512_set1_ps(y), _mm512_set1_ps(y));
  for (int r = 0; r < 16; ++r) _mm512_store_si512(a + 16 * r, wa), _mm512_store_si512(b + 16 * r, wb);
  static const TileConfig cfg{};
  _tile_loadconfig(&cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, a, 64);
  _tile_loadd(5, a, 64);
  _tile_loadd(6, b, 64);
  _tile_loadd(7, b, 64);
  for (long it = 0; it < iters; ++it) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float out[4][16 * 16];
  _tile_stored(0, out[0], 64);
  _tile_stored(1, out[1], 64);
  _tile_stored(2, out[2], 64);
  _tile_stored(3, out[3], 64);
  _tile_release();
  *flops = 4.0 * 16384.0 * double(iters);
  return out[0][0] + out[1][17] + out[2][34] + out[3][255];
}

// The "amx" BF16 product on top of a kernel set (its FP32 GEMM and row kernels unchanged).
inline GemmKernelSet with_bf16(GemmKernelSet ks, const char* name) {
  return gemm_bf16::with_native_bf16(ks, name, "amx", kMR, kNR, &run, &packed_weight_bytes, &pack_weight_t, &probe);
}

}  // namespace ENVIT_KERNEL_ISA_NS
}  // namespace detail::gemm_bf16_amx
}  // namespace envit
