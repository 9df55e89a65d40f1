// envit/ops/layernorm.hpp — LayerNorm over the last dim: y = (x - mean) * rstd * gamma + beta.
// Not fused with neighbours (block.hpp folds residual adds into the backward through
// detail::layernorm_backward_impl). Letters: R = rows, D = dim.
//
// Statistics must survive large offsets: a float running sum of x ~ 1000 + noise loses ~1e-3 of
// the mean (measured 4.5e-4 at D = 192), which is 1e-2 of xhat when the noise is 0.1.
//  - double: two passes (mean, then centred squares) in double, scalar.
//  - float: xsimd lanes, three passes over the row (in L1):
//      1. m0 = sum(x) / D in float lanes (may be off by ~1e-3 for large offsets),
//      2. d = x - m0 (exact by Sterbenz when x and m0 are within a factor 2), sums of d and d^2
//         in float lanes (chains of <= 8 adds per lane, lanes added into double per block of 16
//         batches); mean = m0 + sum(d)/D and var = sum(d^2)/D - (sum(d)/D)^2 in double (the
//         corrected two-pass algorithm: pass 1's error is removed, not amplified),
//      3. xhat from the double mean and rstd each split into two floats (one rounding that
//         matters, see layernorm_row_forward), y = fma(xhat, gamma, beta).
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
#include "envit/kernels/vec.hpp"

namespace envit {

struct LayerNormShape { std::ptrdiff_t rows, dim; };
template <class T> struct LayerNormParams { const T* gamma; const T* beta; };  // (D) each
template <class T> struct LayerNormGrads { T* dgamma; T* dbeta; };             // (D) each, accumulated
template <class T> struct LayerNormCache { T* mean; T* rstd; };                // (R) each

namespace detail {

// One float row: statistics as described at the top of the file, y overwritten.
inline void layernorm_row_forward(float* y, float* mean_out, float* rstd_out, const float* x,
                                  const float* gamma, const float* beta, std::ptrdiff_t D, float eps) {
  using vec::fbatch;
  constexpr std::ptrdiff_t W = vec::W;
  const std::ptrdiff_t Dv = D / W * W, rem = D - Dv;
  // 1. rough mean
  fbatch s0(0.f), s1(0.f);
  std::ptrdiff_t i = 0;
  for (; i + 2 * W <= Dv; i += 2 * W) {
    s0 += vec::load(x + i);
    s1 += vec::load(x + i + W);
  }
  if (i < Dv) s0 += vec::load(x + i);
  if (rem) s1 += vec::load_part(x + Dv, rem);
  const float m0 = vec::hsum(s0 + s1) / float(D);
  // 2. centred sums: float lanes over blocks of at most 16 batches (two accumulator pairs, so a
  //    lane's float chain is <= 8 adds long), each block's lanes added into double; the tail is
  //    filled with m0 so that its d is 0
  const fbatch mb(m0);
  double sum_d = 0.0, sum_dd = 0.0;
  for (i = 0; i < Dv;) {
    const std::ptrdiff_t end = std::min(Dv, i + 16 * W);
    fbatch sd0(0.f), sd1(0.f), sdd0(0.f), sdd1(0.f);
    for (; i + 2 * W <= end; i += 2 * W) {
      const fbatch d0 = vec::load(x + i) - mb, d1 = vec::load(x + i + W) - mb;
      sd0 += d0;
      sd1 += d1;
      sdd0 = xsimd::fma(d0, d0, sdd0);
      sdd1 = xsimd::fma(d1, d1, sdd1);
    }
    if (i < end) {
      const fbatch d = vec::load(x + i) - mb;
      sd0 += d;
      sdd0 = xsimd::fma(d, d, sdd0);
      i += W;
    }
    sum_d += vec::hsum_double(sd0 + sd1);
    sum_dd += vec::hsum_double(sdd0 + sdd1);
  }
  if (rem) {
    const fbatch d = vec::load_part(x + Dv, rem, m0) - mb;
    sum_d += vec::hsum_double(d);
    sum_dd += vec::hsum_double(d * d);
  }
  const double md = sum_d / double(D);
  const double mean = double(m0) + md;
  double var = sum_dd / double(D) - md * md;
  var = var > 0.0 ? var : 0.0;
  const double rstd = 1.0 / std::sqrt(var + double(eps));
  *mean_out = float(mean);
  *rstd_out = float(rstd);
  // 3. output. With mean = hi + lo and rstd = rhi + rlo (float pairs) and d = x - hi (exact for
  //    x near the mean):  xhat = d * rhi + (d * rlo - lo * rstd)  — one rounding in the fma that
  //    matters, so xhat is within ~0.5 ulp as if computed in double; y = fma(xhat, gamma, beta).
  const float hi = float(mean), rhi = float(rstd);
  const fbatch hb(hi), rh(rhi), rl(float(rstd - double(rhi))), cb(float(-(mean - double(hi)) * rstd));
  auto xhat = [&](const fbatch& xv) {
    const fbatch d = xv - hb;
    return xsimd::fma(d, rh, xsimd::fma(d, rl, cb));
  };
  for (i = 0; i < Dv; i += W)
    vec::store(y + i, xsimd::fma(xhat(vec::load(x + i)), vec::load(gamma + i), vec::load(beta + i)));
  if (rem)
    vec::store_part(y + Dv,
                    xsimd::fma(xhat(vec::load_part(x + Dv, rem)), vec::load_part(gamma + Dv, rem),
                               vec::load_part(beta + Dv, rem)),
                    rem);
}

// One float row of the backward: dx = base (+ extra) + rstd * (g - mean(g) - xhat * mean(g xhat)),
// g = dy * gamma; pg += dy * xhat and pb += dy when non-null. dx may be nullptr.
inline void layernorm_row_backward(float* dx, const float* base, const float* extra, float* pg, float* pb,
                                   const float* dy, const float* x, float mean, float rstd,
                                   const float* gamma, std::ptrdiff_t D) {
  using vec::fbatch;
  constexpr std::ptrdiff_t W = vec::W;
  const std::ptrdiff_t Dv = D / W * W, rem = D - Dv;
  const fbatch mb(mean), rb(rstd);
  fbatch sg(0.f), sgx(0.f);
  auto step = [&](std::ptrdiff_t i, const fbatch& xv, const fbatch& dyv, const fbatch& gam, std::ptrdiff_t n) {
    const fbatch xh = (xv - mb) * rb;
    const fbatch gi = dyv * gam;
    sg += gi;
    sgx = xsimd::fma(gi, xh, sgx);
    if (n == W) {
      if (pg) vec::store(pg + i, xsimd::fma(dyv, xh, vec::load(pg + i)));
      if (pb) vec::store(pb + i, vec::load(pb + i) + dyv);
    } else {
      if (pg) vec::store_part(pg + i, xsimd::fma(dyv, xh, vec::load_part(pg + i, n)), n);
      if (pb) vec::store_part(pb + i, vec::load_part(pb + i, n) + dyv, n);
    }
  };
  for (std::ptrdiff_t i = 0; i < Dv; i += W) step(i, vec::load(x + i), vec::load(dy + i), vec::load(gamma + i), W);
  // tail: x filled with mean (xhat = 0), dy with 0 (g = 0)
  if (rem) step(Dv, vec::load_part(x + Dv, rem, mean), vec::load_part(dy + Dv, rem), vec::load_part(gamma + Dv, rem), rem);
  if (!dx) return;
  const fbatch mg(vec::hsum(sg) / float(D)), mgx(vec::hsum(sgx) / float(D));
  auto term = [&](const fbatch& xv, const fbatch& dyv, const fbatch& gam) {
    const fbatch xh = (xv - mb) * rb;
    return rb * (dyv * gam - mg - xh * mgx);
  };
  for (std::ptrdiff_t i = 0; i < Dv; i += W) {
    fbatch b = vec::load(base + i);
    if (extra) b += vec::load(extra + i);
    vec::store(dx + i, b + term(vec::load(x + i), vec::load(dy + i), vec::load(gamma + i)));
  }
  if (rem) {
    fbatch b = vec::load_part(base + Dv, rem);
    if (extra) b += vec::load_part(extra + Dv, rem);
    vec::store_part(dx + Dv,
                    b + term(vec::load_part(x + Dv, rem), vec::load_part(dy + Dv, rem), vec::load_part(gamma + Dv, rem)),
                    rem);
  }
}

}  // namespace detail

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
    parallel_for(s.rows, 4.0 * double(D), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
      for (std::ptrdiff_t r = r0; r < r1; ++r)
        detail::layernorm_row_forward(y + r * D, c.mean + r, c.rstd + r, x + r * D, p.gamma, p.beta, D, eps);
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
      for (std::ptrdiff_t r = r0; r < r1; ++r) {
        const std::ptrdiff_t o = r * D;
        layernorm_row_backward(dx ? dx + o : nullptr, dx ? dx_base + o : nullptr,
                               dx && dx_extra ? dx_extra + o : nullptr, pg, pb, dy + o, x + o, c.mean[r],
                               c.rstd[r], p.gamma, D);
      }
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
