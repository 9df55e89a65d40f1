// envit/ops/dwconv.hpp — 3x3 depthwise convolution on the patch grid (PyTorch's
// Conv2d(D, D, 3, stride 1, padding 1, groups=D) with bias), on token-major maps: x is
// (B, G, G, D), a token's D channels contiguous, as a ViT's patch tokens are stored.
//   y[b,i,j,d] = bias[d] + sum_{u,v in 0..2} w[d,u,v] * x[b, i+u-1, j+v-1, d]   (zero outside the grid)
// Not fused with the activation that follows. Letters: B batch, G grid side, D channels.
#pragma once
#include <cstddef>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"

namespace envit {

struct DwConvShape { std::ptrdiff_t batch, grid, dim; };
template <class T> struct DwConvParams { const T* w; const T* b; };  // w (D, 1, 3, 3) as PyTorch; b (D) or nullptr
template <class T> struct DwConvGrads { T* dw; T* db; };            // same shapes, accumulated (+=)

inline void dwconv_check(const DwConvShape& s, const char* op) {
  ENVIT_CHECK(s.batch >= 0 && s.grid > 0 && s.dim > 0, ShapeError, op, ": invalid shape batch=", s.batch,
              " grid=", s.grid, " dim=", s.dim);
}

// Calls f(k, ii, jj) for the taps k = u*3 + v of token (i, j) whose neighbour (ii, jj) lies on
// the G x G grid, u then v ascending: ii = i + dir*(u - 1), jj = j + dir*(v - 1). dir +1 gives the
// inputs an output reads (forward, dw); dir -1 the outputs an input feeds (dx).
template <class F>
inline void dwconv_taps(std::ptrdiff_t i, std::ptrdiff_t j, std::ptrdiff_t G, std::ptrdiff_t dir, F&& f) {
  for (std::ptrdiff_t u = 0; u < 3; ++u) {
    const std::ptrdiff_t ii = i + dir * (u - 1);
    if (ii < 0 || ii >= G) continue;
    for (std::ptrdiff_t v = 0; v < 3; ++v) {
      const std::ptrdiff_t jj = j + dir * (v - 1);
      if (jj < 0 || jj >= G) continue;
      f(u * 3 + v, ii, jj);
    }
  }
}

template <class T>
void dwconv_forward(T* y,          // (B, G, G, D)  overwritten; may not alias x
                    const T* x,    // (B, G, G, D)
                    DwConvParams<T> p, DwConvShape s) {
  dwconv_check(s, "dwconv_forward");
  const std::ptrdiff_t G = s.grid, D = s.dim;
  parallel_for(s.batch * G, 18.0 * double(G * D), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {  // r = b * G + i: one output grid row
      const std::ptrdiff_t b = r / G, i = r % G;
      for (std::ptrdiff_t j = 0; j < G; ++j) {
        T* yt = y + ((b * G + i) * G + j) * D;
        for (std::ptrdiff_t d = 0; d < D; ++d) yt[d] = p.b ? p.b[d] : T(0);
        dwconv_taps(i, j, G, 1, [&](std::ptrdiff_t k, std::ptrdiff_t ii, std::ptrdiff_t jj) {
          const T* xt = x + ((b * G + ii) * G + jj) * D;
          for (std::ptrdiff_t d = 0; d < D; ++d) yt[d] += p.w[d * 9 + k] * xt[d];
        });
      }
    }
  });
}

// Backward of the forward above:
//   dx[b,i,j,d] += sum_{u,v} w[d,u,v] * dy[b, i-u+1, j-v+1, d]     (gathered per input token)
//   dw[d,u,v]   += sum_{b,i,j} dy[b,i,j,d] * x[b, i+u-1, j+v-1, d],  db[d] += sum dy[.., d]
// Parameter sums: channels split over threads, each over every token in order (deterministic).
template <class T>
void dwconv_backward(T* dx,              // (B, G, G, D)  accumulated (+=), or nullptr
                     DwConvGrads<T> g,   // accumulated (+=); members may be nullptr
                     const T* dy,        // (B, G, G, D)
                     const T* x,         // (B, G, G, D)  the forward input
                     DwConvParams<T> p, DwConvShape s) {
  dwconv_check(s, "dwconv_backward");
  const std::ptrdiff_t B = s.batch, G = s.grid, D = s.dim;
  if (dx) {
    parallel_for(B * G, 18.0 * double(G * D), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
      for (std::ptrdiff_t r = r0; r < r1; ++r) {
        const std::ptrdiff_t b = r / G, i = r % G;
        for (std::ptrdiff_t j = 0; j < G; ++j) {
          T* dxt = dx + ((b * G + i) * G + j) * D;
          dwconv_taps(i, j, G, -1, [&](std::ptrdiff_t k, std::ptrdiff_t oi, std::ptrdiff_t oj) {
            const T* dyt = dy + ((b * G + oi) * G + oj) * D;
            for (std::ptrdiff_t d = 0; d < D; ++d) dxt[d] += p.w[d * 9 + k] * dyt[d];
          });
        }
      }
    });
  }
  if (!g.dw && !g.db) return;
  parallel_for(D, 20.0 * double(B * G * G), [&](std::ptrdiff_t d0, std::ptrdiff_t d1) {
    for (std::ptrdiff_t d = d0; d < d1; ++d) {
      T acc[9] = {};
      T accb = 0;
      for (std::ptrdiff_t b = 0; b < B; ++b)
        for (std::ptrdiff_t i = 0; i < G; ++i)
          for (std::ptrdiff_t j = 0; j < G; ++j) {
            const T dyv = dy[((b * G + i) * G + j) * D + d];
            accb += dyv;
            dwconv_taps(i, j, G, 1, [&](std::ptrdiff_t k, std::ptrdiff_t ii, std::ptrdiff_t jj) {
              acc[k] += dyv * x[((b * G + ii) * G + jj) * D + d];
            });
          }
      if (g.dw)
        for (int k = 0; k < 9; ++k) g.dw[d * 9 + k] += acc[k];
      if (g.db) g.db[d] += accb;
    }
  });
}

}  // namespace envit
