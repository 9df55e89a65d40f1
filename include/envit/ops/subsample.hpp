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

template <class T>
void subsample_forward(T* y,        // (B, G', G', D)  overwritten
                       const T* x,  // (B, G, G, D)
                       SubsampleShape s) {
  subsample_check(s, "subsample_forward");
  const std::ptrdiff_t G = s.grid, H = s.out_grid(), D = s.dim;
  parallel_for(s.batch * H, double(H * D), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const std::ptrdiff_t b = r / H, i = r % H;
      for (std::ptrdiff_t j = 0; j < H; ++j)
        std::memcpy(y + ((b * H + i) * H + j) * D, x + ((b * G + i * s.stride) * G + j * s.stride) * D,
                    sizeof(T) * std::size_t(D));
    }
  });
}

// Backward: dx[b, i*s, j*s, :] += dy[b, i, j, :]; the other tokens get nothing.
template <class T>
void subsample_backward(T* dx,        // (B, G, G, D)  accumulated (+=)
                        const T* dy,  // (B, G', G', D)
                        SubsampleShape s) {
  subsample_check(s, "subsample_backward");
  const std::ptrdiff_t G = s.grid, H = s.out_grid(), D = s.dim;
  parallel_for(s.batch * H, double(H * D), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const std::ptrdiff_t b = r / H, i = r % H;
      for (std::ptrdiff_t j = 0; j < H; ++j) {
        T* dst = dx + ((b * G + i * s.stride) * G + j * s.stride) * D;
        const T* src = dy + ((b * H + i) * H + j) * D;
        for (std::ptrdiff_t d = 0; d < D; ++d) dst[d] += src[d];
      }
    }
  });
}

}  // namespace envit
