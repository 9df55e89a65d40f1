// envit/kernels/vec_kernels.hpp — the float element-wise and row kernels of the ops, written once
// over kernels/vec.hpp's batch type: GELU forward/backward, the MLP's bias+GELU and the
// bias/residual GEMM epilogues, LayerNorm rows forward/backward, softmax and log-softmax rows
// forward/backward. Everything sits in kernels/isa.hpp's namespace and uses the including
// translation unit's instruction set; vec::vec_kernel_set() bundles the addresses into the table
// of one kernel set (gemm_types.hpp's VecKernelSet). The ops reach them through
// kernels/dispatch.hpp (the set chosen at run time with envit::dispatch, else these directly).
// All serial (the ops split rows or chunks over threads); rows are contiguous (row stride = row
// length) unless a leading dimension is given. Tails are partial batches (vec.hpp), so an
// element's value never depends on where it falls relative to a chunk or row end.
// Not here: threading, argument checks, double (the ops keep scalar double loops).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "envit/kernels/gemm_types.hpp"
#include "envit/kernels/isa.hpp"
#include "envit/kernels/vec.hpp"

namespace envit::vec {
inline namespace ENVIT_KERNEL_ISA_NS {

// ----------------------------------------------------------------------------------- GELU
// y[i] = GELU(x[i]) over [0, n); y may alias x.
inline void gelu_forward(float* y, const float* x, std::ptrdiff_t n) {
  map(y, x, n, [](const fbatch& v) { return gelu(v); });
}
// dx[i] = fma(dy[i], GELU'(x[i]), dx[i]) over [0, n): one pass, dx read once.
inline void gelu_backward(float* dx, const float* dy, const float* x, std::ptrdiff_t n) {
  std::ptrdiff_t i = 0;
  for (; i + W <= n; i += W) store(dx + i, xsimd::fma(load(dy + i), gelu_grad(load(x + i)), load(dx + i)));
  if (i < n) {
    const std::ptrdiff_t m = n - i;
    store_part(dx + i, xsimd::fma(load_part(dy + i, m), gelu_grad(load_part(x + i, m)), load_part(dx + i, m)), m);
  }
}
// d[i] = d[i] * GELU'(h[i]) over [0, n) (the MLP's in-place GELU backward).
inline void gelu_grad_mul(float* d, const float* h, std::ptrdiff_t n) {
  map2(d, d, h, n, [](const fbatch& dv, const fbatch& hv) { return dv * gelu_grad(hv); });
}

// ------------------------------------------------------------------------ GEMM epilogues
// The rectangle rows [r0, r1) x columns [c0, c1) of h and a (row stride ld):
// h[r, c] += b[c] (b may be nullptr), a[r, c] = GELU(h[r, c]) (the MLP's fc1 epilogue).
inline void bias_gelu_rect(float* h, float* a, const float* b, std::ptrdiff_t ld, std::ptrdiff_t r0,
                           std::ptrdiff_t r1, std::ptrdiff_t c0, std::ptrdiff_t c1) {
  const std::ptrdiff_t n = c1 - c0;
  const float* br = b ? b + c0 : nullptr;
  for (std::ptrdiff_t r = r0; r < r1; ++r) {
    float* hr = h + r * ld + c0;
    float* ar = a + r * ld + c0;
    std::ptrdiff_t i = 0;
    for (; i + W <= n; i += W) {
      fbatch v = load(hr + i);
      if (br) v += load(br + i);
      store(hr + i, v);
      store(ar + i, gelu(v));
    }
    if (i < n) {
      const std::ptrdiff_t m = n - i;
      fbatch v = load_part(hr + i, m);
      if (br) v += load_part(br + i, m);
      store_part(hr + i, v, m);
      store_part(ar + i, gelu(v), m);
    }
  }
}
// The rectangle rows [r0, r1) x columns [c0, c1) of y (row stride ld):
// y[r, c] = (y[r, c] + b[c]) + res[r, c]; b and res may each be nullptr; res may alias y.
inline void bias_residual_rect(float* y, const float* b, const float* res, std::ptrdiff_t ld, std::ptrdiff_t r0,
                               std::ptrdiff_t r1, std::ptrdiff_t c0, std::ptrdiff_t c1) {
  if (!b && !res) return;
  const std::ptrdiff_t n = c1 - c0;
  const float* br = b ? b + c0 : nullptr;
  for (std::ptrdiff_t r = r0; r < r1; ++r) {
    float* yr = y + r * ld + c0;
    const float* rr = res ? res + r * ld + c0 : nullptr;
    std::ptrdiff_t i = 0;
    for (; i + W <= n; i += W) {
      fbatch v = load(yr + i);
      if (br) v += load(br + i);
      if (rr) v += load(rr + i);
      store(yr + i, v);
    }
    if (i < n) {
      const std::ptrdiff_t m = n - i;
      fbatch v = load_part(yr + i, m);
      if (br) v += load_part(br + i, m);
      if (rr) v += load_part(rr + i, m);
      store_part(yr + i, v, m);
    }
  }
}

// ------------------------------------------------------------------------------ LayerNorm
// One row: the three passes over the row (in L1) that ops/layernorm.hpp's header describes (rough
// float mean m0; float-lane sums of d = x - m0 and d^2 added into double per block; xhat from the
// double mean and rstd each split into two floats). y overwritten; mean/rstd written as floats.
inline void layernorm_row_forward(float* y, float* mean_out, float* rstd_out, const float* x, const float* gamma,
                                  const float* beta, std::ptrdiff_t D, float eps) {
  const std::ptrdiff_t Dv = D / W * W, rem = D - Dv;
  // 1. rough mean
  fbatch s0(0.f), s1(0.f);
  std::ptrdiff_t i = 0;
  for (; i + 2 * W <= Dv; i += 2 * W) {
    s0 += load(x + i);
    s1 += load(x + i + W);
  }
  if (i < Dv) s0 += load(x + i);
  if (rem) s1 += load_part(x + Dv, rem);
  const float m0 = hsum(s0 + s1) / float(D);
  // 2. centred sums: float lanes over blocks of at most 16 batches (two accumulator pairs, so a
  //    lane's float chain is <= 8 adds long), each block's lanes added into double; the tail is
  //    filled with m0 so that its d is 0
  const fbatch mb(m0);
  double sum_d = 0.0, sum_dd = 0.0;
  for (i = 0; i < Dv;) {
    const std::ptrdiff_t end = std::min(Dv, i + 16 * W);
    fbatch sd0(0.f), sd1(0.f), sdd0(0.f), sdd1(0.f);
    for (; i + 2 * W <= end; i += 2 * W) {
      const fbatch d0 = load(x + i) - mb, d1 = load(x + i + W) - mb;
      sd0 += d0;
      sd1 += d1;
      sdd0 = xsimd::fma(d0, d0, sdd0);
      sdd1 = xsimd::fma(d1, d1, sdd1);
    }
    if (i < end) {
      const fbatch d = load(x + i) - mb;
      sd0 += d;
      sdd0 = xsimd::fma(d, d, sdd0);
      i += W;
    }
    sum_d += hsum_double(sd0 + sd1);
    sum_dd += hsum_double(sdd0 + sdd1);
  }
  if (rem) {
    const fbatch d = load_part(x + Dv, rem, m0) - mb;
    sum_d += hsum_double(d);
    sum_dd += hsum_double(d * d);
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
  for (i = 0; i < Dv; i += W) store(y + i, xsimd::fma(xhat(load(x + i)), load(gamma + i), load(beta + i)));
  if (rem)
    store_part(y + Dv, xsimd::fma(xhat(load_part(x + Dv, rem)), load_part(gamma + Dv, rem), load_part(beta + Dv, rem)),
               rem);
}
// Rows [0, rows) of (rows, D) x and y; mean and rstd (rows).
inline void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                              const float* beta, std::ptrdiff_t rows, std::ptrdiff_t D, float eps) {
  for (std::ptrdiff_t r = 0; r < rows; ++r)
    layernorm_row_forward(y + r * D, mean + r, rstd + r, x + r * D, gamma, beta, D, eps);
}

// One row of the backward: dx = base (+ extra) + rstd * (g - mean(g) - xhat * mean(g xhat)),
// g = dy * gamma; pg += dy * xhat and pb += dy when non-null. dx may be nullptr (then base and
// extra are not read); dx may alias base or extra.
inline void layernorm_row_backward(float* dx, const float* base, const float* extra, float* pg, float* pb,
                                   const float* dy, const float* x, float mean, float rstd, const float* gamma,
                                   std::ptrdiff_t D) {
  const std::ptrdiff_t Dv = D / W * W, rem = D - Dv;
  const fbatch mb(mean), rb(rstd);
  fbatch sg(0.f), sgx(0.f);
  auto step = [&](std::ptrdiff_t i, const fbatch& xv, const fbatch& dyv, const fbatch& gam, std::ptrdiff_t n) {
    const fbatch xh = (xv - mb) * rb;
    const fbatch gi = dyv * gam;
    sg += gi;
    sgx = xsimd::fma(gi, xh, sgx);
    if (n == W) {
      if (pg) store(pg + i, xsimd::fma(dyv, xh, load(pg + i)));
      if (pb) store(pb + i, load(pb + i) + dyv);
    } else {
      if (pg) store_part(pg + i, xsimd::fma(dyv, xh, load_part(pg + i, n)), n);
      if (pb) store_part(pb + i, load_part(pb + i, n) + dyv, n);
    }
  };
  for (std::ptrdiff_t i = 0; i < Dv; i += W) step(i, load(x + i), load(dy + i), load(gamma + i), W);
  // tail: x filled with mean (xhat = 0), dy with 0 (g = 0)
  if (rem) step(Dv, load_part(x + Dv, rem, mean), load_part(dy + Dv, rem), load_part(gamma + Dv, rem), rem);
  if (!dx) return;
  const fbatch mg(hsum(sg) / float(D)), mgx(hsum(sgx) / float(D));
  auto term = [&](const fbatch& xv, const fbatch& dyv, const fbatch& gam) {
    const fbatch xh = (xv - mb) * rb;
    return rb * (dyv * gam - mg - xh * mgx);
  };
  for (std::ptrdiff_t i = 0; i < Dv; i += W) {
    fbatch b = load(base + i);
    if (extra) b += load(extra + i);
    store(dx + i, b + term(load(x + i), load(dy + i), load(gamma + i)));
  }
  if (rem) {
    fbatch b = load_part(base + Dv, rem);
    if (extra) b += load_part(extra + Dv, rem);
    store_part(dx + Dv, b + term(load_part(x + Dv, rem), load_part(dy + Dv, rem), load_part(gamma + Dv, rem)), rem);
  }
}
// Rows [0, rows) of (rows, D) dx, base, extra, dy, x; mean and rstd (rows); pg, pb (D).
inline void layernorm_backward(float* dx, const float* base, const float* extra, float* pg, float* pb,
                               const float* dy, const float* x, const float* mean, const float* rstd,
                               const float* gamma, std::ptrdiff_t rows, std::ptrdiff_t D) {
  for (std::ptrdiff_t r = 0; r < rows; ++r) {
    const std::ptrdiff_t o = r * D;
    layernorm_row_backward(dx ? dx + o : nullptr, dx ? base + o : nullptr, dx && extra ? extra + o : nullptr, pg, pb,
                           dy + o, x + o, mean[r], rstd[r], gamma, D);
  }
}

// -------------------------------------------------------------------------------- softmax
// One row: y = softmax(scale * x), n >= 1; y may alias x.
//   m = max_j scale x_j,  y_j = exp(scale x_j - m) / sum_k exp(scale x_k - m)
inline void softmax_row(float* y, const float* x, std::ptrdiff_t n, float scale) {
  const std::ptrdiff_t nv = n / W * W, rem = n - nv;
  const fbatch s(scale);
  fbatch mx(x[0] * scale);
  for (std::ptrdiff_t i = 0; i < nv; i += W) mx = xsimd::max(mx, load(x + i) * s);
  if (rem) mx = xsimd::max(mx, load_part(x + nv, rem, x[0]) * s);  // fill: a row element
  const fbatch m(hmax(mx));
  fbatch acc(0.f);
  for (std::ptrdiff_t i = 0; i < nv; i += W) {
    const fbatch e = xsimd::exp(load(x + i) * s - m);
    store(y + i, e);
    acc += e;
  }
  if (rem) {
    const fbatch e = xsimd::exp(load_part(x + nv, rem, x[0]) * s - m);
    store_part(y + nv, e, rem);
    acc += xsimd::select(first_lanes(rem), e, fbatch(0.f));
  }
  const fbatch inv(1.f / hsum(acc));
  for (std::ptrdiff_t i = 0; i < nv; i += W) store(y + i, load(y + i) * inv);
  if (rem) store_part(y + nv, load_part(y + nv, rem) * inv, rem);
}
inline void softmax_forward(float* y, const float* x, std::ptrdiff_t rows, std::ptrdiff_t n, float scale) {
  for (std::ptrdiff_t r = 0; r < rows; ++r) softmax_row(y + r * n, x + r * n, n, scale);
}

// One row of the softmax backward, y = softmax(scale * x):  dx = [dx +] scale * y * (dy - <dy, y>).
// accumulate = false overwrites dx, which may then alias dy.
inline void softmax_row_backward(float* dx, const float* dy, const float* y, std::ptrdiff_t n, float scale,
                                 bool accumulate) {
  const std::ptrdiff_t nv = n / W * W, rem = n - nv;
  fbatch acc(0.f);
  for (std::ptrdiff_t i = 0; i < nv; i += W) acc = xsimd::fma(load(dy + i), load(y + i), acc);
  if (rem) acc = xsimd::fma(load_part(dy + nv, rem), load_part(y + nv, rem), acc);
  const fbatch dot(hsum(acc)), s(scale);
  auto f = [&](const fbatch& d, const fbatch& p) { return s * p * (d - dot); };
  if (accumulate) {
    for (std::ptrdiff_t i = 0; i < nv; i += W) store(dx + i, load(dx + i) + f(load(dy + i), load(y + i)));
    if (rem) store_part(dx + nv, load_part(dx + nv, rem) + f(load_part(dy + nv, rem), load_part(y + nv, rem)), rem);
  } else {
    map2(dx, dy, y, n, f);
  }
}
inline void softmax_backward(float* dx, const float* dy, const float* y, std::ptrdiff_t rows, std::ptrdiff_t n,
                             float scale, bool accumulate) {
  for (std::ptrdiff_t r = 0; r < rows; ++r)
    softmax_row_backward(dx + r * n, dy + r * n, y + r * n, n, scale, accumulate);
}

// Rows of y = log_softmax(scale * x); y may alias x.
//   m = max scale x;  lse = m + log sum exp(scale x - m);  y = scale x - lse
inline void log_softmax_forward(float* y, const float* x, std::ptrdiff_t rows, std::ptrdiff_t n, float scale) {
  const std::ptrdiff_t nv = n / W * W, rem = n - nv;
  const fbatch s(scale);
  for (std::ptrdiff_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    fbatch mx(xr[0] * scale);
    for (std::ptrdiff_t i = 0; i < nv; i += W) mx = xsimd::max(mx, load(xr + i) * s);
    if (rem) mx = xsimd::max(mx, load_part(xr + nv, rem, xr[0]) * s);
    const float m = hmax(mx);
    const fbatch mb(m);
    fbatch acc(0.f);
    for (std::ptrdiff_t i = 0; i < nv; i += W) acc += xsimd::exp(load(xr + i) * s - mb);
    if (rem) acc += xsimd::select(first_lanes(rem), xsimd::exp(load_part(xr + nv, rem, xr[0]) * s - mb), fbatch(0.f));
    const fbatch lse(m + std::log(hsum(acc)));
    map(yr, xr, n, [&](const fbatch& v) { return v * s - lse; });
  }
}
// Rows of the log-softmax backward, y = log_softmax(scale * x):  dx += scale * (dy - exp(y) * sum dy).
inline void log_softmax_backward(float* dx, const float* dy, const float* y, std::ptrdiff_t rows, std::ptrdiff_t n,
                                 float scale) {
  const std::ptrdiff_t nv = n / W * W, rem = n - nv;
  for (std::ptrdiff_t r = 0; r < rows; ++r) {
    const float* yr = y + r * n;
    const float* dyr = dy + r * n;
    float* dxr = dx + r * n;
    fbatch acc(0.f);
    for (std::ptrdiff_t i = 0; i < nv; i += W) acc += load(dyr + i);
    if (rem) acc += load_part(dyr + nv, rem);
    const fbatch sum(hsum(acc)), s(scale);
    auto f = [&](const fbatch& d, const fbatch& lp) { return s * (d - xsimd::exp(lp) * sum); };
    for (std::ptrdiff_t i = 0; i < nv; i += W) store(dxr + i, load(dxr + i) + f(load(dyr + i), load(yr + i)));
    if (rem)
      store_part(dxr + nv, load_part(dxr + nv, rem) + f(load_part(dyr + nv, rem), load_part(yr + nv, rem)), rem);
  }
}

// The table of this translation unit's kernels (one kernel set's row kernels).
inline VecKernelSet vec_kernel_set() {
  VecKernelSet k;
  k.gelu_forward = &gelu_forward;
  k.gelu_backward = &gelu_backward;
  k.gelu_grad_mul = &gelu_grad_mul;
  k.bias_gelu_rect = &bias_gelu_rect;
  k.bias_residual_rect = &bias_residual_rect;
  k.layernorm_forward = &layernorm_forward;
  k.layernorm_backward = &layernorm_backward;
  k.softmax_forward = &softmax_forward;
  k.softmax_backward = &softmax_backward;
  k.log_softmax_forward = &log_softmax_forward;
  k.log_softmax_backward = &log_softmax_backward;
  return k;
}

}  // namespace ENVIT_KERNEL_ISA_NS
}  // namespace envit::vec
