// envit/kernels/gemm_bf16_avx512.hpp — the BF16 product on AVX512-BF16 (vdpbf16ps), single-threaded:
//   C(M,N) = alpha * bf16(op(A))(M,K) * bf16(op(B))(K,N) + beta * C     (FP32 accumulation)
// the run_bf16 of the "avx512_bf16" kernel set (src/kernels/kernel_set_avx512_bf16.cpp; also of the
// compile-time set of a translation unit built with -mavx512bf16) and the AVX-512 helpers the AMX
// kernel shares (gemm_bf16_amx.hpp). Compiled only where __AVX512BF16__ is defined.
// Operands are rounded to BF16 while packing (vcvtne2ps2bf16: round to nearest even, a NaN stays a
// quiet NaN; FP32 subnormal inputs become zero, as vdpbf16ps treats BF16 subnormal inputs) and
// stored as k-pairs: one 32-bit word holds (op(X)(i, 2p), op(X)(i, 2p + 1)), K padded to even with
// a zero.
//   * op(B) in micro-panels of NR = 48 columns, pair-major: for each pair p, NR words (k-major, like
//     the FP32 kernel's "for each k, NR floats"); 3 zmm per pair.
//   * op(A) in micro-panels of MR = 8 rows: Trans::N row-major (row r at r * KPC words, plain
//     conversions of row segments), Trans::T pair-major (for each pair, MR words).
//   * The micro-kernel broadcasts one A word per row and runs vdpbf16ps on MR x 3 accumulators (an
//     8 x 48 tile: 24 accumulators + 3 B vectors + 1 broadcast of the 32 zmm; the FP32 kernel's
//     measured best shape, each instruction covering two k). Per element one chain over the
//     pairs in order: vdpbf16ps adds a[2p+1] b[2p+1] then a[2p] b[2p], each rounded (DAZ, FTZ).
//   * Loop nest and blocking as the FP32 kernel (gemm_packed.hpp): jc over N > pc over K (blocks of
//     <= KC elements, even) > ic over M (MC rows) > ir > jr; the same epilogue contract, called per
//     block of <= MC rows once its K loop is done; ragged last row panels run a register tile of
//     their rows rounded up to even; last column panels of <= 16 or 32 columns run 1 or 2 vectors.
//   * A row of C depends on its own row of op(A) only, in a fixed order for given (N, K): row
//     invariant and identical across thread counts (gemm.hpp's tiles start at multiples of MR/NR).
// Pack buffers: thread_local, grow-only (no allocation in steady state).
// Not here: threading (gemm.hpp), the FP32 product (the set reuses the avx512 set's), prefetching
// (the hardware prefetcher alone; measure before adding software prefetches).
#pragma once
#if !defined(__AVX512BF16__) || !defined(__AVX512BW__)
#error "gemm_bf16_avx512.hpp needs -mavx512bf16 and AVX-512 BW (e.g. -march=x86-64-v4 -mavx512bf16)"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "envit/kernels/gemm_packed.hpp"
#include "envit/kernels/gemm_types.hpp"
#include "envit/kernels/isa.hpp"

namespace envit {
namespace detail::gemm_bf16 {
inline namespace ENVIT_KERNEL_ISA_NS {

using gemm_pk::balanced_block;
using gemm_pk::ceil_div;
using gemm_pk::round_up;
using gemm_pk::scale_c;

constexpr int kMR = 8, kNV = 3, kNR = 16 * kNV;  // register tile 8 x 48
constexpr int kKC = 768;                         // K block (elements, even); A row stride kKC / 2 words
constexpr int kKPC = kKC / 2;
constexpr int kMC = 112;                         // rows of op(A) packed at a time (a multiple of kMR)
constexpr std::ptrdiff_t kNB = 262144;           // words (pairs) in a packed B block: 1 MB

inline __mmask16 lanes(std::ptrdiff_t n) {  // the first min(n, 16) lanes
  return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n > 0 ? n : 0)) - 1u);
}
// Words (lo[j], hi[j]) for j < 16 from two rows of 16 floats: convert both, then interleave.
inline __m512i pairs_interleaved(__m512 lo, __m512 hi) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                       5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
}
// Words (x[2q], x[2q+1]) for q < 16 from 32 consecutive floats (first 16 in f0, next in f1).
inline __m512i pairs_consecutive(__m512 f0, __m512 f1) {
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(f1, f0));
}
// The pairs of `n` consecutive floats x[0..n) (n <= 32; zeros beyond): n/2 rounded up words.
inline __m512i pairs_of_row(const float* x, std::ptrdiff_t n) {
  return pairs_consecutive(_mm512_maskz_loadu_ps(lanes(n), x), _mm512_maskz_loadu_ps(lanes(n - 16), x + 16));
}

// Packs op(B)(0:kc, 0:nc) into ceil(nc / NR) micro-panels of kpp >= kp = ceil(kc / 2) pairs x NR
// words (panel j0 / NR at pb + (j0 / NR) * kpp * NR), zero-padded (columns past nc, the odd k's
// partner, pairs kp..kpp: the AMX kernel's whole tiles of 16 pairs).
//   tb == N: B stored (K, N), element (k, j) at B[k*ldb + j]: two rows -> interleave
//   tb == T: B stored (N, K), element (k, j) at B[j*ldb + k]: a row's consecutive pairs, then a
//            16 x 16 word transpose per block of 16 columns x 16 pairs
template <int NR>
void pack_b(Trans tb, const float* B, std::ptrdiff_t ldb, std::ptrdiff_t kc, std::ptrdiff_t nc,
            std::uint32_t* __restrict pb, std::ptrdiff_t kpp = 0) {
  const std::ptrdiff_t kp = ceil_div(kc, 2);
  kpp = std::max(kpp, kp);
  for (std::ptrdiff_t j0 = 0; j0 < nc; j0 += NR) {
    const std::ptrdiff_t n = std::min<std::ptrdiff_t>(NR, nc - j0);
    std::uint32_t* __restrict dst = pb + (j0 / NR) * kpp * NR;
    for (std::ptrdiff_t p = kp; p < kpp; ++p)
      for (int v = 0; v < NR / 16; ++v) _mm512_storeu_si512(dst + p * NR + 16 * v, _mm512_setzero_si512());
    if (tb == Trans::N) {
      for (std::ptrdiff_t p = 0; p < kp; ++p) {
        const float* r0 = B + 2 * p * ldb + j0;
        const bool has1 = 2 * p + 1 < kc;
        for (int v = 0; v < NR / 16; ++v) {
          const __mmask16 m = lanes(n - 16 * v);
          const __m512 lo = _mm512_maskz_loadu_ps(m, r0 + 16 * v);
          const __m512 hi = has1 ? _mm512_maskz_loadu_ps(m, r0 + ldb + 16 * v) : _mm512_setzero_ps();
          _mm512_storeu_si512(dst + p * NR + 16 * v, pairs_interleaved(lo, hi));
        }
      }
    } else {
      alignas(64) std::uint32_t t[16 * 16], tt[16 * 16];
      for (std::ptrdiff_t jb = 0; jb < NR; jb += 16) {
        const std::ptrdiff_t nj = std::min<std::ptrdiff_t>(16, n - jb);  // <= 0: zero columns
        for (std::ptrdiff_t p0 = 0; p0 < kp; p0 += 16) {
          const std::ptrdiff_t np = std::min<std::ptrdiff_t>(16, kp - p0);
          for (std::ptrdiff_t j = 0; j < 16; ++j) {
            const __m512i w = j < nj ? pairs_of_row(B + (j0 + jb + j) * ldb + 2 * p0, kc - 2 * p0) : _mm512_setzero_si512();
            _mm512_store_si512(t + j * 16, w);
          }
          gemm_pk::transpose16(reinterpret_cast<const float*>(t), 16, reinterpret_cast<float*>(tt), 16);
          for (std::ptrdiff_t q = 0; q < np; ++q)
            _mm512_storeu_si512(dst + (p0 + q) * NR + jb, _mm512_load_si512(tt + q * 16));
        }
      }
    }
  }
}

// Row-major pair panel rows: row r of op(A)(0:m, 0:kc), ta == N (A stored (M, K)), at
// dst[r*KPC + p] for p < kpp (>= ceil(kc / 2); zeros past kc and in rows m..MR).
template <int MR>
void pack_a_rows_n(const float* A, std::ptrdiff_t lda, std::ptrdiff_t m, std::ptrdiff_t kc, std::ptrdiff_t kpp,
                   std::uint32_t* __restrict dst) {
  for (std::ptrdiff_t r = 0; r < MR; ++r)
    for (std::ptrdiff_t p0 = 0; p0 < kpp; p0 += 16) {
      const __m512i w = r < m ? pairs_of_row(A + r * lda + 2 * p0, kc - 2 * p0) : _mm512_setzero_si512();
      _mm512_mask_storeu_epi32(dst + r * kKPC + p0, lanes(kpp - p0), w);
    }
}

// Packs op(A)(0:mc, 0:kc) into ceil(mc / MR) micro-panels of MR * KPC words, zero-padded rows:
//   ta == N: A stored (M, K), element (i, k) at A[i*lda + k] -> row-major: panel[r*KPC + p]
//   ta == T: A stored (K, M), element (i, k) at A[k*lda + i] -> pair-major: panel[p*MR + r]
template <int MR>
void pack_a(Trans ta, const float* A, std::ptrdiff_t lda, std::ptrdiff_t mc, std::ptrdiff_t kc,
            std::uint32_t* __restrict pa) {
  static_assert(MR <= 16);
  const std::ptrdiff_t kp = ceil_div(kc, 2);
  for (std::ptrdiff_t i0 = 0; i0 < mc; i0 += MR) {
    const std::ptrdiff_t m = std::min<std::ptrdiff_t>(MR, mc - i0);
    std::uint32_t* __restrict dst = pa + (i0 / MR) * (MR * kKPC);
    if (ta == Trans::N) {
      pack_a_rows_n<MR>(A + i0 * lda, lda, m, kc, kp, dst);
    } else {
      const __mmask16 mm = lanes(m), out = lanes(MR);
      for (std::ptrdiff_t p = 0; p < kp; ++p) {
        const __m512 lo = _mm512_maskz_loadu_ps(mm, A + 2 * p * lda + i0);
        const __m512 hi = 2 * p + 1 < kc ? _mm512_maskz_loadu_ps(mm, A + (2 * p + 1) * lda + i0) : _mm512_setzero_ps();
        _mm512_mask_storeu_epi32(dst + p * MR, out, pairs_interleaved(lo, hi));
      }
    }
  }
}

// C(m, n) tile (m <= R, n <= 16 NV) = alpha * sum_p dot(a(r, p), b(p, j)) + beta * C (beta == 0: C
// not read). a(r, p) = pa[p*MR + r] (AKMajor) or pa[r*KPC + p]; b(p, j) = pb[p*NR + j] (aligned).
// Scalar meaning: for p: for r: for j: acc[r][j] += a(r,2p+1) b(2p+1,j), then += a(r,2p) b(2p,j).
template <int R, int NV, bool AKMajor, int MR = kMR, int NR = kNR>
__attribute__((noinline)) void micro_kernel(std::ptrdiff_t kp, const std::uint32_t* __restrict pa,
                                            const std::uint32_t* __restrict pb, float* __restrict C,
                                            std::ptrdiff_t ldc, float alpha, float beta, int m, int n) {
  __m512 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (std::ptrdiff_t p = 0; p < kp; ++p) {
    __m512bh b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = reinterpret_cast<__m512bh>(_mm512_load_si512(pb + p * NR + 16 * v));
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const std::uint32_t w = AKMajor ? pa[p * MR + r] : pa[r * kKPC + p];
      const __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(w)));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
    }
  }
  const __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    if (r >= m) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __mmask16 k = lanes(n - 16 * v);
      float* c = C + r * ldc + 16 * v;
      const __m512 x = _mm512_mul_ps(acc[r][v], valpha);
      if (beta == 0.0f) _mm512_mask_storeu_ps(c, k, x);
      else _mm512_mask_storeu_ps(c, k, _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(k, c), x));
    }
  }
}

// The tile for m rows (R: m rounded up to even) and n columns (1, 2 or 3 vectors).
template <bool AKMajor>
void tile(std::ptrdiff_t kp, const std::uint32_t* pa, const std::uint32_t* pb, float* C, std::ptrdiff_t ldc,
          float alpha, float beta, int m, int n) {
  auto rows = [&]<int NV>() {
    if (m > 6) micro_kernel<8, NV, AKMajor>(kp, pa, pb, C, ldc, alpha, beta, m, n);
    else if (m > 4) micro_kernel<6, NV, AKMajor>(kp, pa, pb, C, ldc, alpha, beta, m, n);
    else if (m > 2) micro_kernel<4, NV, AKMajor>(kp, pa, pb, C, ldc, alpha, beta, m, n);
    else micro_kernel<2, NV, AKMajor>(kp, pa, pb, C, ldc, alpha, beta, m, n);
  };
  if (n <= 16) rows.template operator()<1>();
  else if (n <= 32) rows.template operator()<2>();
  else rows.template operator()<3>();
}

// Thread-local grow-only buffers of 32-bit words (0: A panels, 1: B block).
template <int Which>
std::uint32_t* words(std::size_t n) {
  thread_local gemm_pk::PackBuffer b;
  return reinterpret_cast<std::uint32_t*>(b.get(n));
}

// The loop nest of both native BF16 products (this one and gemm_bf16_amx.hpp's), single-threaded,
// as the FP32 kernel's: jc over N (column blocks whose packed B fits kNB words) > pc over K (blocks
// of <= kKC elements, multiples of KUnit) > ic over M (blocks of MC rows) > ir (MR) > jr (NR).
//   panel_pairs(kc): pairs per packed B panel for a K block of kc elements (K padded with zeros);
//   pack_a(ta, A block, lda, mc, kc, kpp, pa): op(A) rows into panels of MR * kKPC words;
//   block(kpp, A panel, B panel, C tile, ldc, alpha, beta, m, n): one register tile.
// bpre: B pre-packed over the whole K (panels of NR columns, panel_pairs(K) pairs each).
template <int MR, int NR, int KUnit, int MC, class PanelPairs, class PackA, class Block>
void run_blocked(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, float alpha,
                 const float* A, std::ptrdiff_t lda, const float* B, std::ptrdiff_t ldb, float beta, float* C,
                 std::ptrdiff_t ldc, const void* bpre, const GemmEpilogue* epi, std::ptrdiff_t row_off,
                 std::ptrdiff_t col_off, PanelPairs panel_pairs, PackA pack_a_fn, Block block_fn) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    if (epi) (*epi)(row_off, row_off + M, col_off, col_off + N);
    return;
  }
  const std::ptrdiff_t kcb = balanced_block(K, kKC, KUnit);  // pairs never straddle K blocks
  const std::ptrdiff_t kpb = panel_pairs(kcb), kp_all = panel_pairs(K);
  const std::ptrdiff_t mcb = balanced_block(M, MC, MR);
  const std::ptrdiff_t ncb = balanced_block(N, std::max<std::ptrdiff_t>(NR, kNB / kpb / NR * NR), NR);
  std::uint32_t* pa = words<0>(static_cast<std::size_t>(round_up(mcb, MR) * kKPC));
  const auto* bp = static_cast<const std::uint32_t*>(bpre);
  std::uint32_t* pb = bp ? nullptr : words<1>(static_cast<std::size_t>(kpb * round_up(ncb, NR)));
  for (std::ptrdiff_t jc = 0; jc < N; jc += ncb) {
    const std::ptrdiff_t nc = std::min(ncb, N - jc);
    for (std::ptrdiff_t pc = 0; pc < K; pc += kcb) {
      const std::ptrdiff_t kc = std::min(kcb, K - pc), kpp = panel_pairs(kc);
      const float beta_k = pc == 0 ? beta : 1.0f;  // later K blocks accumulate into C
      const std::uint32_t* pbk = pb;
      std::ptrdiff_t pstride = kpp * NR;
      if (bp) {
        pbk = bp + (jc / NR) * kp_all * NR + (pc / 2) * NR;
        pstride = kp_all * NR;
      } else {
        pack_b<NR>(tb, tb == Trans::N ? B + pc * ldb + jc : B + jc * ldb + pc, ldb, kc, nc, pb, kpp);
      }
      for (std::ptrdiff_t ic = 0; ic < M; ic += mcb) {
        const std::ptrdiff_t mc = std::min(mcb, M - ic);
        pack_a_fn(ta, ta == Trans::N ? A + ic * lda + pc : A + pc * lda + ic, lda, mc, kc, kpp, pa);
        for (std::ptrdiff_t ir = 0; ir < mc; ir += MR)
          for (std::ptrdiff_t jr = 0; jr < nc; jr += NR)
            block_fn(kpp, pa + (ir / MR) * (MR * kKPC), pbk + (jr / NR) * pstride, C + (ic + ir) * ldc + jc + jr, ldc,
                     alpha, beta_k, static_cast<int>(std::min<std::ptrdiff_t>(MR, mc - ir)),
                     static_cast<int>(std::min<std::ptrdiff_t>(NR, nc - jr)));
        if (epi && pc + kc >= K) (*epi)(row_off + ic, row_off + ic + mc, col_off + jc, col_off + jc + nc);
      }
    }
  }
}

// GemmKernelSet::run_bf16 on vdpbf16ps (see gemm_types.hpp). bpre: pack_weight_t's words (panels of
// NR columns over the whole K, panel i at bpre + i * ceil(K/2) * NR words).
inline void run(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, float alpha,
                const float* A, std::ptrdiff_t lda, const float* B, std::ptrdiff_t ldb, float beta, float* C,
                std::ptrdiff_t ldc, const void* bpre, const GemmEpilogue* epi, std::ptrdiff_t row_off,
                std::ptrdiff_t col_off) {
  auto pairs = [](std::ptrdiff_t kc) { return ceil_div(kc, 2); };
  auto pack = [](Trans t, const float* a, std::ptrdiff_t ld, std::ptrdiff_t mc, std::ptrdiff_t kc, std::ptrdiff_t,
                 std::uint32_t* pa) { pack_a<kMR>(t, a, ld, mc, kc, pa); };
  auto block = [ta](std::ptrdiff_t kp, const std::uint32_t* pa, const std::uint32_t* pb, float* c, std::ptrdiff_t ld,
                    float al, float be, int m, int n) {
    if (ta == Trans::T) tile<true>(kp, pa, pb, c, ld, al, be, m, n);
    else tile<false>(kp, pa, pb, c, ld, al, be, m, n);
  };
  run_blocked<kMR, kNR, 2, kMC>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bpre, epi, row_off, col_off,
                                pairs, pack, block);
}

// W (n, k) row-major as op(B) = W^T in run's layout: panels of NR columns over the whole k.
inline std::size_t packed_weight_bytes(std::ptrdiff_t n, std::ptrdiff_t k) {
  return static_cast<std::size_t>(round_up(n, kNR) * ceil_div(k, 2)) * sizeof(std::uint32_t);
}
inline void pack_weight_t(void* dst, const float* W, std::ptrdiff_t n, std::ptrdiff_t k) {
  pack_b<kNR>(Trans::T, W, k, k, n, static_cast<std::uint32_t*>(dst));
}

// GemmKernelSet::probe_bf16: 16 independent vdpbf16ps chains (16 lanes x 2 pairs x 2 flops = 64
// flops per instruction); 16 accumulators + 2 operands fit the 32 zmm.
inline float probe(long iters, float x, float y, double* flops) {
  constexpr int kChains = 16;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(1e-3f * float(i));
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(x), _mm512_set1_ps(x));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(y), _mm512_set1_ps(y));
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  *flops = 64.0 * kChains * double(iters);
  return _mm512_reduce_add_ps(s);
}

// Kernel set `ks` (its FP32 GEMM and row kernels unchanged) named `name`, with the native BF16
// product `how` (register tile mr x nr) given by its functions.
inline GemmKernelSet with_native_bf16(GemmKernelSet ks, const char* name, const char* how, int mr, int nr,
                                      decltype(GemmKernelSet::run_bf16) run_fn,
                                      decltype(GemmKernelSet::packed_weight_bf16_bytes) bytes_fn,
                                      decltype(GemmKernelSet::pack_weight_t_bf16) pack_fn,
                                      decltype(GemmKernelSet::probe_bf16) probe_fn) {
  ks.name = name;
  ks.bf16 = how;
  ks.bf16_native = true;
  ks.bf16_mr = mr, ks.bf16_nr = nr;
  ks.run_bf16 = run_fn;
  ks.packed_weight_bf16_bytes = bytes_fn;
  ks.pack_weight_t_bf16 = pack_fn;
  ks.probe_bf16 = probe_fn;
  return ks;
}
// The "avx512_bf16" BF16 product on top of a kernel set.
inline GemmKernelSet with_bf16(GemmKernelSet ks, const char* name) {
  return with_native_bf16(ks, name, "avx512_bf16", kMR, kNR, &run, &packed_weight_bytes, &pack_weight_t, &probe);
}

}  // namespace ENVIT_KERNEL_ISA_NS
}  // namespace detail::gemm_bf16
}  // namespace envit
