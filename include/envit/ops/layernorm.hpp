// envit/ops/layernorm.hpp — LayerNorm over the last dim: y = (x - mean) * rstd * gamma + beta.
// Statistics: two passes (mean, then centred squares) accumulated in double even for T = float:
// a float running sum of x ~ 1000 + noise loses ~1e-3 of the mean (measured 4.5e-4 at D = 192),
// which is 1e-2 of xhat when the noise is 0.1. The cache keeps mean and rstd in T.
// Not fused with neighbours. Letters: R = rows, D = dim.
#pragma once
#include <cmath>
#include <cstddef>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"

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
  using Acc = decltype(T() + double());  // double for float and double
  const std::ptrdiff_t D = s.dim;
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
      // xhat from the wide mean: the forward output is accurate to T's rounding even for large
      // offsets; the backward recomputes xhat from the cached T mean (differs by <= ulp(mean)/2 * rstd).
      for (std::ptrdiff_t i = 0; i < D; ++i)
        yr[i] = T((Acc(xr[i]) - mean) * rstd) * p.gamma[i] + p.beta[i];
    }
  });
}

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
        const T mg = sg / T(D), mgx = sgx / T(D);
        for (std::ptrdiff_t i = 0; i < D; ++i) {
          T xh = (xr[i] - mean) * rstd;
          dxr[i] += rstd * (dyr[i] * p.gamma[i] - mg - xh * mgx);
        }
      }
    }
  };
  const bool want_params = g.dgamma || g.dbeta;
  if (want_params)
    for (std::ptrdiff_t i = 0; i < 2 * D * nt; ++i) scratch[i] = T(0);
  if (nt <= 1) {
    body(0, s.rows, want_params ? scratch : nullptr, want_params ? scratch + D : nullptr);
  } else {
#pragma omp parallel num_threads(nt)
    {
      int t = omp_get_thread_num();
      auto [r0, r1] = partition(s.rows, omp_get_num_threads(), t);
      T* base = want_params ? scratch + 2 * D * t : nullptr;
      body(r0, r1, base, base ? base + D : nullptr);
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

}  // namespace envit
