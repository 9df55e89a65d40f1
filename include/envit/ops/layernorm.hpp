// envit/ops/layernorm.hpp — LayerNorm over the last dim: y = (x - mean) * rstd * gamma + beta.
// Not fused with neighbours (block.hpp folds residual adds into the backward through
// detail::layernorm_backward_impl). Letters: R = rows, D = dim.
//
// Statistics must survive large offsets: a float running sum of x ~ 1000 + noise loses ~1e-3 of
// the mean (measured 4.5e-4 at D = 192), which is 1e-2 of xhat when the noise is 0.1.
//  - double: two passes (mean, then centred squares) in double, scalar.
//  - float: xsimd lanes (kernels/vec_kernels.hpp, the kernel set's: kernels/dispatch.hpp), three
//    passes over the row (in L1):
//      1. m0 = sum(x) / D in float lanes (may be off by ~1e-3 for large offsets),
//      2. d = x - m0 (exact by Sterbenz when x and m0 are within a factor 2), sums of d and d^2
//         in float lanes (chains of <= 8 adds per lane, lanes added into double per block of 16
//         batches); mean = m0 + sum(d)/D and var = sum(d^2)/D - (sum(d)/D)^2 in double (the
//         corrected two-pass algorithm: pass 1's error is removed, not amplified),
//      3. xhat from the double mean and rstd each split into two floats (one rounding that
//         matters, see vec::layernorm_row_forward), y = fma(xhat, gamma, beta).
//    Measured against double (x86-64-v4, D in {16, 96, 192, 768}, x ~ 1000 +- 0.1 and +- 1,
//    and x ~ +-1): |mean error| * rstd <= 4.5e-8 and rstd relative error <= 6e-8 (as the
//    double-accumulating scalar code), y within 3.5e-7 abs (scalar code: 2.6e-7); without -march
//    (SSE2, no FMA) y within 5.2e-7.
// The cache keeps mean and rstd in T; backward recomputes xhat from the cached T mean (differs by
// <= ulp(mean)/2 * rstd from the forward's).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/kernels/dispatch.hpp"

namespace envit {

struct LayerNormShape { std::ptrdiff_t rows, dim; };
template <class T> struct LayerNormParams { const T* gamma; const T* beta; };  // (D) each
template <class T> struct LayerNormGrads { T* dgamma; T* dbeta; };             // (D) each, accumulated
template <class T> struct LayerNormCache { T* mean; T* rstd; };                // (R) each

template <class T>
void layernorm_forward(T* y,                 // (R, D)  overwritten
                       LayerNormCache<T> c,  // written here, read by backward
                       const T* x,           // (R, D)
                       LayerNormParams<T> p, LayerNormShape s, T eps) {
  ENVIT_CHECK(s.rows >= 0 && s.dim > 0, ShapeError, "layernorm: invalid shape rows=", s.rows,
              " dim=", s.dim);
  ENVIT_CHECK(eps >= T(0), ValueError, "layernorm: eps must be >= 0, got ", eps);
  const std::ptrdiff_t D = s.dim;
  if constexpr (std::is_same_v<T, float>) {
    kernels::select();
    parallel_for(s.rows, 4.0 * double(D), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
      kernels::layernorm_forward(y + r0 * D, c.mean + r0, c.rstd + r0, x + r0 * D, p.gamma, p.beta, r1 - r0, D, eps);
    });
  } else {
    using Acc = decltype(T() + double());  // double for float and double
    parallel_for(s.rows, 4.0 * double(D), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
      for (std::ptrdiff_t r = r0; r < r1; ++r) {
        const T* xr = x + r * D;
        T* yr = y + r * D;
        Acc sum = 0;
        for (std::ptrdiff_t i = 0; i < D; ++i) sum += Acc(xr[i]);
        const Acc mean = sum / Acc(D);
        Acc var = 0;
        for (std::ptrdiff_t i = 0; i < D; ++i) { Acc d = Acc(xr[i]) - mean; var += d * d; }
        var /= Acc(D);
        const Acc rstd = Acc(1) / std::sqrt(var + Acc(eps));
        c.mean[r] = T(mean);
        c.rstd[r] = T(rstd);
        for (std::ptrdiff_t i = 0; i < D; ++i)
          yr[i] = T((Acc(xr[i]) - mean) * rstd) * p.gamma[i] + p.beta[i];
      }
    });
  }
}

namespace detail {
// layernorm_backward with the input gradient written as dx = dx_base (+ dx_extra) + LN term
// (dx_base == dx accumulates; block.hpp uses dx_base = dy to skip a copy and dx_extra to fold a
// residual add in). dx_base must be non-null when dx is; dx_extra may be nullptr. Each of dx,
// dx_base, dx_extra is (R, D); dx may alias dx_base or dx_extra.
template <class T>
void layernorm_backward_impl(T* dx, const T* dx_base, const T* dx_extra, LayerNormGrads<T> g,
                             const T* dy, const T* x, LayerNormCache<T> c, LayerNormParams<T> p,
                             LayerNormShape s, T* scratch) {
  ENVIT_CHECK(s.rows >= 0 && s.dim > 0, ShapeError, "layernorm_backward: invalid shape rows=", s.rows,
              " dim=", s.dim);
  const std::ptrdiff_t D = s.dim;
  int nt = threads_for(s.rows, 8.0 * double(D), 32768.0);
  std::vector<T> own;
  if (!scratch && (g.dgamma || g.dbeta)) {
    own.assign(static_cast<std::size_t>(2 * D * nt), T(0));
    scratch = own.data();
  }
  auto body = [&](std::ptrdiff_t r0, std::ptrdiff_t r1, T* pg, T* pb) {
    if constexpr (std::is_same_v<T, float>) {
      const std::ptrdiff_t o = r0 * D;
      kernels::layernorm_backward(dx ? dx + o : nullptr, dx ? dx_base + o : nullptr,
                                  dx && dx_extra ? dx_extra + o : nullptr, pg, pb, dy + o, x + o, c.mean + r0,
                                  c.rstd + r0, p.gamma, r1 - r0, D);
    } else {
      for (std::ptrdiff_t r = r0; r < r1; ++r) {
        const T* xr = x + r * D;
        const T* dyr = dy + r * D;
        const T mean = c.mean[r], rstd = c.rstd[r];
        T sg = 0, sgx = 0;
        for (std::ptrdiff_t i = 0; i < D; ++i) {
          T xh = (xr[i] - mean) * rstd;
          T gi = dyr[i] * p.gamma[i];
          sg += gi;
          sgx += gi * xh;
          if (pg) pg[i] += dyr[i] * xh;
          if (pb) pb[i] += dyr[i];
        }
        if (dx) {
          T* dxr = dx + r * D;
          const T* br = dx_base + r * D;
          const T* er = dx_extra ? dx_extra + r * D : nullptr;
          const T mg = sg / T(D), mgx = sgx / T(D);
          for (std::ptrdiff_t i = 0; i < D; ++i) {
            T xh = (xr[i] - mean) * rstd;
            T b = er ? br[i] + er[i] : br[i];
            dxr[i] = b + rstd * (dyr[i] * p.gamma[i] - mg - xh * mgx);
          }
        }
      }
    }
  };
  const bool want_params = g.dgamma || g.dbeta;
  if constexpr (std::is_same_v<T, float>) kernels::select();
  if (want_params)
    for (std::ptrdiff_t i = 0; i < 2 * D * nt; ++i) scratch[i] = T(0);
  auto pg_of = [&](T* base) { return base && g.dgamma ? base : nullptr; };
  auto pb_of = [&](T* base) { return base && g.dbeta ? base + D : nullptr; };
  if (nt <= 1) {
    T* base = want_params ? scratch : nullptr;
    body(0, s.rows, pg_of(base), pb_of(base));
  } else {
#pragma omp parallel num_threads(nt)
    {
      int t = omp_get_thread_num();
      auto [r0, r1] = partition(s.rows, omp_get_num_threads(), t);
      T* base = want_params ? scratch + 2 * D * t : nullptr;
      body(r0, r1, pg_of(base), pb_of(base));
    }
  }
  if (want_params) {
    for (int t = 0; t < nt; ++t) {  // fixed order
      const T* pg = scratch + 2 * D * t;
      for (std::ptrdiff_t i = 0; i < D; ++i) {
        if (g.dgamma) g.dgamma[i] += pg[i];
        if (g.dbeta) g.dbeta[i] += pg[D + i];
      }
    }
  }
}
}  // namespace detail

// With xhat = (x - mean) * rstd and y = xhat * gamma + beta:
//   dgamma += sum_r dy * xhat,  dbeta += sum_r dy
//   g = dy * gamma;  dx = rstd * (g - mean(g) - xhat * mean(g * xhat))   accumulated into dx (+=)
// Parameter sums: per-thread partials over row chunks, added in thread order (deterministic
// for a fixed thread count). `scratch` must hold 2 * D * num_threads() elements, or be nullptr
// to let the function use a small stack-free vector (allocates; avoid inside training steps).
template <class T>
void layernorm_backward(T* dx,                // (R, D)  accumulated (+=), or nullptr
                        LayerNormGrads<T> g,  // (D) each, accumulated (+=); may be nullptr
                        const T* dy,          // (R, D)
                        const T* x,           // (R, D)
                        LayerNormCache<T> c, LayerNormParams<T> p, LayerNormShape s,
                        T* scratch = nullptr) {  // (2 * D * threads) or nullptr
  detail::layernorm_backward_impl<T>(dx, dx, nullptr, g, dy, x, c, p, s, scratch);
}

}  // namespace envit
