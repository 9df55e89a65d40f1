// envit/ops/subsample.hpp — strided token subsampling on the patch grid: keep every s-th token in
// both directions, starting at (0, 0) (PyTorch's AvgPool2d(kernel 1, stride s) on the map):
//   y[b,i,j,:] = x[b, i*s, j*s, :],  i, j < G' = (G - 1) / s + 1   (14 -> 7 for s 2, 14 -> 5 for s 3)
// Token-major maps (a token's D channels contiguous). Letters: B batch, G grid, G' output grid, D dim.
#pragma once
#include <cstddef>
#include <cstring>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"

namespace envit {

struct SubsampleShape {
  std::ptrdiff_t batch, grid, dim, stride;
  std::ptrdiff_t out_grid() const { return (grid - 1) / stride + 1; }
};

inline void subsample_check(const SubsampleShape& s, const char* op) {
  ENVIT_CHECK(s.batch >= 0 && s.grid > 0 && s.dim > 0 && s.stride >= 1, ShapeError, op,
              ": invalid shape batch=", s.batch, " grid=", s.grid, " dim=", s.dim, " stride=", s.stride);
}

// Calls f(x_token, y_token) for every kept token, in parallel over output grid rows: the element
// offsets of x[b, i*s, j*s, 0] and y[b, i, j, 0].
template <class F>
void subsample_tokens(SubsampleShape s, F&& f) {
  const std::ptrdiff_t G = s.grid, H = s.out_grid(), D = s.dim;
  parallel_for(s.batch * H, double(H * D), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const std::ptrdiff_t b = r / H, i = r % H;
      for (std::ptrdiff_t j = 0; j < H; ++j)
        f(((b * G + i * s.stride) * G + j * s.stride) * D, ((b * H + i) * H + j) * D);
    }
  });
}

template <class T>
void subsample_forward(T* y,        // (B, G', G', D)  overwritten
                       const T* x,  // (B, G, G, D)
                       SubsampleShape s) {
  subsample_check(s, "subsample_forward");
  subsample_tokens(s, [&](std::ptrdiff_t xo, std::ptrdiff_t yo) {
    std::memcpy(y + yo, x + xo, sizeof(T) * std::size_t(s.dim));
  });
}

// Backward: dx[b, i*s, j*s, :] += dy[b, i, j, :]; the other tokens get nothing.
template <class T>
void subsample_backward(T* dx,        // (B, G, G, D)  accumulated (+=)
                        const T* dy,  // (B, G', G', D)
                        SubsampleShape s) {
  subsample_check(s, "subsample_backward");
  subsample_tokens(s, [&](std::ptrdiff_t xo, std::ptrdiff_t yo) {
    for (std::ptrdiff_t d = 0; d < s.dim; ++d) dx[xo + d] += dy[yo + d];
  });
}

}  // namespace envit
