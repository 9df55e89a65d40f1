// envit/ops/softmax.hpp — row-wise softmax and log-softmax (max-subtracted, overflow-safe).
// Letters: R = rows, C = columns (classes or keys).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"

namespace envit {

// y[r] = softmax(x[r] * scale); y may alias x.
template <class T>
void softmax_forward(T* y,            // (R, C)  overwritten
                     const T* x,      // (R, C)
                     std::ptrdiff_t rows, std::ptrdiff_t cols, T scale = T(1)) {
  ENVIT_CHECK(rows >= 0 && cols > 0, ShapeError, "softmax_forward: invalid shape rows=", rows,
              " cols=", cols);
  parallel_for(rows, 8.0 * double(cols), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      T m = xr[0] * scale;
      for (std::ptrdiff_t c = 1; c < cols; ++c) m = std::max(m, xr[c] * scale);
      T sum = 0;
      for (std::ptrdiff_t c = 0; c < cols; ++c) { yr[c] = std::exp(xr[c] * scale - m); sum += yr[c]; }
      T inv = T(1) / sum;
      for (std::ptrdiff_t c = 0; c < cols; ++c) yr[c] *= inv;
    }
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
      T m = xr[0] * scale;
      for (std::ptrdiff_t c = 1; c < cols; ++c) m = std::max(m, xr[c] * scale);
      T sum = 0;
      for (std::ptrdiff_t c = 0; c < cols; ++c) sum += std::exp(xr[c] * scale - m);
      T lse = m + std::log(sum);
      for (std::ptrdiff_t c = 0; c < cols; ++c) yr[c] = xr[c] * scale - lse;
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
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const T* yr = y + r * cols;
      const T* dyr = dy + r * cols;
      T* dxr = dx + r * cols;
      T dot = 0;
      for (std::ptrdiff_t c = 0; c < cols; ++c) dot += dyr[c] * yr[c];
      for (std::ptrdiff_t c = 0; c < cols; ++c) dxr[c] += scale * yr[c] * (dyr[c] - dot);
    }
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
      T sum = 0;
      for (std::ptrdiff_t c = 0; c < cols; ++c) sum += dyr[c];
      for (std::ptrdiff_t c = 0; c < cols; ++c) dxr[c] += scale * (dyr[c] - std::exp(yr[c]) * sum);
    }
  });
}

}  // namespace envit
