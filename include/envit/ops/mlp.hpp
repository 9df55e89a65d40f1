// envit/ops/mlp.hpp — the transformer MLP: fc1 (F, D) -> exact GELU -> fc2 (D, F), as timm's Mlp
// with nn.GELU() and no dropout. fc1's bias add and the GELU run as the fc1 GEMM's epilogue
// (GemmEpilogue: on each block of rows as soon as it is final, while it is in cache; h = acc + b1
// and a = GELU(h) are both stored for backward); fc2's bias (plus the block's residual, when
// block.hpp passes one) is fc2's epilogue. The GELU backward is one in-place pass over dL/da.
// Letters: R = rows (B*N or a sub-batch), D = dim, F = hidden.
#pragma once
#include <cmath>
#include <cstddef>
#include <type_traits>

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
  // Optional pre-packed fc1_w / fc2_w for the forward GEMMs (inference; see PackedWeight).
  const PackedWeight<T>* fc1_wp = nullptr;
  const PackedWeight<T>* fc2_wp = nullptr;
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

namespace detail {

// mlp_forward with an optional residual folded into fc2's bias pass (block.hpp):
//   y = (a W2^T + b2) + residual      residual (R, D) or nullptr, must not alias y.
template <class T>
void mlp_forward_impl(T* y, MlpCache<T> c, const T* x, MlpParams<T> p, MlpShape s, const T* residual) {
  mlp_check(s);
  const std::ptrdiff_t R = s.rows, D = s.dim, F = s.hidden;
  // h = acc + b1;  a = GELU(h), fused into the fc1 GEMM (per block of h while it is in cache)
  const auto bias_gelu = [&](std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t c0, std::ptrdiff_t c1) {
    if constexpr (std::is_same_v<T, float>) {
      kernels::bias_gelu_rect(c.h, c.a, p.fc1_b, F, r0, r1, c0, c1);
    } else {
      for (std::ptrdiff_t r = r0; r < r1; ++r) {
        T* hr = c.h + r * F;
        T* ar = c.a + r * F;
        for (std::ptrdiff_t i = c0; i < c1; ++i) {
          if (p.fc1_b) hr[i] += p.fc1_b[i];
          ar[i] = gelu_scalar(hr[i]);
        }
      }
    }
  };
  const GemmEpilogue fc1_epi = make_epilogue(bias_gelu);
  gemm_weight_t<T>(R, F, D, T(1), x, D, p.fc1_w, p.fc1_wp, T(0), c.h, F, &fc1_epi);
  const auto fc2_bias = [&](std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t c0, std::ptrdiff_t c1) {
    bias_residual_rect<T>(y, p.fc2_b, residual, D, r0, r1, c0, c1);
  };
  const GemmEpilogue fc2_epi = make_epilogue(fc2_bias);
  gemm_weight_t<T>(R, D, F, T(1), c.a, F, p.fc2_w, p.fc2_wp, T(0), y, D, &fc2_epi);
}

// mlp_backward whose input gradient is overwritten (dx = ...) when overwrite_dx, instead of
// accumulated: saves the caller a zero fill.
template <class T>
void mlp_backward_impl(T* dx, bool overwrite_dx, MlpGrads<T> g, const T* dy, const T* x, MlpCache<T> c,
                       MlpParams<T> p, MlpShape s, MlpWorkspace<T> w) {
  mlp_check(s);
  const std::ptrdiff_t R = s.rows, D = s.dim, F = s.hidden;
  gemm<T>(Trans::N, Trans::N, R, F, D, T(1), dy, D, p.fc2_w, F, T(0), w.dh, F);
  linear_backward<T>(nullptr, {g.dfc2_w, g.dfc2_b}, dy, c.a, {p.fc2_w, p.fc2_b}, {R, F, D});
  // Same derivative as gelu_backward, applied in place (gelu_backward accumulates, which would
  // need a second zeroed (R, F) buffer).
  if constexpr (std::is_same_v<T, float>) {
    kernels::select();
    parallel_for(R * F, 30.0, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
      kernels::gelu_grad_mul(w.dh + i0, c.h + i0, i1 - i0);
    });
  } else {
    parallel_for(R * F, 30.0, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
      for (std::ptrdiff_t i = i0; i < i1; ++i) w.dh[i] *= gelu_grad_scalar(c.h[i]);
    });
  }
  if (dx && overwrite_dx) gemm<T>(Trans::N, Trans::N, R, D, F, T(1), w.dh, F, p.fc1_w, D, T(0), dx, D);
  linear_backward<T>(overwrite_dx ? nullptr : dx, {g.dfc1_w, g.dfc1_b}, w.dh, x, {p.fc1_w, p.fc1_b}, {R, D, F});
}

}  // namespace detail

// h = x W1^T + b1,  a = GELU(h),  y = a W2^T + b2
template <class T>
void mlp_forward(T* y,               // (R, D)  overwritten
                 MlpCache<T> c,      // written here, read by backward
                 const T* x,         // (R, D)
                 MlpParams<T> p, MlpShape s) {
  detail::mlp_forward_impl<T>(y, c, x, p, s, nullptr);
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
  detail::mlp_backward_impl<T>(dx, false, g, dy, x, c, p, s, w);
}

}  // namespace envit
