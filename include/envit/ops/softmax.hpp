// envit/ops/softmax.hpp — row-wise softmax and log-softmax (max-subtracted, overflow-safe).
// float rows run on xsimd batches (kernels/vec_kernels.hpp, the kernel set's: kernels/dispatch.hpp;
// xsimd::exp, relative error <= 1.3e-7; ragged row ends as partial batches); double rows stay
// scalar. detail::softmax_rows / softmax_rows_backward are shared with attention.hpp.
// Letters: R = rows, C = columns (classes or keys).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/kernels/dispatch.hpp"

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

// Rows [0, rows) of (rows, n): y = softmax(scale * x), n >= 1 entries; y may alias x.
template <class T>
void softmax_rows(T* y, const T* x, std::ptrdiff_t rows, std::ptrdiff_t n, T scale) {
  if constexpr (std::is_same_v<T, float>) {
    kernels::softmax_forward(y, x, rows, n, scale);
  } else {
    for (std::ptrdiff_t r = 0; r < rows; ++r) softmax_row_scalar(y + r * n, x + r * n, n, scale);
  }
}

// Rows [0, rows) of (rows, n) of the softmax backward, y = softmax(scale * x):
//   dx = [dx +] scale * y * (dy - <dy, y>)
// accumulate = false overwrites dx, which may then alias dy (attention computes dS in place).
template <class T>
void softmax_rows_backward(T* dx, const T* dy, const T* y, std::ptrdiff_t rows, std::ptrdiff_t n, T scale,
                           bool accumulate) {
  if constexpr (std::is_same_v<T, float>) {
    kernels::softmax_backward(dx, dy, y, rows, n, scale, accumulate);
  } else {
    for (std::ptrdiff_t r = 0; r < rows; ++r) {
      T* dxr = dx + r * n;
      const T* dyr = dy + r * n;
      const T* yr = y + r * n;
      T dot = 0;
      for (std::ptrdiff_t c = 0; c < n; ++c) dot += dyr[c] * yr[c];
      if (accumulate)
        for (std::ptrdiff_t c = 0; c < n; ++c) dxr[c] += scale * yr[c] * (dyr[c] - dot);
      else
        for (std::ptrdiff_t c = 0; c < n; ++c) dxr[c] = scale * yr[c] * (dyr[c] - dot);
    }
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
  if constexpr (std::is_same_v<T, float>) kernels::select();
  parallel_for(rows, 8.0 * double(cols), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    detail::softmax_rows(y + r0 * cols, x + r0 * cols, r1 - r0, cols, scale);
  });
}

// y[r] = log_softmax(x[r] * scale); y may alias x.
template <class T>
void log_softmax_forward(T* y,        // (R, C)  overwritten
                         const T* x,  // (R, C)
                         std::ptrdiff_t rows, std::ptrdiff_t cols, T scale = T(1)) {
  ENVIT_CHECK(rows >= 0 && cols > 0, ShapeError, "log_softmax_forward: invalid shape rows=", rows,
              " cols=", cols);
  if constexpr (std::is_same_v<T, float>) kernels::select();
  parallel_for(rows, 8.0 * double(cols), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    if constexpr (std::is_same_v<T, float>) {
      kernels::log_softmax_forward(y + r0 * cols, x + r0 * cols, r1 - r0, cols, scale);
    } else {
      for (std::ptrdiff_t r = r0; r < r1; ++r) {
        const T* xr = x + r * cols;
        T* yr = y + r * cols;
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
  if constexpr (std::is_same_v<T, float>) kernels::select();
  parallel_for(rows, 6.0 * double(cols), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    detail::softmax_rows_backward(dx + r0 * cols, dy + r0 * cols, y + r0 * cols, r1 - r0, cols, scale, true);
  });
}

// With y = log_softmax(scale * x):  dx = scale * (dy - exp(y) * sum_c dy)   accumulated (+=).
template <class T>
void log_softmax_backward(T* dx,          // (R, C)  accumulated (+=)
                          const T* dy,    // (R, C)
                          const T* y,     // (R, C)  the forward output (log-probabilities)
                          std::ptrdiff_t rows, std::ptrdiff_t cols, T scale = T(1)) {
  if constexpr (std::is_same_v<T, float>) kernels::select();
  parallel_for(rows, 24.0 * double(cols), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    if constexpr (std::is_same_v<T, float>) {
      kernels::log_softmax_backward(dx + r0 * cols, dy + r0 * cols, y + r0 * cols, r1 - r0, cols, scale);
    } else {
      for (std::ptrdiff_t r = r0; r < r1; ++r) {
        const T* yr = y + r * cols;
        const T* dyr = dy + r * cols;
        T* dxr = dx + r * cols;
        T sum = 0;
        for (std::ptrdiff_t c = 0; c < cols; ++c) sum += dyr[c];
        for (std::ptrdiff_t c = 0; c < cols; ++c) dxr[c] += scale * (dyr[c] - std::exp(yr[c]) * sum);
      }
    }
  });
}

}  // namespace envit
