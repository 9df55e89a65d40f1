// envit/ops/softmax.hpp — row-wise softmax and log-softmax (max-subtracted, overflow-safe).
// float rows run on xsimd batches (xsimd::exp, relative error <= 1.3e-7; ragged row ends as
// partial batches); double rows stay scalar. detail::softmax_row / softmax_row_backward are
// shared with attention.hpp. Letters: R = rows, C = columns (classes or keys).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/kernels/vec.hpp"

namespace envit {

namespace detail {

// One row in scalar arithmetic (any T; also the fused softmax of cross_entropy and kl_div):
//   m = max_j scale x_j,  y_j = exp(scale x_j - m) / sum_k exp(scale x_k - m)
// Returns sum_k exp(scale x_k - m) and writes m to *max_out when given (log-sum-exp = m + log sum).
// n >= 1; y may alias x.
template <class T>
T softmax_row_scalar(T* y, const T* x, std::ptrdiff_t n, T scale, T* max_out = nullptr) {
  T m = x[0] * scale;
  for (std::ptrdiff_t c = 1; c < n; ++c) m = std::max(m, x[c] * scale);
  T sum = 0;
  for (std::ptrdiff_t c = 0; c < n; ++c) { y[c] = std::exp(x[c] * scale - m); sum += y[c]; }
  const T inv = T(1) / sum;
  for (std::ptrdiff_t c = 0; c < n; ++c) y[c] *= inv;
  if (max_out) *max_out = m;
  return sum;
}

// One row: y = softmax(scale * x), n >= 1 entries; y may alias x. float: xsimd batches.
template <class T>
void softmax_row(T* y, const T* x, std::ptrdiff_t n, T scale) {
  if constexpr (std::is_same_v<T, float>) {
    using vec::fbatch;
    constexpr std::ptrdiff_t W = vec::W;
    const std::ptrdiff_t nv = n / W * W, rem = n - nv;
    const fbatch s(scale);
    fbatch mx(x[0] * scale);
    for (std::ptrdiff_t i = 0; i < nv; i += W) mx = xsimd::max(mx, vec::load(x + i) * s);
    if (rem) mx = xsimd::max(mx, vec::load_part(x + nv, rem, x[0]) * s);  // fill: a row element
    const fbatch m(vec::hmax(mx));
    fbatch acc(0.f);
    for (std::ptrdiff_t i = 0; i < nv; i += W) {
      const fbatch e = xsimd::exp(vec::load(x + i) * s - m);
      vec::store(y + i, e);
      acc += e;
    }
    if (rem) {
      const fbatch e = xsimd::exp(vec::load_part(x + nv, rem, x[0]) * s - m);
      vec::store_part(y + nv, e, rem);
      acc += xsimd::select(vec::first_lanes(rem), e, fbatch(0.f));
    }
    const fbatch inv(1.f / vec::hsum(acc));
    for (std::ptrdiff_t i = 0; i < nv; i += W) vec::store(y + i, vec::load(y + i) * inv);
    if (rem) vec::store_part(y + nv, vec::load_part(y + nv, rem) * inv, rem);
  } else {
    softmax_row_scalar(y, x, n, scale);
  }
}

// One row of the softmax backward, y = softmax(scale * x):
//   dx = [dx +] scale * y * (dy - <dy, y>)
// accumulate = false overwrites dx, which may then alias dy (attention computes dS in place).
template <class T>
void softmax_row_backward(T* dx, const T* dy, const T* y, std::ptrdiff_t n, T scale, bool accumulate) {
  if constexpr (std::is_same_v<T, float>) {
    using vec::fbatch;
    constexpr std::ptrdiff_t W = vec::W;
    const std::ptrdiff_t nv = n / W * W, rem = n - nv;
    fbatch acc(0.f);
    for (std::ptrdiff_t i = 0; i < nv; i += W) acc = xsimd::fma(vec::load(dy + i), vec::load(y + i), acc);
    if (rem) acc = xsimd::fma(vec::load_part(dy + nv, rem), vec::load_part(y + nv, rem), acc);
    const fbatch dot(vec::hsum(acc)), s(scale);
    auto f = [&](const fbatch& d, const fbatch& p) { return s * p * (d - dot); };
    if (accumulate) {
      for (std::ptrdiff_t i = 0; i < nv; i += W)
        vec::store(dx + i, vec::load(dx + i) + f(vec::load(dy + i), vec::load(y + i)));
      if (rem)
        vec::store_part(dx + nv, vec::load_part(dx + nv, rem) + f(vec::load_part(dy + nv, rem), vec::load_part(y + nv, rem)),
                        rem);
    } else {
      vec::map2(dx, dy, y, n, f);
    }
  } else {
    T dot = 0;
    for (std::ptrdiff_t c = 0; c < n; ++c) dot += dy[c] * y[c];
    if (accumulate)
      for (std::ptrdiff_t c = 0; c < n; ++c) dx[c] += scale * y[c] * (dy[c] - dot);
    else
      for (std::ptrdiff_t c = 0; c < n; ++c) dx[c] = scale * y[c] * (dy[c] - dot);
  }
}

}  // namespace detail

// y[r] = softmax(x[r] * scale); y may alias x.
template <class T>
void softmax_forward(T* y,            // (R, C)  overwritten
                     const T* x,      // (R, C)
                     std::ptrdiff_t rows, std::ptrdiff_t cols, T scale = T(1)) {
  ENVIT_CHECK(rows >= 0 && cols > 0, ShapeError, "softmax_forward: invalid shape rows=", rows,
              " cols=", cols);
  parallel_for(rows, 8.0 * double(cols), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) detail::softmax_row(y + r * cols, x + r * cols, cols, scale);
  });
}

// y[r] = log_softmax(x[r] * scale); y may alias x.
template <class T>
void log_softmax_forward(T* y,        // (R, C)  overwritten
                         const T* x,  // (R, C)
                         std::ptrdiff_t rows, std::ptrdiff_t cols, T scale = T(1)) {
  ENVIT_CHECK(rows >= 0 && cols > 0, ShapeError, "log_softmax_forward: invalid shape rows=", rows,
              " cols=", cols);
  parallel_for(rows, 8.0 * double(cols), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      if constexpr (std::is_same_v<T, float>) {
        // m = max scale x;  lse = m + log sum exp(scale x - m);  y = scale x - lse
        using vec::fbatch;
        constexpr std::ptrdiff_t W = vec::W;
        const std::ptrdiff_t nv = cols / W * W, rem = cols - nv;
        const fbatch s(scale);
        fbatch mx(xr[0] * scale);
        for (std::ptrdiff_t i = 0; i < nv; i += W) mx = xsimd::max(mx, vec::load(xr + i) * s);
        if (rem) mx = xsimd::max(mx, vec::load_part(xr + nv, rem, xr[0]) * s);
        const float m = vec::hmax(mx);
        const fbatch mb(m);
        fbatch acc(0.f);
        for (std::ptrdiff_t i = 0; i < nv; i += W) acc += xsimd::exp(vec::load(xr + i) * s - mb);
        if (rem)
          acc += xsimd::select(vec::first_lanes(rem), xsimd::exp(vec::load_part(xr + nv, rem, xr[0]) * s - mb), fbatch(0.f));
        const fbatch lse(m + std::log(vec::hsum(acc)));
        vec::map(yr, xr, cols, [&](const fbatch& v) { return v * s - lse; });
      } else {
        T m = xr[0] * scale;
        for (std::ptrdiff_t c = 1; c < cols; ++c) m = std::max(m, xr[c] * scale);
        T sum = 0;
        for (std::ptrdiff_t c = 0; c < cols; ++c) sum += std::exp(xr[c] * scale - m);
        T lse = m + std::log(sum);
        for (std::ptrdiff_t c = 0; c < cols; ++c) yr[c] = xr[c] * scale - lse;
      }
    }
  });
}

// With y = softmax(scale * x):  dx = scale * y * (dy - sum_c dy*y)   accumulated into dx (+=).
template <class T>
void softmax_backward(T* dx,          // (R, C)  accumulated (+=)
                      const T* dy,    // (R, C)
                      const T* y,     // (R, C)  the forward output
                      std::ptrdiff_t rows, std::ptrdiff_t cols, T scale = T(1)) {
  parallel_for(rows, 6.0 * double(cols), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r)
      detail::softmax_row_backward(dx + r * cols, dy + r * cols, y + r * cols, cols, scale, true);
  });
}

// With y = log_softmax(scale * x):  dx = scale * (dy - exp(y) * sum_c dy)   accumulated (+=).
template <class T>
void log_softmax_backward(T* dx,          // (R, C)  accumulated (+=)
                          const T* dy,    // (R, C)
                          const T* y,     // (R, C)  the forward output (log-probabilities)
                          std::ptrdiff_t rows, std::ptrdiff_t cols, T scale = T(1)) {
  parallel_for(rows, 24.0 * double(cols), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const T* yr = y + r * cols;
      const T* dyr = dy + r * cols;
      T* dxr = dx + r * cols;
      if constexpr (std::is_same_v<T, float>) {
        using vec::fbatch;
        constexpr std::ptrdiff_t W = vec::W;
        const std::ptrdiff_t nv = cols / W * W, rem = cols - nv;
        fbatch acc(0.f);
        for (std::ptrdiff_t i = 0; i < nv; i += W) acc += vec::load(dyr + i);
        if (rem) acc += vec::load_part(dyr + nv, rem);
        const fbatch sum(vec::hsum(acc)), s(scale);
        auto f = [&](const fbatch& d, const fbatch& lp) { return s * (d - xsimd::exp(lp) * sum); };
        for (std::ptrdiff_t i = 0; i < nv; i += W)
          vec::store(dxr + i, vec::load(dxr + i) + f(vec::load(dyr + i), vec::load(yr + i)));
        if (rem)
          vec::store_part(dxr + nv,
                          vec::load_part(dxr + nv, rem) + f(vec::load_part(dyr + nv, rem), vec::load_part(yr + nv, rem)),
                          rem);
      } else {
        T sum = 0;
        for (std::ptrdiff_t c = 0; c < cols; ++c) sum += dyr[c];
        for (std::ptrdiff_t c = 0; c < cols; ++c) dxr[c] += scale * (dyr[c] - std::exp(yr[c]) * sum);
      }
    }
  });
}

}  // namespace envit
