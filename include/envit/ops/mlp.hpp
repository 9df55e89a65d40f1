// envit/ops/mlp.hpp — the transformer MLP: fc1 (F, D) -> exact GELU -> fc2 (D, F), as timm's Mlp
// with nn.GELU() and no dropout. Bias and GELU are separate passes (not fused into the GEMM).
// Letters: R = rows (B*N or a sub-batch), D = dim, F = hidden.
#pragma once
#include <cmath>
#include <cstddef>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/kernels/gemm.hpp"
#include "envit/ops/gelu.hpp"
#include "envit/ops/linear.hpp"

namespace envit {

struct MlpShape { std::ptrdiff_t rows, dim, hidden; };
template <class T> struct MlpParams {
  const T* fc1_w;  // (F, D)
  const T* fc1_b;  // (F)
  const T* fc2_w;  // (D, F)
  const T* fc2_b;  // (D)
};
template <class T> struct MlpGrads { T *dfc1_w, *dfc1_b, *dfc2_w, *dfc2_b; };  // accumulated (+=)
template <class T> struct MlpCache {
  T* h;  // (R, F)  fc1 output, pre-GELU
  T* a;  // (R, F)  GELU(h)
};
template <class T> struct MlpWorkspace {
  T* dh;  // (R, F)  dL/da, then dL/dh in place; overwritten on every call
};

inline void mlp_check(const MlpShape& s) {
  ENVIT_CHECK(s.rows >= 0 && s.dim > 0 && s.hidden > 0, ShapeError, "mlp: invalid shape rows=",
              s.rows, " dim=", s.dim, " hidden=", s.hidden);
}

// Cache for `s.rows` (the most rows it will serve); fewer rows use its prefix.
template <class T, class A>
MlpCache<T> mlp_cache_take(A& arena, MlpShape s) {
  mlp_check(s);
  const auto n = std::size_t(s.rows * s.hidden);
  MlpCache<T> c;
  c.h = arena.take(n);
  c.a = arena.take(n);
  return c;
}

template <class T, class A>
MlpWorkspace<T> mlp_workspace_take(A& arena, MlpShape s) {
  mlp_check(s);
  MlpWorkspace<T> w;
  w.dh = arena.take(std::size_t(s.rows * s.hidden));
  return w;
}

// h = x W1^T + b1,  a = GELU(h),  y = a W2^T + b2
template <class T>
void mlp_forward(T* y,               // (R, D)  overwritten
                 MlpCache<T> c,      // written here, read by backward
                 const T* x,         // (R, D)
                 MlpParams<T> p, MlpShape s) {
  mlp_check(s);
  linear_forward<T>(c.h, x, {p.fc1_w, p.fc1_b}, {s.rows, s.dim, s.hidden});
  gelu_forward<T>(c.a, c.h, s.rows * s.hidden);
  linear_forward<T>(y, c.a, {p.fc2_w, p.fc2_b}, {s.rows, s.hidden, s.dim});
}

// From y = a W2^T + b2:   da = dy W2,  dW2 += dy^T a,  db2 += sum_r dy
// From a = GELU(h):       dh = da .* (Phi(h) + h phi(h))        (in place in w.dh)
// From h = x W1^T + b1:   dx += dh W1,  dW1 += dh^T x,  db1 += sum_r dh
template <class T>
void mlp_backward(T* dx,              // (R, D)  accumulated (+=), or nullptr
                  MlpGrads<T> g,      // accumulated (+=); members may be nullptr
                  const T* dy,        // (R, D)
                  const T* x,         // (R, D)  the forward input
                  MlpCache<T> c, MlpParams<T> p, MlpShape s, MlpWorkspace<T> w) {
  mlp_check(s);
  const std::ptrdiff_t R = s.rows, D = s.dim, F = s.hidden;
  gemm<T>(Trans::N, Trans::N, R, F, D, T(1), dy, D, p.fc2_w, F, T(0), w.dh, F);
  linear_backward<T>(nullptr, {g.dfc2_w, g.dfc2_b}, dy, c.a, {p.fc2_w, p.fc2_b}, {R, F, D});
  // Same derivative as gelu_backward, applied in place (gelu_backward accumulates, which would
  // need a second zeroed (R, F) buffer).
  parallel_for(R * F, 30.0, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    const T k = T(0.70710678118654752440), cn = T(0.39894228040143267794);
    for (std::ptrdiff_t i = i0; i < i1; ++i) {
      const T v = c.h[i];
      const T cdf = T(0.5) * (T(1) + std::erf(v * k));
      const T pdf = cn * std::exp(T(-0.5) * v * v);
      w.dh[i] *= cdf + v * pdf;
    }
  });
  linear_backward<T>(dx, {g.dfc1_w, g.dfc1_b}, w.dh, x, {p.fc1_w, p.fc1_b}, {R, D, F});
}

}  // namespace envit
