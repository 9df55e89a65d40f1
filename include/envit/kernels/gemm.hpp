// envit/kernels/gemm.hpp — the one GEMM entry point every op uses:
//   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C      (all row-major, leading dims given)
// Threads: envit splits C into per-thread tiles itself (rows of C, or columns when N > M) and runs
// a single-threaded product per tile, so each element of C is computed by exactly one thread in a
// fixed order: bitwise-deterministic for a fixed thread count, no reductions across threads.
// Called from inside a parallel region it stays serial (never nests).
// Backends: Eigen (reference, any scalar) and, for float, envit's packed xsimd micro-kernel
// (kernels/gemm_packed.hpp) when ENVIT_GEMM_PACKED is available; selectable at runtime.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cstddef>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"

namespace envit {

enum class Trans { N, T };

enum class GemmBackend { eigen, packed };

namespace detail {
inline std::atomic<GemmBackend>& gemm_backend_ref() {
  static std::atomic<GemmBackend> b{GemmBackend::eigen};
  return b;
}
}  // namespace detail

inline void set_gemm_backend(GemmBackend b) { detail::gemm_backend_ref().store(b); }
inline GemmBackend gemm_backend() { return detail::gemm_backend_ref().load(); }

// Single-threaded Eigen product on one tile. A is (M,K) if ta==N else stored (K,M); B likewise.
template <class T>
void gemm_eigen_serial(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K,
                       T alpha, const T* A, std::ptrdiff_t lda, const T* B, std::ptrdiff_t ldb,
                       T beta, T* C, std::ptrdiff_t ldc) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using CMap = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
  using OMap = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
  if (M <= 0 || N <= 0) return;
  OMap c(C, M, N, Eigen::OuterStride<>(ldc));
  if (beta == T(0)) c.setZero();
  else if (beta != T(1)) c *= beta;
  if (K <= 0 || alpha == T(0)) return;
  CMap a(A, ta == Trans::N ? M : K, ta == Trans::N ? K : M, Eigen::OuterStride<>(lda));
  CMap b(B, tb == Trans::N ? K : N, tb == Trans::N ? N : K, Eigen::OuterStride<>(ldb));
  if (ta == Trans::N && tb == Trans::N) c.noalias() += alpha * a * b;
  else if (ta == Trans::N) c.noalias() += alpha * a * b.transpose();
  else if (tb == Trans::N) c.noalias() += alpha * a.transpose() * b;
  else c.noalias() += alpha * a.transpose() * b.transpose();
}

namespace detail {
// Tile of C for thread i of t: rows or columns, boundaries on multiples of 16 where possible.
struct GemmTile { std::ptrdiff_t m0, m1, n0, n1; };
inline GemmTile gemm_tile(std::ptrdiff_t M, std::ptrdiff_t N, int t, int i) {
  bool by_rows = M >= N;
  std::ptrdiff_t n = by_rows ? M : N;
  std::ptrdiff_t blocks = (n + 15) / 16;
  auto [b, e] = partition(blocks, t, i);
  std::ptrdiff_t lo = std::min(n, b * 16), hi = std::min(n, e * 16);
  return by_rows ? GemmTile{lo, hi, 0, N} : GemmTile{0, M, lo, hi};
}
}  // namespace detail

// Forward declaration; defined in gemm_packed.hpp (float only) when included.
template <class T>
void gemm_packed_serial(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K,
                        T alpha, const T* A, std::ptrdiff_t lda, const T* B, std::ptrdiff_t ldb,
                        T beta, T* C, std::ptrdiff_t ldc);

template <class T>
void gemm(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, T alpha,
          const T* A, std::ptrdiff_t lda, const T* B, std::ptrdiff_t ldb, T beta, T* C,
          std::ptrdiff_t ldc) {
  ENVIT_CHECK(M >= 0 && N >= 0 && K >= 0, ShapeError, "gemm: negative size M=", M, " N=", N,
              " K=", K);
  ENVIT_CHECK(ldc >= N && lda >= (ta == Trans::N ? K : M) && ldb >= (tb == Trans::N ? N : K),
              ShapeError, "gemm: leading dimension too small (M=", M, " N=", N, " K=", K,
              " lda=", lda, " ldb=", ldb, " ldc=", ldc, ")");
  static const bool eigen_serial = (Eigen::setNbThreads(1), true);  // envit threads GEMMs itself
  (void)eigen_serial;
  auto run = [&](std::ptrdiff_t m0, std::ptrdiff_t m1, std::ptrdiff_t n0, std::ptrdiff_t n1) {
    const T* a = ta == Trans::N ? A + m0 * lda : A + m0;
    const T* b = tb == Trans::N ? B + n0 : B + n0 * ldb;
    T* c = C + m0 * ldc + n0;
    if constexpr (std::is_same_v<T, float>) {
#ifdef ENVIT_HAVE_GEMM_PACKED
      if (gemm_backend() == GemmBackend::packed) {
        gemm_packed_serial<T>(ta, tb, m1 - m0, n1 - n0, K, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
      }
#endif
    }
    gemm_eigen_serial<T>(ta, tb, m1 - m0, n1 - n0, K, alpha, a, lda, b, ldb, beta, c, ldc);
  };
  double flops = 2.0 * double(M) * double(N) * double(K);
  int t = threads_for(std::max(M, N) / 16 + 1, flops / double(std::max(M, N) / 16 + 1), 2.0e5);
  if (t <= 1) { run(0, M, 0, N); return; }
#pragma omp parallel num_threads(t)
  {
    auto tile = detail::gemm_tile(M, N, omp_get_num_threads(), omp_get_thread_num());
    if (tile.m0 < tile.m1 && tile.n0 < tile.n1) run(tile.m0, tile.m1, tile.n0, tile.n1);
  }
}

}  // namespace envit
