// envit/kernels/gemm.hpp — the one GEMM entry point every op uses:
//   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C      (all row-major, leading dims given)
// Threads: envit splits C into per-thread tiles itself (rows of C or columns of C, whichever the
// cost estimate in detail::gemm_tile prefers) and runs a single-threaded product per tile, so each
// element of C is computed by exactly one thread in a fixed order: bitwise-deterministic for a
// fixed thread count, no reductions across threads (K is never split). Rows are invariant with both
// backends: a row of C depends on its own row of op(A) only, not on the call's other rows (tested
// in test_gemm, natively and under qemu-aarch64), which is what lets early exit drop rows and still
// agree bitwise with the complete model. The tiles start at multiples of the backend's register
// blocking, so results are also identical across thread counts (tested). A second thread is used
// above ~1 MFLOP per thread.
// Called from inside a parallel region it stays serial (never nests).
// Backends: for float, envit's packed xsimd micro-kernel (kernels/gemm_packed.hpp, the default; its
// instruction set is chosen as kernels/dispatch.hpp says) or Eigen; double always uses Eigen.
// Selectable at runtime with set_gemm_backend. The Eigen backend runs Eigen's products on one
// thread each, inside envit's tiles (gemm_eigen_serial); Eigen's own thread setting is left alone.
// Semantics shared by both backends: beta == 0 never reads C (NaN garbage is overwritten);
// alpha == 0 or K == 0 gives C = beta * C without reading A or B.
// Precision (core/precision.hpp): gemm<float> and gemm_weight_t<float> read matmul_precision() once
// per call, on the calling thread. Under Precision::bf16 they run the kernel set's BF16 product
// (GemmKernelSet::run_bf16: both operands rounded to BF16, FP32 accumulation; native AMX or
// AVX512-BF16 instructions, else the FP32 kernels on rounded operands) with its own register tile
// for the thread tiles, whatever the float backend (Eigen has no BF16 product). The same
// guarantees hold there: rows invariant, deterministic per thread count and kernel set, identical
// across thread counts. double ignores the precision.
// Under Precision::int8, gemm<float> runs in FP32; only gemm_weight_t with a weight packed for INT8
// (PackedWeight::pack_int8) runs the INT8 product: the activation rows quantized to INT8 (per row,
// or one calibrated static scale, core/int8.hpp), the kernel set's run_int8 (exact INT32
// accumulation, kernels/gemm_int8.hpp), dequantized as float(acc) * a_scale[i] * w_scale[j], then
// the epilogue. Rows stay invariant and results are bitwise the same for every kernel set and
// thread count (exact integer sums, the same two FP32 multiplications).
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/core/int8.hpp"
#include "envit/core/parallel.hpp"
#include "envit/core/precision.hpp"
#include "envit/core/tensor.hpp"
#include "envit/kernels/dispatch.hpp"
#include "envit/kernels/gemm_types.hpp"

namespace envit {

enum class GemmBackend { eigen, packed };

namespace detail {
inline std::atomic<GemmBackend>& gemm_backend_ref() {
  static std::atomic<GemmBackend> b{GemmBackend::packed};
  return b;
}
}  // namespace detail

// Backend for float GEMMs (default: packed). double always runs on Eigen.
inline void set_gemm_backend(GemmBackend b) { detail::gemm_backend_ref().store(b); }
inline GemmBackend gemm_backend() { return detail::gemm_backend_ref().load(); }

// Single-threaded Eigen product on one tile. A is (M,K) if ta==N else stored (K,M); B likewise.
// Calls Eigen's blocked GEMM kernel directly (general_matrix_matrix_product, the routine behind
// Eigen's `noalias() +=` products) without its parallel driver: envit's tiles already use every
// thread, and Eigen::setNbThreads is process-wide, so the caller's Eigen setting is left alone.
// Row invariance: for a row-major C, Eigen computes C^T = op(B)^T op(A)^T, so our rows are the
// columns of its kernel, which it runs in panels of nr (gebp_traits::nr, 4) and, for the N % nr
// leftover, one at a time with code that orders the sums over k differently (measured: up to
// 2.7e-5 relative in float and 1.1e-13 in double, on x86-64 and aarch64). Here whole panels run in
// place and the M % nr leftover rows run as one zero-padded panel from a per-thread copy: every row
// goes through the same code, in the same order, so its result depends on its own row of op(A) only
// (Eigen's K blocking depends on K alone). Our columns are its rows, in panels of gebp_traits::mr:
// gemm's column tiles start at multiples of that (detail::eigen_tile_cols), so a column is computed
// the same way whatever the thread count.
template <class T>
void gemm_eigen_serial(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K,
                       T alpha, const T* A, std::ptrdiff_t lda, const T* B, std::ptrdiff_t ldb,
                       T beta, T* C, std::ptrdiff_t ldc) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using OMap = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
  if (M <= 0 || N <= 0) return;
  OMap c(C, M, N, Eigen::OuterStride<>(ldc));
  if (beta == T(0)) c.setZero();
  else if (beta != T(1)) c *= beta;
  if (K <= 0 || alpha == T(0)) return;
  using Eigen::Index;
  constexpr int R = Eigen::RowMajor, Cm = Eigen::ColMajor;
  auto run = [&]<int LhsOrder, int RhsOrder>(Index m, const T* a, Index la, T* cc, Index lc) {
    Eigen::internal::gemm_blocking_space<Eigen::RowMajor, T, T, Eigen::Dynamic, Eigen::Dynamic, Eigen::Dynamic>
        blocking(m, N, K, 1, true);
    Eigen::internal::general_matrix_matrix_product<Index, T, LhsOrder, false, T, RhsOrder, false, Eigen::RowMajor,
                                                   1>::run(m, N, K, a, la, B, ldb, cc, 1, lc, alpha, blocking,
                                                           nullptr);
  };
  // op(A) row-major (M, K) when ta == N; A^T stored (K, M) row-major is op(A) column-major.
  auto run_b = [&]<int LhsOrder>(Index m, const T* a, Index la, T* cc, Index lc) {
    if (tb == Trans::N) run.template operator()<LhsOrder, R>(m, a, la, cc, lc);
    else run.template operator()<LhsOrder, Cm>(m, a, la, cc, lc);
  };
  constexpr Index nr = Eigen::internal::gebp_traits<T, T>::nr;
  const Index whole = M / nr * nr, rest = M - whole;
  if (whole > 0) {
    if (ta == Trans::N) run_b.template operator()<R>(whole, A, lda, C, ldc);
    else run_b.template operator()<Cm>(whole, A, lda, C, ldc);
  }
  if (rest == 0) return;
  // The leftover rows: op(A) rows whole..M-1 and their rows of C, zero-padded to nr rows.
  thread_local std::vector<T> buf;  // grows to the largest nr * (K + N) seen, then stays
  const std::size_t need = std::size_t(nr) * std::size_t(K + N);
  if (buf.size() < need) buf.resize(need);
  T* a = buf.data();
  T* cc = a + nr * K;
  std::fill(buf.begin(), buf.begin() + std::ptrdiff_t(need), T(0));
  for (Index i = 0; i < rest; ++i) {
    if (ta == Trans::N) std::copy_n(A + (whole + i) * lda, K, a + i * K);
    else
      for (Index k = 0; k < K; ++k) a[i * K + k] = A[k * lda + whole + i];
    std::copy_n(C + (whole + i) * ldc, N, cc + i * N);
  }
  run_b.template operator()<R>(nr, a, K, cc, N);
  for (Index i = 0; i < rest; ++i) std::copy_n(cc + i * N, N, C + (whole + i) * ldc);
}

namespace detail {
// Granularity of gemm's per-thread tiles with the Eigen backend: rows in multiples of 4 panels of
// Eigen's nr, columns in multiples of its mr (see gemm_eigen_serial).
template <class T>
constexpr std::ptrdiff_t eigen_tile_rows() { return 4 * Eigen::internal::gebp_traits<T, T>::nr; }
template <class T>
constexpr std::ptrdiff_t eigen_tile_cols() { return Eigen::internal::gebp_traits<T, T>::mr; }

// The packed kernel set in use: through its function pointers when dispatched, else the
// compile-time instantiation called directly.
inline void gemm_packed_call(const GemmKernelSet& ks, Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N,
                             std::ptrdiff_t K, float alpha, const float* A, std::ptrdiff_t lda, const float* B,
                             std::ptrdiff_t ldb, float beta, float* C, std::ptrdiff_t ldc, const float* bpre,
                             const GemmEpilogue* epi, std::ptrdiff_t row_off, std::ptrdiff_t col_off) {
#if defined(ENVIT_DISPATCH)
  ks.run(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bpre, epi, row_off, col_off);
#else
  (void)ks;
  gemm_pk::gemm_packed_run<xsimd::default_arch>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bpre, epi,
                                                row_off, col_off);
#endif
}

// Tile of C for thread i of t: a contiguous range of rows or of columns. Boundaries fall on
// multiples of the kernel's register tile (mu rows, nu columns) so only the last tile is ragged.
// Rows vs columns: the split whose slowest thread has the least estimated work, counting padded
// multiply-adds (columns rounded up to nu; rows to mu, except a ragged last row panel, which the
// packed kernel runs with a shorter register tile: rounded up to even) plus packing, weighted as
// ~16 multiply-adds per packed element (a row split repacks all of op(B) in every thread, a column
// split all of op(A)).
// Depends only on (M, N, K, t, mu, nu): fixed thread count => fixed tiles => bitwise-reproducible.
struct GemmTile { std::ptrdiff_t m0, m1, n0, n1; };
// b_packed: op(B) comes pre-packed (gemm_weight_t), so a row split repacks nothing; each thread
// still streams all of op(B) from cache, weighted as ~2 multiply-adds per element.
// Except that a pre-packed op(B) larger than a core's L2 (>= 2^19 floats, 2 MB: ViT-B/16's block
// weights) is split by columns whenever each thread gets at least two panels: under a row split
// both cores stream the whole weight through their L2 for every row block; by columns each streams
// its own half. Measured with 2 threads (bench/ab, envit_ab --mode infer, bitwise equal results):
// ViT-B/16 inference at batch 16 takes 0.94x the time by columns. Smaller weights keep the row
// split: tiny28's (<= 590 KB) products alone run 7-9% faster by columns but its inference pass
// 5.7% slower (its other ops are split by samples, so a row split keeps each core's activations in
// its own cache).
inline bool gemm_split_rows(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, int t,
                            std::ptrdiff_t mu, std::ptrdiff_t nu, bool b_packed = false) {
  if (b_packed && t > 1 && N >= 2 * t * nu && N * K >= (std::ptrdiff_t(1) << 19)) return false;
  auto up = [](std::ptrdiff_t a, std::ptrdiff_t b) { return (a + b - 1) / b * b; };
  auto pad_rows = [&](std::ptrdiff_t m) { return m / mu * mu + up(m % mu, 2); };
  auto cost = [&](bool rows) {
    std::ptrdiff_t n = rows ? M : N, u = rows ? mu : nu;
    std::ptrdiff_t part = std::min(n, (((n + u - 1) / u + t - 1) / t) * u);  // largest part
    double pm = double(pad_rows(rows ? part : M)), pn = double(up(rows ? N : part, nu));
    double real_m = double(rows ? part : M), real_n = double(rows ? N : part);
    return pm * pn * double(K) + (16.0 * real_m + (b_packed ? 2.0 : 16.0) * real_n) * double(K);
  };
  return cost(true) <= cost(false);
}
inline GemmTile gemm_tile(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, int t, int i,
                          std::ptrdiff_t mu, std::ptrdiff_t nu, bool b_packed = false) {
  bool by_rows = gemm_split_rows(M, N, K, t, mu, nu, b_packed);
  std::ptrdiff_t n = by_rows ? M : N, u = by_rows ? mu : nu;
  std::ptrdiff_t blocks = (n + u - 1) / u;
  auto [b, e] = partition(blocks, t, i);
  std::ptrdiff_t lo = std::min(n, b * u), hi = std::min(n, e * u);
  return by_rows ? GemmTile{lo, hi, 0, N} : GemmTile{0, M, lo, hi};
}
// Runs run(m0, m1, n0, n1) once per thread's tile of C (gemm_tile), in parallel; on the calling
// thread alone when the product is below the threading grain (a second thread pays off above ~1
// MFLOP each: an OpenMP fork/join costs a few microseconds) or when called inside a parallel region.
template <class Run>
void gemm_over_tiles(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, std::ptrdiff_t mu, std::ptrdiff_t nu,
                     bool b_packed, const Run& run) {
  const std::ptrdiff_t items = std::max(M, N) / 16 + 1;
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const int t = threads_for(items, flops / double(items), 1.0e6);
  if (t <= 1) {
    run(std::ptrdiff_t(0), M, std::ptrdiff_t(0), N);
    return;
  }
#pragma omp parallel num_threads(t)
  {
    auto tile = gemm_tile(M, N, K, omp_get_num_threads(), omp_get_thread_num(), mu, nu, b_packed);
    if (tile.m0 < tile.m1 && tile.n0 < tile.n1) run(tile.m0, tile.m1, tile.n0, tile.n1);
  }
}
}  // namespace detail

// epi: optional element-wise pass over C fused into the product (see GemmEpilogue).
template <class T>
void gemm(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, T alpha,
          const T* A, std::ptrdiff_t lda, const T* B, std::ptrdiff_t ldb, T beta, T* C,
          std::ptrdiff_t ldc, const GemmEpilogue* epi = nullptr) {
  ENVIT_CHECK(M >= 0 && N >= 0 && K >= 0, ShapeError, "gemm: negative size M=", M, " N=", N,
              " K=", K);
  ENVIT_CHECK(ldc >= N && lda >= (ta == Trans::N ? K : M) && ldb >= (tb == Trans::N ? N : K),
              ShapeError, "gemm: leading dimension too small (M=", M, " N=", N, " K=", K,
              " lda=", lda, " ldb=", ldb, " ldc=", ldc, ")");
  bool packed = false, bf16 = false;  // read backend and precision once per call: all tiles use them
  if constexpr (std::is_same_v<T, float>) {
    bf16 = matmul_precision() == Precision::bf16;
    packed = bf16 || gemm_backend() == GemmBackend::packed;
    kernels::select();  // float epilogues run the set's row kernels inside the tiles' parallel region
  }
  const GemmKernelSet* ks = packed ? &gemm_kernels() : nullptr;
  auto run = [&](std::ptrdiff_t m0, std::ptrdiff_t m1, std::ptrdiff_t n0, std::ptrdiff_t n1) {
    const T* a = ta == Trans::N ? A + m0 * lda : A + m0;
    const T* b = tb == Trans::N ? B + n0 : B + n0 * ldb;
    T* c = C + m0 * ldc + n0;
    if constexpr (std::is_same_v<T, float>) {
      if (bf16) {
        ks->run_bf16(ta, tb, m1 - m0, n1 - n0, K, alpha, a, lda, b, ldb, beta, c, ldc, nullptr, epi, m0, n0);
        return;
      }
      if (packed) {
        detail::gemm_packed_call(*ks, ta, tb, m1 - m0, n1 - n0, K, alpha, a, lda, b, ldb, beta, c, ldc, nullptr, epi,
                                 m0, n0);
        return;
      }
    }
    gemm_eigen_serial<T>(ta, tb, m1 - m0, n1 - n0, K, alpha, a, lda, b, ldb, beta, c, ldc);
    if (epi && m1 > m0 && n1 > n0) (*epi)(m0, m1, n0, n1);
  };
  const std::ptrdiff_t mu = bf16 ? ks->bf16_mr : packed ? ks->mr : detail::eigen_tile_rows<T>();
  const std::ptrdiff_t nu = bf16 ? ks->bf16_nr : packed ? ks->nr : detail::eigen_tile_cols<T>();
  detail::gemm_over_tiles(M, N, K, mu, nu, /*b_packed=*/false, run);
}

// Floats pack_weight_t writes for a weight of n rows (outputs) and k columns (inputs).
inline std::size_t packed_weight_size(std::ptrdiff_t n, std::ptrdiff_t k) {
  const std::ptrdiff_t nr = gemm_kernels().nr;
  return static_cast<std::size_t>((n + nr - 1) / nr * nr * k);
}
// op(B) = W^T for W (n, k) row-major (PyTorch's Linear layout), packed once into panels of the
// kernel set's nr columns over the whole k (zero-padded): what the packed GEMM would build on every
// call of C = A W^T. dst: packed_weight_size(n, k) floats, 64-byte aligned.
inline void pack_weight_t(float* dst, const float* W, std::ptrdiff_t n, std::ptrdiff_t k) {
  gemm_kernels().pack_weight_t(dst, W, n, k);
}
// Bytes pack_weight_t_bf16 writes for a weight of n rows (outputs) and k columns (inputs).
inline std::size_t packed_weight_bf16_bytes(std::ptrdiff_t n, std::ptrdiff_t k) {
  return gemm_kernels().packed_weight_bf16_bytes(n, k);
}
// The BF16 product's pre-pack of op(B) = W^T (W (n, k) row-major), in the kernel set's BF16 layout
// (values rounded to BF16). dst: packed_weight_bf16_bytes(n, k) bytes, 64-byte aligned.
inline void pack_weight_t_bf16(void* dst, const float* W, std::ptrdiff_t n, std::ptrdiff_t k) {
  gemm_kernels().pack_weight_t_bf16(dst, W, n, k);
}

// A weight W (n, k), PyTorch's Linear layout, packed once for products C = A W^T (the forward of a
// Linear) so that the packed float GEMM skips re-packing it on every call: for inference, where the
// weights stay fixed while many batches run. For double (or, under Precision::fp32, when the
// backend is Eigen at the time of the call) it simply falls back to the plain GEMM on `w`.
// Precision: pack() packs for one product, the precision passed (by default matmul_precision() at
// the time of the call) and records it: FP32 panels, or the BF16 product's own layout
// (pack_weight_t_bf16). gemm_weight_t under the other precision is a ValueError (pack again, or
// keep one PackedWeight per precision), never a silent product in the wrong precision.
// INT8 (float only): pack(W, n, k, Precision::int8) quantizes W per output channel (core/int8.hpp)
// and calls pack_int8, which takes INT8 values and their scales as they are (a quantized
// checkpoint's), plus the activation scale of the product's input: 0 for per-row dynamic scales,
// else one static scale (finite, > 0). w_scale and act_scale are kept here; the panels are the
// kernel set's INT8 layout (its compensation sums included).
// The packed copy is a snapshot: after W's values change, call pack() again (the results would
// otherwise use the old values).
template <class T>
struct PackedWeight {
  const T* w = nullptr;       // the weight it was packed from (n, k)
  std::ptrdiff_t n = 0, k = 0;
  Precision precision = Precision::fp32;  // the product the panels are for (float only)
  // float only: packed_weight_size(n, k) floats (fp32) or packed_weight_bf16_bytes(n, k) bytes (bf16)
  std::unique_ptr<float[], detail::AlignedFree> panels;
  std::size_t capacity = 0;   // floats allocated in panels (grown only)
  std::vector<float> w_scale; // int8: (n) per output channel
  float act_scale = 0.0f;     // int8: the input's static scale, 0 = per-row dynamic
  // Calibration (weights/quantize.hpp): when set, every gemm_weight_t with this weight raises
  // *observe_absmax to the largest |A| of its input rows, in any precision (from inside a parallel
  // region under an OpenMP critical section: calibration only, never on a timed path).
  float* observe_absmax = nullptr;

  void pack(const T* W, std::ptrdiff_t rows, std::ptrdiff_t cols, Precision p = matmul_precision(),
            float input_scale = 0.0f) {
    ENVIT_CHECK(rows > 0 && cols > 0 && W != nullptr, ShapeError, "PackedWeight: invalid weight (", rows, ", ",
                cols, ")");
    if constexpr (std::is_same_v<T, float>) {
      if (p == Precision::int8) {
        std::vector<std::int8_t> q(static_cast<std::size_t>(rows * cols));
        std::vector<float> sc(static_cast<std::size_t>(rows));
        quantize_weight_int8(q.data(), sc.data(), W, rows, cols);
        pack_int8(W, q.data(), sc.data(), rows, cols, input_scale);
        return;
      }
      const std::size_t floats = p == Precision::bf16
                                     ? (packed_weight_bf16_bytes(rows, cols) + sizeof(float) - 1) / sizeof(float)
                                     : packed_weight_size(rows, cols);
      if (!panels || floats > capacity) panels = aligned_buffer<float>(floats), capacity = floats;
      if (p == Precision::bf16) pack_weight_t_bf16(panels.get(), W, rows, cols);
      else pack_weight_t(panels.get(), W, rows, cols);
    }
    w = W, n = rows, k = cols, precision = p;
  }
  // INT8 values q (rows, cols) in [-127, 127] with their per-row scales (rows; finite, > 0) and the
  // input's activation scale (0: per-row dynamic); W: the float weight the product stands for (what
  // gemm_weight_t is called with).
  void pack_int8(const T* W, const std::int8_t* q, const float* scale, std::ptrdiff_t rows, std::ptrdiff_t cols,
                 float input_scale) {
    static_assert(std::is_same_v<T, float>, "PackedWeight::pack_int8: float weights only");
    ENVIT_CHECK(rows > 0 && cols > 0 && W != nullptr && q != nullptr && scale != nullptr, ShapeError,
                "PackedWeight: invalid INT8 weight (", rows, ", ", cols, ")");
    ENVIT_CHECK(std::isfinite(input_scale) && input_scale >= 0.0f, ValueError,
                "PackedWeight: activation scale ", input_scale, " (expected finite and >= 0; 0 = dynamic)");
    for (std::ptrdiff_t j = 0; j < rows; ++j)
      ENVIT_CHECK(std::isfinite(scale[j]) && scale[j] > 0.0f, ValueError, "PackedWeight: weight scale ", j, " is ",
                  scale[j], " (expected finite and > 0)");
    const std::size_t bytes = gemm_kernels().packed_weight_int8_bytes(rows, cols);
    const std::size_t floats = (bytes + sizeof(float) - 1) / sizeof(float);
    if (!panels || floats > capacity) panels = aligned_buffer<float>(floats), capacity = floats;
    gemm_kernels().pack_weight_t_int8(panels.get(), q, rows, cols);
    w_scale.assign(scale, scale + rows);
    act_scale = input_scale;
    w = W, n = rows, k = cols, precision = Precision::int8;
  }
};

namespace detail {
// C = A W^T through the INT8 product (wp packed for INT8): A's rows quantized into a thread-local
// grow-only buffer (rows padded to a multiple of 4 bytes), then run_int8 per thread tile.
inline void gemm_weight_t_int8(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, const float* A,
                               std::ptrdiff_t lda, const PackedWeight<float>& wp, float* C, std::ptrdiff_t ldc,
                               const GemmEpilogue* epi) {
  const GemmKernelSet& ks = gemm_kernels();
  kernels::select();
  const std::ptrdiff_t ldq = (K + 3) / 4 * 4;
  thread_local std::vector<std::int8_t> qbuf;
  thread_local std::vector<float> sbuf;
  if (qbuf.size() < static_cast<std::size_t>(M * ldq)) qbuf.resize(static_cast<std::size_t>(M * ldq));
  if (sbuf.size() < static_cast<std::size_t>(M)) sbuf.resize(static_cast<std::size_t>(M));
  std::int8_t* q = qbuf.data();
  float* sa = sbuf.data();
  quantize_rows_int8(q, ldq, sa, A, lda, M, K, wp.act_scale);
  const auto* panels = reinterpret_cast<const unsigned char*>(wp.panels.get());
  const float* sw = wp.w_scale.data();
  auto run = [&](std::ptrdiff_t m0, std::ptrdiff_t m1, std::ptrdiff_t n0, std::ptrdiff_t n1) {
    ks.run_int8(m1 - m0, n1 - n0, K, q + m0 * ldq, ldq, sa + m0, panels + ks.packed_weight_int8_bytes(n0, K), sw + n0,
                C + m0 * ldc + n0, nullptr, ldc, epi, m0, n0);
  };
  gemm_over_tiles(M, N, K, ks.int8_mr, ks.int8_nr, /*b_packed=*/true, run);
}
}  // namespace detail

// C(M, N) = alpha * A(M, K) W^T + beta * C with W (N, K); W given packed (wp, which must have been
// packed from W with that shape, for the current precision) or not (wp == nullptr: the plain gemm).
// Threads split C as gemm does; results are bitwise equal to gemm(Trans::N, Trans::T, ...) on W, in
// either precision.
template <class T>
void gemm_weight_t(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, T alpha, const T* A, std::ptrdiff_t lda,
                   const T* W, const PackedWeight<T>* wp, T beta, T* C, std::ptrdiff_t ldc,
                   const GemmEpilogue* epi = nullptr) {
  bool use_packed = false, bf16 = false;
  if constexpr (std::is_same_v<T, float>) {
    if (wp != nullptr && wp->observe_absmax != nullptr) {
      float amax = 0.0f;
      for (std::ptrdiff_t i = 0; i < M; ++i)
        for (std::ptrdiff_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(A[i * lda + k]));
#pragma omp critical(envit_observe_absmax)
      *wp->observe_absmax = std::max(*wp->observe_absmax, amax);
    }
    const Precision now = matmul_precision();
    if (wp != nullptr && wp->panels && wp->precision == Precision::int8) {
      ENVIT_CHECK(wp->w == W && wp->n == N && wp->k == K, ValueError, "gemm_weight_t: packed INT8 weight (", wp->n,
                  ", ", wp->k, ") does not match the weight passed (", N, ", ", K, ")");
      ENVIT_CHECK(now == Precision::int8, ValueError, "gemm_weight_t: the weight (", N, ", ", K,
                  ") was packed for int8 products but the matrix-product precision is ", precision_name(now),
                  " (pack it again under this precision)");
      ENVIT_CHECK(M >= 0 && lda >= K && ldc >= N && alpha == 1.0f && beta == 0.0f, ValueError,
                  "gemm_weight_t: the INT8 product computes C = A W^T only (M=", M, " lda=", lda, " ldc=", ldc,
                  " alpha=", alpha, " beta=", beta, ")");
      detail::gemm_weight_t_int8(M, N, K, A, lda, *wp, C, ldc, epi);
      return;
    }
    bf16 = now == Precision::bf16;
    use_packed = wp != nullptr && wp->panels && (bf16 || gemm_backend() == GemmBackend::packed);
  }
  if (!use_packed) {
    gemm<T>(Trans::N, Trans::T, M, N, K, alpha, A, lda, W, K, beta, C, ldc, epi);
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    ENVIT_CHECK(wp->w == W && wp->n == N && wp->k == K, ValueError, "gemm_weight_t: packed weight (", wp->n, ", ",
                wp->k, ") does not match the weight passed (", N, ", ", K, ")",
                wp->w == W ? "" : " or was packed from another array");
    const Precision now = bf16 ? Precision::bf16 : Precision::fp32;  // int8: FP32 for a non-INT8 weight
    ENVIT_CHECK(wp->precision == now, ValueError, "gemm_weight_t: the weight (", N, ", ", K, ") was packed for ",
                precision_name(wp->precision), " products but the matrix-product precision is ", precision_name(now),
                " (pack it again under this precision)");
    ENVIT_CHECK(M >= 0 && lda >= K && ldc >= N, ShapeError, "gemm_weight_t: bad sizes M=", M, " N=", N, " K=", K,
                " lda=", lda, " ldc=", ldc);
    const float* panels = wp->panels.get();
    const GemmKernelSet& ks = gemm_kernels();
    auto run = [&](std::ptrdiff_t m0, std::ptrdiff_t m1, std::ptrdiff_t n0, std::ptrdiff_t n1) {
      if (bf16) {
        const void* bp = reinterpret_cast<const unsigned char*>(panels) + ks.packed_weight_bf16_bytes(n0, K);
        ks.run_bf16(Trans::N, Trans::T, m1 - m0, n1 - n0, K, alpha, A + m0 * lda, lda, nullptr, K, beta,
                    C + m0 * ldc + n0, ldc, bp, epi, m0, n0);
        return;
      }
      detail::gemm_packed_call(ks, Trans::N, Trans::T, m1 - m0, n1 - n0, K, alpha, A + m0 * lda, lda, nullptr, K,
                               beta, C + m0 * ldc + n0, ldc, panels + (n0 / ks.nr) * K * ks.nr, epi, m0, n0);
    };
    // Rows or columns as detail::gemm_split_rows decides for a pre-packed op(B): rows unless they
    // leave much more padding (small M) or the weight exceeds a core's L2 (then columns).
    detail::gemm_over_tiles(M, N, K, bf16 ? ks.bf16_mr : ks.mr, bf16 ? ks.bf16_nr : ks.nr, /*b_packed=*/true, run);
  }
}

}  // namespace envit
