// envit/ops/gram.hpp — per-sample Gram matrix of token features, G_b = Y_b^T Y_b (PyTorch:
// Y.transpose(-1, -2) @ Y), as LGViT's homogeneous distillation compares heads whose token counts
// differ. Letters: B batch, n tokens, D channels.
#pragma once
#include <cstddef>

#include "envit/core/error.hpp"
#include "envit/kernels/gemm.hpp"

namespace envit {

struct GramShape { std::ptrdiff_t batch, tokens, dim; };

inline void gram_check(const GramShape& s, const char* op) {
  ENVIT_CHECK(s.batch >= 0 && s.tokens > 0 && s.dim > 0, ShapeError, op, ": invalid shape batch=", s.batch,
              " tokens=", s.tokens, " dim=", s.dim);
}

template <class T>
void gram_forward(T* g,        // (B, D, D)  overwritten
                  const T* y,  // (B, n, D)
                  GramShape s) {
  gram_check(s, "gram_forward");
  const std::ptrdiff_t n = s.tokens, D = s.dim;
  for (std::ptrdiff_t b = 0; b < s.batch; ++b)
    gemm<T>(Trans::T, Trans::N, D, D, n, T(1), y + b * n * D, D, y + b * n * D, D, T(0), g + b * D * D, D);
}

// G = Y^T Y gives dY = Y (dG + dG^T)  (accumulated into dy).
template <class T>
void gram_backward(T* dy,        // (B, n, D)  accumulated (+=)
                   const T* dg,  // (B, D, D)
                   const T* y,   // (B, n, D)  the forward input
                   GramShape s) {
  gram_check(s, "gram_backward");
  const std::ptrdiff_t n = s.tokens, D = s.dim;
  for (std::ptrdiff_t b = 0; b < s.batch; ++b) {
    const T* yb = y + b * n * D;
    const T* gb = dg + b * D * D;
    gemm<T>(Trans::N, Trans::N, n, D, D, T(1), yb, D, gb, D, T(1), dy + b * n * D, D);
    gemm<T>(Trans::N, Trans::T, n, D, D, T(1), yb, D, gb, D, T(1), dy + b * n * D, D);
  }
}

}  // namespace envit
