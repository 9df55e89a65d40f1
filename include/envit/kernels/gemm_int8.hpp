// envit/kernels/gemm_int8.hpp — the INT8 product C(M,N) = A(M,K) W^T (W (N,K), PyTorch's Linear
// layout) with signed 8-bit operands and INT32 accumulation, single-threaded: the layout of a
// pre-packed INT8 weight, the loop nest shared by every set's INT8 micro-kernel, and the portable
// micro-kernel (plain C++ on int32, correct on every CPU incl. ARM64) that every kernel set without
// VNNI uses. The VNNI micro-kernel is kernels/gemm_int8_vnni.hpp; threading and the quantization
// of float operands are gemm.hpp's.
//   Operands: A (M, K) int8, row-major, lda bytes per row, each row zero-padded to K4 = round_up(K, 4)
//   (lda >= K4); values in [-127, 127]. W (N, K) int8 in [-127, 127], packed once.
//   Packed weight: panels of NR columns (NR: the set's int8_nr), panel p (columns p NR ..) at byte
//   packed_bytes<NR>(p NR, K) = p * (4 NR + K4 NR):
//     NR int32: comp[j] = 128 * sum_k W[j, k] (what a u8 x s8 product must subtract, see VNNI);
//     K4/4 quads x NR int32 words: word (q, j) holds W[j, 4q .. 4q+3] (zeros past K, past N).
//   acc[i][j] = sum_k A[i,k] W[j,k], exact in int32 for K < 2^17 (|A W| <= 127^2).
//   Output: either the INT32 accumulators (Ci != nullptr: Ci[i*ldc + j] = acc) or the dequantized
//   float C[i*ldc + j] = float(acc) * a_scale[i] * w_scale[j] (in that order, two FP32
//   multiplications: the same bits from every set), then the epilogue epi on each finished block of
//   rows (GemmEpilogue's contract, coordinates offset by row_off/col_off).
//   A row of C depends on its own row of A only; results are exact integers before the float
//   epilogue, so every set and thread count gives bitwise the same C.
// Not here: quantization of floats (gemm.hpp: symmetric, round half to even), threading.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "envit/kernels/gemm_types.hpp"
#include "envit/kernels/isa.hpp"

namespace envit {
namespace detail::gemm_i8 {
inline namespace ENVIT_KERNEL_ISA_NS {

inline std::ptrdiff_t k4_of(std::ptrdiff_t k) { return (k + 3) / 4 * 4; }

// Bytes of the packed layout for columns 0..n (n a multiple of NR, or the whole weight).
template <int NR>
std::size_t packed_bytes(std::ptrdiff_t n, std::ptrdiff_t k) {
  const std::ptrdiff_t panels = (n + NR - 1) / NR;
  return static_cast<std::size_t>(panels) * (4 * NR + static_cast<std::size_t>(k4_of(k)) * NR);
}

// W (n, k) int8 row-major (values in [-127, 127]) into the layout above; dst: packed_bytes<NR>(n, k)
// bytes, 64-byte aligned.
template <int NR>
void pack_weight(void* dst, const std::int8_t* W, std::ptrdiff_t n, std::ptrdiff_t k) {
  const std::ptrdiff_t k4 = k4_of(k), quads = k4 / 4;
  auto* out = static_cast<unsigned char*>(dst);
  for (std::ptrdiff_t j0 = 0; j0 < n; j0 += NR) {
    unsigned char* panel = out + packed_bytes<NR>(j0, k);
    auto* comp = reinterpret_cast<std::int32_t*>(panel);
    std::int8_t* words = reinterpret_cast<std::int8_t*>(panel + 4 * NR);
    std::memset(panel, 0, 4 * NR + static_cast<std::size_t>(k4) * NR);
    for (int j = 0; j < NR && j0 + j < n; ++j) {
      const std::int8_t* w = W + (j0 + j) * k;
      std::int32_t s = 0;
      for (std::ptrdiff_t kk = 0; kk < k; ++kk) {
        s += w[kk];
        words[(kk / 4) * 4 * NR + 4 * j + kk % 4] = w[kk];
      }
      comp[j] = 128 * s;
    }
    (void)quads;
  }
}

// One register tile of the portable kernel: acc for m <= MR rows and n <= NR columns of a panel.
// Scalar meaning: acc[r][j] = sum_q sum_t A[r, 4q+t] * W[j, 4q+t].
template <int MR, int NR>
void micro_portable(std::ptrdiff_t quads, const std::int8_t* A, std::ptrdiff_t lda, const unsigned char* panel,
                    std::int32_t (&acc)[MR][NR], int m) {
  const auto* w = reinterpret_cast<const std::int8_t*>(panel + 4 * NR);
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) acc[r][j] = 0;
  for (int r = 0; r < m; ++r) {
    const std::int8_t* a = A + r * lda;
    std::int32_t* c = acc[r];
    for (std::ptrdiff_t q = 0; q < quads; ++q) {
      const std::int32_t a0 = a[4 * q], a1 = a[4 * q + 1], a2 = a[4 * q + 2], a3 = a[4 * q + 3];
      const std::int8_t* b = w + q * 4 * NR;
      for (int j = 0; j < NR; ++j)
        c[j] += a0 * b[4 * j] + a1 * b[4 * j + 1] + a2 * b[4 * j + 2] + a3 * b[4 * j + 3];
    }
  }
}

// Writes a tile's accumulators: INT32 (Ci) or dequantized floats (C), m rows x n columns.
template <int MR, int NR>
void store_tile(const std::int32_t (&acc)[MR][NR], int m, int n, const float* a_scale, const float* w_scale,
                float* C, std::int32_t* Ci, std::ptrdiff_t ldc) {
  for (int r = 0; r < m; ++r) {
    if (Ci) {
      for (int j = 0; j < n; ++j) Ci[r * ldc + j] = acc[r][j];
    } else {
      const float sa = a_scale[r];
      for (int j = 0; j < n; ++j) C[r * ldc + j] = static_cast<float>(acc[r][j]) * sa * w_scale[j];
    }
  }
}

// The loop nest of every INT8 product: ic over blocks of <= MC rows > jr over panels of NR columns >
// ir over MR rows; tile(quads, A rows, lda, panel, m, n, a_scale, w_scale, C, Ci, ldc) runs one
// register tile and stores it. The epilogue is called per block of rows once all its columns are
// done. K is not blocked: a panel (NR x K4 bytes) stays in L2 while the block's rows stream by.
template <int MR, int NR, int MC, class Tile>
void run_blocked(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, const std::int8_t* A, std::ptrdiff_t lda,
                 const float* a_scale, const void* bpre, const float* w_scale, float* C, std::int32_t* Ci,
                 std::ptrdiff_t ldc, const GemmEpilogue* epi, std::ptrdiff_t row_off, std::ptrdiff_t col_off,
                 Tile tile) {
  if (M <= 0 || N <= 0) return;
  const std::ptrdiff_t quads = k4_of(K) / 4;
  const auto* packed = static_cast<const unsigned char*>(bpre);
  for (std::ptrdiff_t ic = 0; ic < M; ic += MC) {
    const std::ptrdiff_t mc = std::min<std::ptrdiff_t>(MC, M - ic);
    for (std::ptrdiff_t jr = 0; jr < N; jr += NR) {
      const unsigned char* panel = packed + packed_bytes<NR>(jr, K);
      const int n = static_cast<int>(std::min<std::ptrdiff_t>(NR, N - jr));
      for (std::ptrdiff_t ir = 0; ir < mc; ir += MR) {
        const std::ptrdiff_t i = ic + ir;
        const int m = static_cast<int>(std::min<std::ptrdiff_t>(MR, mc - ir));
        tile(quads, A + i * lda, lda, panel, m, n, a_scale ? a_scale + i : nullptr, w_scale ? w_scale + jr : nullptr,
             C ? C + i * ldc + jr : nullptr, Ci ? Ci + i * ldc + jr : nullptr, ldc);
      }
    }
    if (epi && !Ci) (*epi)(row_off + ic, row_off + ic + mc, col_off, col_off + N);
  }
}

constexpr int kPortableMR = 4, kPortableNR = 16, kPortableMC = 64;

// GemmKernelSet::run_int8 in plain C++ (see gemm_types.hpp).
inline void run_portable(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, const std::int8_t* A,
                         std::ptrdiff_t lda, const float* a_scale, const void* bpre, const float* w_scale, float* C,
                         std::int32_t* Ci, std::ptrdiff_t ldc, const GemmEpilogue* epi, std::ptrdiff_t row_off,
                         std::ptrdiff_t col_off) {
  constexpr int MR = kPortableMR, NR = kPortableNR;
  auto tile = [](std::ptrdiff_t quads, const std::int8_t* a, std::ptrdiff_t ld, const unsigned char* panel, int m,
                 int n, const float* sa, const float* sw, float* c, std::int32_t* ci, std::ptrdiff_t ldc_) {
    std::int32_t acc[MR][NR];
    micro_portable<MR, NR>(quads, a, ld, panel, acc, m);
    store_tile<MR, NR>(acc, m, n, sa, sw, c, ci, ldc_);
  };
  run_blocked<MR, NR, kPortableMC>(M, N, K, A, lda, a_scale, bpre, w_scale, C, Ci, ldc, epi, row_off, col_off, tile);
}
inline std::size_t packed_bytes_portable(std::ptrdiff_t n, std::ptrdiff_t k) { return packed_bytes<kPortableNR>(n, k); }
inline void pack_weight_portable(void* dst, const std::int8_t* W, std::ptrdiff_t n, std::ptrdiff_t k) {
  pack_weight<kPortableNR>(dst, W, n, k);
}

// Kernel set `ks` with the portable INT8 product.
inline GemmKernelSet with_portable_int8(GemmKernelSet ks) {
  ks.int8 = "portable";
  ks.int8_native = false;
  ks.int8_mr = kPortableMR, ks.int8_nr = kPortableNR;
  ks.run_int8 = &run_portable;
  ks.packed_weight_int8_bytes = &packed_bytes_portable;
  ks.pack_weight_t_int8 = &pack_weight_portable;
  ks.probe_int8 = nullptr;
  return ks;
}

}  // namespace ENVIT_KERNEL_ISA_NS
}  // namespace detail::gemm_i8
}  // namespace envit
