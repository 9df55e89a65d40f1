// envit/kernels/gemm_packed.hpp — envit's own single-threaded float GEMM (GotoBLAS/BLIS style):
//   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C        (row-major, leading dims given)
// Loop nest: jc over N (NC) > pc over K (KC) > ic over M (MC) > ir (MR) > jr (NR) > micro-kernel.
//   * op(B) is packed per (jc, pc) into kc x NR micro-panels, k-major ("for each k, NR floats");
//     the packed B block (kc x nc, <= NB floats, about half of L2) is reused by every row panel.
//   * op(A) is packed per (ic, pc) into micro-panels of MR rows, in the layout that needs no
//     transpose: Trans::T (A stored K x M) k-major ("for each k, MR floats"); Trans::N (A stored
//     M x K) row-major with row stride KC (plain row copies). Only Trans::T for B transposes while
//     packing, and that cost is amortised over all M rows (Linear's forward packs its weight).
//     A row-major A whose K fits one K block and whose row stride is at most KC is not copied at
//     all: its full row panels are read in place, with its own row stride (gemm_packed_run).
//   * ir outside jr: an A micro-panel stays in L1 while B streams from L2, and C is walked along
//     its rows. The micro-kernel broadcasts A and keeps MR x NV accumulator vectors in registers
//     (AVX-512: 8 x 3 zmm, an 8 x 48 tile of C; SSE2/AVX2/NEON: 6 x 2).
//   * KC is large (768: one K block for every ViT-S shape but the weight gradients) because each
//     extra K block re-reads C and re-packs A; software prefetches, interleaved with the FMAs,
//     bring the next C tile and the sources of the next A and B packs into cache (packing from
//     L3/DRAM otherwise costs 10-20% on shapes with M or N ~ 192).
//   * Except when op(A) is transposed (the weight gradients dW = dY^T X, K = rows of the batch):
//     K blocks of <= KCT = 192 there. The packed B block (kc x nc <= NB) then spans up to ~1300
//     columns, so op(A) is packed once per K block instead of once per column block (with K blocks
//     of ~712, N = 768 needs three column blocks); measured in one process (bench/bench_gemm): dW
//     fc2 192x768x6400 12-15% faster, the other tiny28 and ViT-B/16 weight-gradient shapes 1-6%.
// Ragged edges: packed panels are zero-padded to MR / NR; partial C tiles go through a small
// on-stack tile; a ragged last row panel runs a shorter register tile (MR' = its rows rounded up
// to even), so it costs what its rows need, not a whole MR; likewise a last column panel of at most
// one or two SIMD vectors runs a 1- or 2-vector tile (AVX-512). Each C element is reduced in a fixed
// order (K blocks in order, k within a block in order, one FMA chain), so results are bitwise
// reproducible for given (M, N, K) and kernel set — independent of the leading dimensions, of where
// the call's C tile sits (gemm.hpp's per-thread tiles) and of which register tile computed the row.
// Pack buffers are thread_local, 64-byte aligned and grown only when a larger size is first seen
// (at most ~1.4 MB per thread): no allocation in steady state.
// Architecture: everything is templated on an xsimd arch (gemm_packed_kernels<Arch>() bundles one
// kernel set). The internals live in the inline namespace of kernels/isa.hpp, named after the
// instruction set the translation unit is compiled for, so translation units compiled with
// different flags (kernels/dispatch.hpp's kernel sets) never share a symbol: the linker cannot hand
// an AVX-512 copy of a helper to a caller on a CPU without AVX-512.
// BF16 (core/precision.hpp) without BF16 instructions: the same loop nest with both operands rounded
// to BF16 while packing (A always packed, never read in place), the FP32 micro-kernel unchanged
// (gemm_bf16_emulated_run): a product of two BF16 values is exact in FP32, so this is FP32 GEMM on
// BF16-rounded operands, row-invariant and deterministic like the FP32 path.
// Not here: threading and kernel-set choice (gemm.hpp, kernels/dispatch.hpp), double (Eigen), the
// native BF16 kernels (gemm_bf16_avx512.hpp, gemm_bf16_amx.hpp).
#pragma once
#include <xsimd/xsimd.hpp>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "envit/kernels/gemm_int8.hpp"
#include "envit/kernels/gemm_types.hpp"
#include "envit/kernels/isa.hpp"

// Tuning knobs (compile-time; defaults measured on the 2-core AVX-512 machine, see
// bench/bench_gemm.cpp). KC: max depth of a K block (KC_TA: when op(A) is transposed); MC: rows of
// A packed at a time; NB: floats in a packed B block. ENVIT_GEMM_MR/ENVIT_GEMM_NV (both) override
// the register tile. K blocks decide the order of the float sums: changing KC or KC_TA changes
// results in the last bits.
#ifndef ENVIT_GEMM_KC
#define ENVIT_GEMM_KC 768
#endif
#ifndef ENVIT_GEMM_KC_TA
#define ENVIT_GEMM_KC_TA 192
#endif
#ifndef ENVIT_GEMM_MC
#define ENVIT_GEMM_MC 112
#endif
#ifndef ENVIT_GEMM_NB
#define ENVIT_GEMM_NB 262144
#endif

namespace envit {
namespace detail::gemm_pk {
inline namespace ENVIT_KERNEL_ISA_NS {

// Register blocking for an xsimd arch: MR rows of C x NV vectors of W floats. MR*NV accumulators
// plus NV B vectors plus one A broadcast must fit the register file (32 zmm / 16 ymm or xmm).
// AVX-512: 8 x 3 (24 accumulators, 11 loads per 24 FMAs). Alternatives measured in one process on
// the forward and input-gradient shapes: 14 x 2 (28 accumulators, 16 loads per 28 FMAs) leaves
// GCC 12 one register short (an accumulator spills to the stack inside the k loop) and runs 7-9%
// slower; 12 x 2 1-3% slower, 6 x 4 6-8% slower, 4 x 6 15-27% slower. Same sums, same order.
template <class Arch>
struct Blocking {
  static constexpr int W = static_cast<int>(xsimd::batch<float, Arch>::size);
#if defined(ENVIT_GEMM_MR) && defined(ENVIT_GEMM_NV)
  static constexpr int MR = ENVIT_GEMM_MR;
  static constexpr int NV = ENVIT_GEMM_NV;
#else
  static constexpr int MR = W >= 16 ? 8 : 6;
  static constexpr int NV = W >= 16 ? 3 : 2;
#endif
  static constexpr int NR = NV * W;
  static constexpr int KC = ENVIT_GEMM_KC;
  static constexpr int KCT = std::min(ENVIT_GEMM_KC_TA, ENVIT_GEMM_KC);  // K block when op(A) = A^T
  static constexpr int MC = std::max(MR, ENVIT_GEMM_MC / MR * MR);
  static constexpr int NB = ENVIT_GEMM_NB;  // floats in a packed B block (KC x NC), ~half of L2
  static_assert(KC >= 1 && KCT >= 1 && MR >= 1 && NV >= 1);
};

// A grow-only, 64-byte aligned float buffer (one per thread and operand).
struct PackBuffer {
  float* p = nullptr;
  std::size_t cap = 0;
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { std::free(p); }
  float* get(std::size_t n) {
    if (n > cap) {
      const std::size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      void* q = std::aligned_alloc(64, bytes);
      if (!q) throw std::bad_alloc();
      std::free(p);
      p = static_cast<float*>(q);
      cap = n;
    }
    return p;
  }
};
template <class Arch, int Which>
PackBuffer& pack_buffer() {
  thread_local PackBuffer b;
  return b;
}

inline std::ptrdiff_t ceil_div(std::ptrdiff_t a, std::ptrdiff_t b) { return (a + b - 1) / b; }
inline std::ptrdiff_t round_up(std::ptrdiff_t a, std::ptrdiff_t b) { return ceil_div(a, b) * b; }
// Block size for n items in blocks of at most `cap`, balanced, a multiple of `unit` (cap is one).
inline std::ptrdiff_t balanced_block(std::ptrdiff_t n, std::ptrdiff_t cap, std::ptrdiff_t unit) {
  std::ptrdiff_t nb = ceil_div(n, cap);
  return std::min(cap, round_up(ceil_div(n, nb), unit));
}

// C(m,n) = beta * C, with beta == 0 writing zeros (garbage/NaN in C is ignored).
inline void scale_c(std::ptrdiff_t m, std::ptrdiff_t n, float beta, float* C, std::ptrdiff_t ldc) {
  for (std::ptrdiff_t i = 0; i < m; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f) std::fill(c, c + n, 0.0f);
    else if (beta != 1.0f)
      for (std::ptrdiff_t j = 0; j < n; ++j) c[j] *= beta;
  }
}

// x[0..n) rounded to BF16 in place (the emulated BF16 product rounds its packed panels).
// Scalar meaning: x[i] = round_to_bf16(x[i]) (core/bf16.hpp: nearest even, NaN stays a quiet NaN),
// written on the bits, branch-free, so that it vectorizes.
inline void round_bf16_span(float* __restrict x, std::ptrdiff_t n) {
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(x[i]);
    const std::uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    const std::uint32_t q = (u | 0x00400000u) & 0xffff0000u;
    x[i] = std::bit_cast<float>((u & 0x7fffffffu) > 0x7f800000u ? q : r);
  }
}

#if defined(__AVX512F__)
// dst[k * lddst + j] = src[j * ldsrc + k] for j, k < 16: a 16 x 16 transpose in registers
// (unpack pairs of rows, then of row pairs, then two rounds of 128-bit lane shuffles).
inline void transpose16(const float* src, std::ptrdiff_t ldsrc, float* dst, std::ptrdiff_t lddst) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * ldsrc);
  for (int i = 0; i < 16; i += 2) {  // per lane L: t[i] = rows i,i+1 at 4L, 4L+1; t[i+1] at 4L+2, 4L+3
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // r[i + e]: rows i..i+3 of element 4L + e, in lane L
    const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
    const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int e = 0; e < 4; ++e) {  // gather lanes: column e, e+4, e+8, e+12
    const __m512 va = _mm512_shuffle_f32x4(r[e], r[e + 4], 0x88), vb = _mm512_shuffle_f32x4(r[e], r[e + 4], 0xdd);
    const __m512 vc = _mm512_shuffle_f32x4(r[e + 8], r[e + 12], 0x88),
                 vd = _mm512_shuffle_f32x4(r[e + 8], r[e + 12], 0xdd);
    _mm512_storeu_ps(dst + e * lddst, _mm512_shuffle_f32x4(va, vc, 0x88));
    _mm512_storeu_ps(dst + (e + 8) * lddst, _mm512_shuffle_f32x4(va, vc, 0xdd));
    _mm512_storeu_ps(dst + (e + 4) * lddst, _mm512_shuffle_f32x4(vb, vd, 0x88));
    _mm512_storeu_ps(dst + (e + 12) * lddst, _mm512_shuffle_f32x4(vb, vd, 0xdd));
  }
}
#endif

// Packs op(B)(pc:pc+kc, jc:jc+nc) into ceil(nc/NR) micro-panels of kc x NR (k-major), zero-padded.
//   tb == N: B stored (K, N), element (k, j) at B[k*ldb + j]   — row copies
//   tb == T: B stored (N, K), element (k, j) at B[j*ldb + k]   — transposing copy
// Round: each panel rounded to BF16 once written (while still in L1).
template <int NR, bool Round = false>
void pack_b(Trans tb, const float* B, std::ptrdiff_t ldb, std::ptrdiff_t kc, std::ptrdiff_t nc,
            float* __restrict pb) {
  for (std::ptrdiff_t j0 = 0; j0 < nc; j0 += NR) {
    const std::ptrdiff_t n = std::min<std::ptrdiff_t>(NR, nc - j0);
    float* __restrict dst = pb + j0 * kc;  // panel j0/NR starts at (j0/NR) * kc * NR
    if (tb == Trans::N) {
      const float* src = B + j0;
      if (n == NR) {
        for (std::ptrdiff_t k = 0; k < kc; ++k) std::memcpy(dst + k * NR, src + k * ldb, sizeof(float) * NR);
      } else {
        for (std::ptrdiff_t k = 0; k < kc; ++k) {
          std::memcpy(dst + k * NR, src + k * ldb, sizeof(float) * n);
          std::fill(dst + k * NR + n, dst + (k + 1) * NR, 0.0f);
        }
      }
    } else {
      // dst[k*NR + j] = B[(j0+j)*ldb + k]
      const float* src = B + j0 * ldb;
      std::ptrdiff_t jv = 0;  // rows [0, jv) of the panel done by the 16 x 16 transposes
#if defined(__AVX512F__)
      if constexpr (NR % 16 == 0) {
        for (; jv + 16 <= n; jv += 16) {
          std::ptrdiff_t k0 = 0;
          for (; k0 + 16 <= kc; k0 += 16) transpose16(src + jv * ldb + k0, ldb, dst + k0 * NR + jv, NR);
          for (std::ptrdiff_t j = jv; j < jv + 16; ++j)
            for (std::ptrdiff_t k = k0; k < kc; ++k) dst[k * NR + j] = src[j * ldb + k];
        }
      }
#endif
      // scalar rest: blocks of 8 k keep the destination lines hot
      constexpr std::ptrdiff_t KB = 8;
      std::ptrdiff_t k0 = 0;
      for (; k0 + KB <= kc; k0 += KB)
        for (std::ptrdiff_t j = jv; j < n; ++j)
          for (std::ptrdiff_t kk = 0; kk < KB; ++kk) dst[(k0 + kk) * NR + j] = src[j * ldb + k0 + kk];
      for (std::ptrdiff_t j = jv; j < n; ++j)
        for (std::ptrdiff_t k = k0; k < kc; ++k) dst[k * NR + j] = src[j * ldb + k];
      if (n < NR)
        for (std::ptrdiff_t k = 0; k < kc; ++k) std::fill(dst + k * NR + n, dst + (k + 1) * NR, 0.0f);
    }
    if constexpr (Round) round_bf16_span(dst, kc * NR);
  }
}

// Packs op(A)(ic:ic+mc, pc:pc+kc) into ceil(mc/MR) micro-panels, each MR * KC floats, zero-padded:
//   ta == T: A stored (K, M), element (i, k) at A[k*lda + i] -> k-major: panel[k*MR + r]
//   ta == N: A stored (M, K), element (i, k) at A[i*lda + k] -> row-major: panel[r*KC + k]
// Round: each panel rounded to BF16 once written.
template <int MR, int AS, bool Round = false>
void pack_a(Trans ta, const float* A, std::ptrdiff_t lda, std::ptrdiff_t mc, std::ptrdiff_t kc,
            float* __restrict pa) {
  for (std::ptrdiff_t i0 = 0; i0 < mc; i0 += MR) {
    const std::ptrdiff_t m = std::min<std::ptrdiff_t>(MR, mc - i0);
    float* __restrict dst = pa + (i0 / MR) * (MR * AS);
    if (ta == Trans::T) {
      const float* src = A + i0;
      if (m == MR) {
        for (std::ptrdiff_t k = 0; k < kc; ++k) std::memcpy(dst + k * MR, src + k * lda, sizeof(float) * MR);
      } else {
        for (std::ptrdiff_t k = 0; k < kc; ++k) {
          std::memcpy(dst + k * MR, src + k * lda, sizeof(float) * m);
          std::fill(dst + k * MR + m, dst + (k + 1) * MR, 0.0f);
        }
      }
      if constexpr (Round) round_bf16_span(dst, kc * MR);
    } else {
      for (std::ptrdiff_t r = 0; r < m; ++r) {
        std::memcpy(dst + r * AS, A + (i0 + r) * lda, sizeof(float) * kc);
        if constexpr (Round) round_bf16_span(dst + r * AS, kc);
      }
      for (std::ptrdiff_t r = m; r < MR; ++r) std::fill(dst + r * AS, dst + r * AS + kc, 0.0f);
    }
  }
}

// Prefetch of base + off floats. The address may lie past the end of an array (the tile after the
// last one, the straddled line after a row); x86 prefetches never fault, and the arithmetic is done
// on integers so no out-of-range pointer is ever formed.
// Helpers of the micro-kernel's inner loop are always inlined, and the micro-kernel itself never is:
// GCC's unit-growth limits otherwise decide per translation unit (measured in bench/bench_gemm: a TU
// outlined PrefetchStream::step into a call inside the k loop and ran 7% slower).
#define ENVIT_GEMM_INLINE inline __attribute__((always_inline))
template <int Locality>
ENVIT_GEMM_INLINE void prefetch_at(const float* base, std::ptrdiff_t off) {
  const auto addr = reinterpret_cast<std::uintptr_t>(base) + static_cast<std::uintptr_t>(off) * sizeof(float);
  __builtin_prefetch(reinterpret_cast<const void*>(addr), 0, Locality);
}
template <int Locality>
ENVIT_GEMM_INLINE void prefetch_w_at(const float* base, std::ptrdiff_t off) {
  const auto addr = reinterpret_cast<std::uintptr_t>(base) + static_cast<std::uintptr_t>(off) * sizeof(float);
  __builtin_prefetch(reinterpret_cast<const void*>(addr), 1, Locality);
}

// Software prefetch (into L2) of the source of the next pack, spread over the micro-kernel calls
// that run before that pack, a few lines per call, interleaved with the FMAs (bursts of prefetches
// would stall on the line-fill buffers). The source is `rows` rows of `len` floats, `stride` apart.
// The packs then read from L2 instead of waiting on L3/DRAM, which matters when each packed
// element feeds few flops (M or N around 192, as in the ViT weight gradients).
// Stops at the next start(): lines not prefetched by then are simply read on demand.
// `fast`: two lines per prefetch slot instead of one (the next pre-packed B micro-panel, below).
struct PrefetchStream {
  const float* base = nullptr;
  std::ptrdiff_t rows_left = 0, len = 0, stride = 0, off = 0, col = 0;
  bool fast = false;
  void start(const float* b, std::ptrdiff_t rows, std::ptrdiff_t l, std::ptrdiff_t s, bool f = false) {
    base = b, rows_left = b ? rows : 0, len = l, stride = s, off = 0, col = 0, fast = f;
  }
  void stop() { rows_left = 0, fast = false; }
  ENVIT_GEMM_INLINE void step() {  // one cache line (prefetcht1: into L2)
    if (rows_left <= 0) return;
    prefetch_at<2>(base, off + col);
    col += 16;
    if (col >= len + 16) col = 0, off += stride, --rows_left;  // +16: a row may straddle a line
  }
};

// C(m,n) tile (m <= MR, n <= NR) = alpha * sum_k a(r,k) b(k,j) + beta * C  (beta == 0: C not read).
// a(r,k) = pa[k*AK + r] when AKMajor, else pa[r*S + k] with S = AS, or the runtime row stride `as`
// when AS == 0 (a row-major A read in place); b(k,j) = pb[k*NR + j] (64-byte aligned).
// AK: the k-major panel's row count as packed (the full register tile); MR may be smaller for the
// ragged last row panel, which then costs MR of AK rows' multiply-adds (same FMA order per element,
// so the results do not depend on which kernel computed a row).
// Scalar meaning: for k: for r: for j: acc[r][j] += a(r,k) * b(k,j)  (one FMA chain per element).
// Every P = 3 k steps one prefetch slot (P * MR * NV FMAs hide it): first the lines of the next C
// tile (at c_base + c_next, MR rows x NR), then pending lines of the A-source stream, then of the B
// source; a `fast` B stream also takes a second line in every slot.
template <class Arch, int MR, int NV, int AS, bool AKMajor, int AK = MR, int BS = 0>
__attribute__((noinline)) void micro_kernel(std::ptrdiff_t kc, const float* __restrict pa, const float* __restrict pb,
                         float* __restrict C, std::ptrdiff_t ldc, float alpha, float beta, int m,
                         int n, const float* c_base, std::ptrdiff_t c_next, PrefetchStream& pf0,
                         PrefetchStream& pf1, std::ptrdiff_t as) {
  using V = xsimd::batch<float, Arch>;
  const std::ptrdiff_t S = AS ? AS : as;  // row stride of a row-major A
  constexpr int W = static_cast<int>(V::size);
  constexpr int NR = NV * W;
  constexpr int BR = BS ? BS : NR;        // row stride of the packed B panel (> NR: a narrow tile)
  constexpr int CL = (NR + 15) / 16 + 1;  // lines per C row segment (unaligned: one more)
  V acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V(0.0f);
  std::ptrdiff_t k = 0;
  int c_line = 0;
  constexpr int P = 3;  // k steps per prefetch slot
  for (; k + P <= kc; k += P) {
    if (c_line < MR * CL) {
      prefetch_w_at<3>(c_base, c_next + (c_line / CL) * ldc + std::min((c_line % CL) * 16, NR - 1));
      ++c_line;
    } else if (pf0.rows_left > 0) {
      pf0.step();
    } else {
      pf1.step();
    }
    if (pf1.fast) pf1.step();
#pragma GCC unroll 8
    for (int kk = 0; kk < P; ++kk) {
      V b[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) b[v] = V::load_aligned(pb + (k + kk) * BR + v * W);
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r) {
        const V a(AKMajor ? pa[(k + kk) * AK + r] : pa[r * S + k + kk]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(a, b[v], acc[r][v]);
      }
    }
  }
  for (; k < kc; ++k) {
    V b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) b[v] = V::load_aligned(pb + k * BR + v * W);
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
      const V a(AKMajor ? pa[k * AK + r] : pa[r * S + k]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(a, b[v], acc[r][v]);
    }
  }
  const V valpha(alpha), vbeta(beta);
  if (m == MR && n == NR) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        float* c = C + r * ldc + v * W;
        const V x = acc[r][v] * valpha;
        if (beta == 0.0f) x.store_unaligned(c);
        else xsimd::fma(vbeta, V::load_unaligned(c), x).store_unaligned(c);
      }
    return;
  }
  alignas(64) float tile[MR * NR];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) (acc[r][v] * valpha).store_aligned(tile + r * NR + v * W);
  for (int r = 0; r < m; ++r) {
    float* c = C + r * ldc;
    const float* t = tile + r * NR;
    if (beta == 0.0f)
      for (int j = 0; j < n; ++j) c[j] = t[j];
    else
      for (int j = 0; j < n; ++j) c[j] = beta * c[j] + t[j];
  }
}

// The micro-kernel for a ragged last row panel of m < MR rows: a register tile of MR' = m rounded
// up to even rows (a 50-row product is 6 x 8 + 2 rows, not 7 x 8); the full tile for an odd m
// above the largest even MR' below MR.
template <class Arch, int MR, int NV, int AS, bool AKMajor, int BS = 0, int R = 2>
inline void ragged_rows_kernel(std::ptrdiff_t kc, const float* __restrict pa, const float* __restrict pb,
                               float* __restrict C, std::ptrdiff_t ldc, float alpha, float beta, int m, int n,
                               const float* c_base, std::ptrdiff_t c_next, PrefetchStream& pf0,
                               PrefetchStream& pf1, std::ptrdiff_t as) {
  if constexpr (R >= MR) {
    micro_kernel<Arch, MR, NV, AS, AKMajor, MR, BS>(kc, pa, pb, C, ldc, alpha, beta, m, n, c_base, c_next, pf0, pf1,
                                                    as);
  } else {
    if (m <= R)
      micro_kernel<Arch, R, NV, AS, AKMajor, MR, BS>(kc, pa, pb, C, ldc, alpha, beta, m, n, c_base, c_next, pf0,
                                                     pf1, as);
    else
      ragged_rows_kernel<Arch, MR, NV, AS, AKMajor, BS, R + 2>(kc, pa, pb, C, ldc, alpha, beta, m, n, c_base, c_next,
                                                           pf0, pf1, as);
  }
}

// The product. InPlace: op(A) is row-major (Trans::N) in one K block with lda <= KC (gemm_packed_run
// checks), and its full row panels are read in place with row stride lda: such an A already has
// the packed layout (MR consecutive rows), so only a ragged last panel is packed (zero-padded rows).
// Same values in the same order: bitwise the packed path's results. Packed panels always have row
// stride KC (a compile-time offset in the micro-kernel); in-place panels pass lda at run time.
// Round (the emulated BF16 product): both operands rounded to BF16 while packing (never InPlace;
// a bpre must hold rounded values, as pack_weight_t_bf16 writes them).
template <class Arch, bool InPlace, bool Round = false>
void gemm_packed_run_as(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K,
                        float alpha, const float* A, std::ptrdiff_t lda, const float* B,
                        std::ptrdiff_t ldb, float beta, float* C, std::ptrdiff_t ldc,
                        const float* bpre, const GemmEpilogue* epi,
                        std::ptrdiff_t row_off, std::ptrdiff_t col_off) {
  using Bk = Blocking<Arch>;
  constexpr int MR = Bk::MR, NR = Bk::NR, NV = Bk::NV, KC = Bk::KC;
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    if (epi) (*epi)(row_off, row_off + M, col_off, col_off + N);
    return;
  }
  // Block sizes: K in balanced blocks of <= KC (KCT when op(A) is transposed); the packed B block
  // (kcb x ncb) within NB floats.
  const std::ptrdiff_t kcb = balanced_block(K, ta == Trans::T ? Bk::KCT : KC, 1);
  const std::ptrdiff_t mcb = balanced_block(M, Bk::MC, MR);
  const std::ptrdiff_t ncb =
      balanced_block(N, std::max<std::ptrdiff_t>(NR, Bk::NB / kcb / NR * NR), NR);
  float* pa = pack_buffer<Arch, 0>().get(static_cast<std::size_t>(round_up(mcb, MR) * KC));
  const bool a_in_place = InPlace;
  float* pb = bpre ? nullptr : pack_buffer<Arch, 1>().get(static_cast<std::size_t>(kcb * round_up(ncb, NR)));
  const bool a_kmajor = ta == Trans::T;
  // Where block (i0.., p0..) of op(A) / (p0.., j0..) of op(B) starts, and its source geometry.
  auto a_src = [&](std::ptrdiff_t i0, std::ptrdiff_t p0) {
    return ta == Trans::N ? A + i0 * lda + p0 : A + p0 * lda + i0;
  };
  auto b_src = [&](std::ptrdiff_t p0, std::ptrdiff_t j0) {
    return tb == Trans::N ? B + p0 * ldb + j0 : B + j0 * ldb + p0;
  };
  PrefetchStream pf_a, pf_b;

  for (std::ptrdiff_t jc = 0; jc < N; jc += ncb) {
    const std::ptrdiff_t nc = std::min(ncb, N - jc);
    for (std::ptrdiff_t pc = 0; pc < K; pc += kcb) {
      const std::ptrdiff_t kc = std::min(kcb, K - pc);
      const float beta_k = pc == 0 ? beta : 1.0f;  // later K blocks accumulate into C
      // this block's packed panels: panel jr / NR at pbk + (jr / NR) * pstride
      const float* pbk = pb;
      std::ptrdiff_t pstride = kc * NR;
      if (bpre) {
        pbk = bpre + (jc / NR) * K * NR + pc * NR;
        pstride = K * NR;
        pf_b.stop();
      } else {
        pack_b<NR, Round>(tb, b_src(pc, jc), ldb, kc, nc, pb);
      }
      if (!bpre) {  // next B block: (pc + kcb, jc), else (0, jc + ncb); prefetched during this whole pass
        std::ptrdiff_t p2 = pc + kcb, j2 = jc;
        if (p2 >= K) p2 = 0, j2 = jc + ncb;
        const std::ptrdiff_t k2 = std::min(kcb, K - p2), n2 = std::min(ncb, N - j2);
        if (j2 < N)
          pf_b.start(b_src(p2, j2), tb == Trans::N ? k2 : n2, tb == Trans::N ? n2 : k2, ldb);
        else
          pf_b.stop();
      }
      for (std::ptrdiff_t ic = 0; ic < M; ic += mcb) {
        const std::ptrdiff_t mc = std::min(mcb, M - ic);
        const std::ptrdiff_t mc_full = a_in_place ? mc / MR * MR : 0;  // rows read in place
        if (mc_full < mc) pack_a<MR, KC, Round>(ta, a_src(ic + mc_full, pc), lda, mc - mc_full, kc, pa);
        {  // next A block: (ic + mcb, pc), else the first one of the next K block
          std::ptrdiff_t i2 = ic + mcb, p2 = pc;
          if (i2 >= M) i2 = 0, p2 = pc + kcb;
          if (p2 < K) {
            const std::ptrdiff_t m2 = std::min(mcb, M - i2), k2 = std::min(kcb, K - p2);
            pf_a.start(a_src(i2, p2), ta == Trans::N ? m2 : k2, ta == Trans::N ? k2 : m2, lda);
          } else {
            pf_a.stop();
          }
        }
        // A last column panel of n <= W or 2W columns runs a register tile of 1 or 2 vectors (same
        // FMA chain per element): narrow products (attention's N = tokens or head dim, e.g. 17,
        // 32, or the 2 columns left of N = 50) do not pay for a full NR = 48.
        auto tile = [&](std::ptrdiff_t ir, std::ptrdiff_t jr, std::ptrdiff_t cn) {
          const int m = static_cast<int>(std::min<std::ptrdiff_t>(MR, mc - ir));
          const int n = static_cast<int>(std::min<std::ptrdiff_t>(NR, nc - jr));
          const float* pbj = pbk + (jr / NR) * pstride;
          float* c = C + (ic + ir) * ldc + jc + jr;
          auto run = [&]<int NVp>() {
            constexpr int BS = NVp == NV ? 0 : NR;  // B panels keep their NR-wide rows
            if constexpr (InPlace) {
              if (ir < mc_full) {  // a full row panel of A, in place (row stride lda: KC folds into offsets)
                if (lda == KC)
                  micro_kernel<Arch, MR, NVp, KC, false, MR, BS>(kc, a_src(ic + ir, pc), pbj, c, ldc, alpha, beta_k,
                                                                m, n, C, cn, pf_a, pf_b, lda);
                else
                  micro_kernel<Arch, MR, NVp, 0, false, MR, BS>(kc, a_src(ic + ir, pc), pbj, c, ldc, alpha, beta_k,
                                                               m, n, C, cn, pf_a, pf_b, lda);
                return;
              }
            }
            const float* pai = pa + ((ir - mc_full) / MR) * (MR * KC);  // packed (row stride KC)
            auto packed = [&]<bool KMajor>() {
              if (m == MR)
                micro_kernel<Arch, MR, NVp, KC, KMajor, MR, BS>(kc, pai, pbj, c, ldc, alpha, beta_k, m, n, C, cn,
                                                               pf_a, pf_b, KC);
              else
                ragged_rows_kernel<Arch, MR, NVp, KC, KMajor, BS>(kc, pai, pbj, c, ldc, alpha, beta_k, m, n, C, cn,
                                                                  pf_a, pf_b, KC);
            };
            if (a_kmajor) packed.template operator()<true>();
            else packed.template operator()<false>();
          };
          if constexpr (NV >= 3) {
            if (n <= Bk::W) return run.template operator()<1>();
            if (n <= 2 * Bk::W) return run.template operator()<2>();
          }
          run.template operator()<NV>();
        };
        // The next C tile to prefetch may lie past the last row or column: only prefetched, never read.
        if (!bpre || ic > 0) {
          // ir outside jr: the A micro-panel stays in L1 while B streams from L2 (packed here, or
          // pre-packed and already read by the first row block), and C is walked along its rows
          // (MR sequential streams the hardware prefetcher follows). Next C tile: to the right,
          // else the start of the next row panel.
          for (std::ptrdiff_t ir = 0; ir < mc; ir += MR)
            for (std::ptrdiff_t jr = 0; jr < nc; jr += NR)
              tile(ir, jr, jr + NR < nc ? (ic + ir) * ldc + jc + jr + NR : (ic + ir + MR) * ldc + jc);
        } else {
          // First row block on a pre-packed B: B comes from L3 or DRAM (a model's weights do not
          // stay in L2), so each B micro-panel, once read, serves every row panel of the block
          // before the next one is touched (jr outside ir): B is read at 1/(mc/MR) of the rate
          // the other order needs; A panels come from L2. While a micro-panel's row panels run,
          // the next micro-panel (contiguous, kc x NR floats) is prefetched into L2 at two lines
          // per slot: the hardware prefetcher alone left the first tile of each micro-panel waiting
          // on L3 (50-row products 11-16% faster, 197-row ones 5-6%; bench/bench_gemm's
          // prepacked_cold shapes). Next C tile: below, else the top of the next column panel.
          for (std::ptrdiff_t jr = 0; jr < nc; jr += NR) {
            if (jr + NR < nc) pf_b.start(pbk + (jr / NR + 1) * pstride, 1, kc * NR, 0, true);
            else pf_b.stop();
            for (std::ptrdiff_t ir = 0; ir < mc; ir += MR)
              tile(ir, jr, ir + MR < mc ? (ic + ir + MR) * ldc + jc + jr : ic * ldc + jc + jr + NR);
          }
          pf_b.stop();
        }
        // this block of C (mc x nc) is final after the last K block: run the fused pass while in L2
        if (epi && pc + kc >= K) (*epi)(row_off + ic, row_off + ic + mc, col_off + jc, col_off + jc + nc);
      }
    }
  }
}

// The product, with bpre: op(B) already packed as pack_weight_t lays it out (panels of NR columns
// over the whole K, panel i at bpre + i * K * NR, starting at this call's column 0); B is then not
// read. A row-major A (Trans::N) in one K block whose row stride is at most KC is read in place
// (not packed): a row panel of it spans no more memory than a packed one.
template <class Arch>
void gemm_packed_run(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K,
                     float alpha, const float* A, std::ptrdiff_t lda, const float* B,
                     std::ptrdiff_t ldb, float beta, float* C, std::ptrdiff_t ldc,
                     const float* bpre, const GemmEpilogue* epi,
                     std::ptrdiff_t row_off, std::ptrdiff_t col_off) {
  constexpr int KC = Blocking<Arch>::KC;
  if (ta == Trans::N && K <= KC && lda <= KC)
    gemm_packed_run_as<Arch, true>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bpre, epi, row_off, col_off);
  else
    gemm_packed_run_as<Arch, false>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bpre, epi, row_off, col_off);
}

// op(B) = W^T for W (n, k) row-major (PyTorch's Linear layout), packed once into panels of NR
// columns over the whole k (zero-padded): what the packed GEMM would build on every call of
// C = A W^T. dst: round_up(n, NR) * k floats, 64-byte aligned.
template <class Arch>
void pack_weight_t(float* dst, const float* W, std::ptrdiff_t n, std::ptrdiff_t k) {
  pack_b<Blocking<Arch>::NR>(Trans::T, W, k, k, n, dst);
}

// The emulated BF16 product (GemmKernelSet::run_bf16 of the FP32-only sets): the packed path with
// both operands rounded to BF16 while packing, then this set's FP32 micro-kernel, whose products of
// two BF16 values are exact in FP32. Bitwise equal to gemm_packed_run on operands rounded
// beforehand. bpre: pack_weight_t_bf16's panels (floats holding BF16 values).
template <class Arch>
void gemm_bf16_emulated_run(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, float alpha,
                            const float* A, std::ptrdiff_t lda, const float* B, std::ptrdiff_t ldb, float beta,
                            float* C, std::ptrdiff_t ldc, const void* bpre, const GemmEpilogue* epi,
                            std::ptrdiff_t row_off, std::ptrdiff_t col_off) {
  gemm_packed_run_as<Arch, false, true>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                                        static_cast<const float*>(bpre), epi, row_off, col_off);
}
// pack_weight_t's layout (floats, panels of NR columns over the whole k) with the values rounded.
template <class Arch>
std::size_t packed_weight_bf16_emulated_bytes(std::ptrdiff_t n, std::ptrdiff_t k) {
  constexpr std::ptrdiff_t NR = Blocking<Arch>::NR;
  return static_cast<std::size_t>(round_up(n, NR) * k) * sizeof(float);
}
template <class Arch>
void pack_weight_t_bf16_emulated(void* dst, const float* W, std::ptrdiff_t n, std::ptrdiff_t k) {
  pack_b<Blocking<Arch>::NR, true>(Trans::T, W, k, k, n, static_cast<float*>(dst));
}

// GemmKernelSet::probe_fma: 12 independent FMA chains of W floats (more than latency x FMA ports,
// 4 x 2, on any current x86; 12 chains plus the two operands fit the 16 vector registers of
// SSE2/AVX2, where 16 would spill), 2 * W * 12 flops per round.
template <class Arch>
float probe_fma(long iters, float x, float y, double* flops) {
  using V = xsimd::batch<float, Arch>;
  constexpr int kChains = 12;
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = V(1.0f + 1e-3f * float(i));
  const V vx(x), vy(y);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = xsimd::fma(acc[i], vx, vy);
  }
  V s = acc[0];
  for (int i = 1; i < kChains; ++i) s += acc[i];
  *flops = 2.0 * double(V::size) * kChains * double(iters);
  return xsimd::hadd(s);
}

}  // namespace ENVIT_KERNEL_ISA_NS
}  // namespace detail::gemm_pk
#undef ENVIT_GEMM_INLINE

// One kernel set: the packed GEMM and its weight packing for one xsimd arch, behind plain function
// pointers, with the row kernels `vec` of the same translation unit (vec::vec_kernel_set() of
// kernels/vec_kernels.hpp) and the emulated BF16 product on the same micro-kernel (a set with BF16
// instructions replaces the bf16 fields) and the portable INT8 product (kernels/gemm_int8.hpp; a set
// with VNNI replaces the int8 fields). kernels/dispatch.hpp picks one of these at run time;
// gemm.hpp calls it.
template <class Arch>
GemmKernelSet gemm_packed_kernels(const char* name, const VecKernelSet& vec) {
  using Bk = detail::gemm_pk::Blocking<Arch>;
  GemmKernelSet ks;
  ks.name = name;
  ks.mr = Bk::MR, ks.nr = Bk::NR, ks.kc = Bk::KC;
  ks.run = &detail::gemm_pk::gemm_packed_run<Arch>;
  ks.pack_weight_t = &detail::gemm_pk::pack_weight_t<Arch>;
  ks.vec = vec;
  ks.bf16 = "emulated";
  ks.bf16_native = false;
  ks.bf16_mr = Bk::MR, ks.bf16_nr = Bk::NR;
  ks.run_bf16 = &detail::gemm_pk::gemm_bf16_emulated_run<Arch>;
  ks.packed_weight_bf16_bytes = &detail::gemm_pk::packed_weight_bf16_emulated_bytes<Arch>;
  ks.pack_weight_t_bf16 = &detail::gemm_pk::pack_weight_t_bf16_emulated<Arch>;
  ks.probe_fma = &detail::gemm_pk::probe_fma<Arch>;
  ks.probe_bf16 = nullptr;
  return detail::gemm_i8::with_portable_int8(ks);
}

}  // namespace envit
