// envit/ops/linear.hpp — fully connected layer y = x W^T + b, W stored (out, in) as PyTorch does.
// Not fused with any activation (see ops/mlp.hpp for bias+GELU fusion opportunities).
// Letters: R = rows (B*T or a sub-batch), I = in features, O = out features.
#pragma once
#include <cstddef>
#include <type_traits>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/kernels/gemm.hpp"

namespace envit {

struct LinearShape { std::ptrdiff_t rows, in, out; };
template <class T> struct LinearParams { const T* w; const T* b; };  // w (O,I); b (O) or nullptr
template <class T> struct LinearGrads { T* dw; T* db; };             // same shapes, accumulated (+=)

namespace detail {
// The rectangle rows [r0, r1) x columns [c0, c1) of y (row stride C):
// y[r, c] = (y[r, c] + b[c]) + res[r, c]; b and res may each be nullptr. Bias first, then
// residual: the same roundings as linear_forward's bias pass followed by a residual add. res may
// alias y. Serial: a GEMM epilogue (attention's qkv and projection, the MLP's fc2). float: the
// kernel set's (kernels/dispatch.hpp).
template <class T>
void bias_residual_rect(T* y, const T* b, const T* res, std::ptrdiff_t C, std::ptrdiff_t r0, std::ptrdiff_t r1,
                        std::ptrdiff_t c0, std::ptrdiff_t c1) {
  if (!b && !res) return;
  if constexpr (std::is_same_v<T, float>) {
    kernels::bias_residual_rect(y, b, res, C, r0, r1, c0, c1);
  } else {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      T* yr = y + r * C;
      for (std::ptrdiff_t i = c0; i < c1; ++i) {
        T v = yr[i];
        if (b) v += b[i];
        if (res) v += res[r * C + i];
        yr[i] = v;
      }
    }
  }
}
}  // namespace detail

inline void linear_check(const LinearShape& s) {
  ENVIT_CHECK(s.rows >= 0 && s.in > 0 && s.out > 0, ShapeError, "linear: invalid shape rows=",
              s.rows, " in=", s.in, " out=", s.out);
}

template <class T>
void linear_forward(T* y,              // (R, O)   overwritten
                    const T* x,        // (R, I)
                    LinearParams<T> p, LinearShape s) {
  linear_check(s);
  // y = x W^T  then  y += b (row broadcast)
  gemm<T>(Trans::N, Trans::T, s.rows, s.out, s.in, T(1), x, s.in, p.w, s.in, T(0), y, s.out);
  if (p.b) {
    parallel_for(s.rows, double(s.out), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
      for (std::ptrdiff_t r = r0; r < r1; ++r) {
        T* yr = y + r * s.out;
        for (std::ptrdiff_t o = 0; o < s.out; ++o) yr[o] += p.b[o];
      }
    });
  }
}

// Forward y = x W^T + b gives
//   dx = dy W          (R,O)x(O,I)     accumulated into dx (+=); dx may be nullptr
//   dW += dy^T x       (O,R)x(R,I)
//   db += sum_r dy[r]  (deterministic: columns split over threads, rows summed in order)
template <class T>
void linear_backward(T* dx,            // (R, I)  accumulated (+=), or nullptr
                     LinearGrads<T> g, // dw (O,I), db (O) accumulated (+=); either may be nullptr
                     const T* dy,      // (R, O)
                     const T* x,       // (R, I)
                     LinearParams<T> p, LinearShape s) {
  linear_check(s);
  if (dx) gemm<T>(Trans::N, Trans::N, s.rows, s.in, s.out, T(1), dy, s.out, p.w, s.in, T(1), dx, s.in);
  if (g.dw) gemm<T>(Trans::T, Trans::N, s.out, s.in, s.rows, T(1), dy, s.out, x, s.in, T(1), g.dw, s.in);
  if (g.db) {
    parallel_for(s.out, double(s.rows), [&](std::ptrdiff_t o0, std::ptrdiff_t o1) {
      for (std::ptrdiff_t r = 0; r < s.rows; ++r) {
        const T* dyr = dy + r * s.out;
        for (std::ptrdiff_t o = o0; o < o1; ++o) g.db[o] += dyr[o];
      }
    });
  }
}

}  // namespace envit
