// envit/ops/gelu.hpp — exact GELU (erf form, PyTorch's default): y = x * Phi(x),
// Phi(x) = 0.5 * (1 + erf(x / sqrt 2)) = 0.5 * erfc(-x / sqrt 2). Elementwise; the tanh
// approximation is deliberately absent.
// float: xsimd batches (kernels/vec.hpp: Phi via erfc, abs error <= 1.3e-7, relative on the
// negative tail too), the kernel set's (kernels/dispatch.hpp); double: scalar std::erf / std::exp
// (the gradient checks' reference).
// Letters: N = element count.
#pragma once
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "envit/core/parallel.hpp"
#include "envit/kernels/dispatch.hpp"

namespace envit {

// Scalar GELU and its derivative (the double path of gelu_forward/backward and of the fused
// GELU in mlp.hpp):  gelu(x) = x Phi(x),  gelu'(x) = Phi(x) + x phi(x).
template <class T>
inline T gelu_scalar(T x) {
  const T k = T(0.70710678118654752440);
  return T(0.5) * x * (T(1) + std::erf(x * k));
}
template <class T>
inline T gelu_grad_scalar(T v) {
  const T k = T(0.70710678118654752440), c = T(0.39894228040143267794);
  const T cdf = T(0.5) * (T(1) + std::erf(v * k));
  const T pdf = c * std::exp(T(-0.5) * v * v);
  return cdf + v * pdf;
}

template <class T>
void gelu_forward(T* y,              // (N)  overwritten; may alias x
                  const T* x,        // (N)
                  std::ptrdiff_t n) {
  if constexpr (std::is_same_v<T, float>) {
    kernels::select();
    parallel_for(n, 20.0, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
      kernels::gelu_forward(y + i0, x + i0, i1 - i0);
    });
  } else {
    parallel_for(n, 20.0, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
      for (std::ptrdiff_t i = i0; i < i1; ++i) y[i] = gelu_scalar(x[i]);
    });
  }
}

// dy/dx = Phi(x) + x * phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi)
// dx (+=) dy * (Phi(x) + x phi(x));  dx may alias dy only if it was zero before the call.
template <class T>
void gelu_backward(T* dx,             // (N)  accumulated (+=)
                   const T* dy,       // (N)
                   const T* x,        // (N)  the forward input
                   std::ptrdiff_t n) {
  if constexpr (std::is_same_v<T, float>) {
    // dx = fma(dy, GELU'(x), dx): one pass, dx read once.
    kernels::select();
    parallel_for(n, 30.0, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
      kernels::gelu_backward(dx + i0, dy + i0, x + i0, i1 - i0);
    });
  } else {
    parallel_for(n, 30.0, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
      for (std::ptrdiff_t i = i0; i < i1; ++i) dx[i] += dy[i] * gelu_grad_scalar(x[i]);
    });
  }
}

}  // namespace envit
