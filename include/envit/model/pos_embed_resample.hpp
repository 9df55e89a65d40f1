// envit/model/pos_embed_resample.hpp — resamples a learned position embedding to another patch
// grid, as timm's resample_abs_pos_embed does: the class token's row is kept, the G x G grid rows
// are treated as a D-channel G x G image and resized to G' x G' by bicubic interpolation
// (torch.nn.functional.interpolate(mode='bicubic', align_corners=False, antialias=False): cubic
// convolution with A = -0.75, source index scale * (i + 0.5) - 0.5 unclamped, taps clamped to the
// border). Computed in double, rounded once. Square grids only; not a general image resizer
// (data/resize.hpp is the input pipeline's bilinear one).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "envit/core/error.hpp"

namespace envit {

namespace detail {
// Source taps and weights of one output index along one axis (PyTorch's compute_indices_weights_cubic).
struct CubicTaps { int idx[4]; double w[4]; };
inline CubicTaps cubic_taps(int out_i, int in_size, int out_size) {
  constexpr double A = -0.75;
  const double scale = static_cast<double>(static_cast<float>(in_size) / static_cast<float>(out_size));
  const double src = scale * (out_i + 0.5) - 0.5;
  const double f = std::floor(src);
  const double t = src - f;
  auto conv1 = [](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };          // |x| <= 1
  auto conv2 = [](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };    // 1 < |x| < 2
  CubicTaps c;
  c.w[0] = conv2(t + 1);
  c.w[1] = conv1(t);
  c.w[2] = conv1(1 - t);
  c.w[3] = conv2(2 - t);
  for (int k = 0; k < 4; ++k) {
    int i = static_cast<int>(f) - 1 + k;
    c.idx[k] = i < 0 ? 0 : i > in_size - 1 ? in_size - 1 : i;
  }
  return c;
}
}  // namespace detail

// out = [in's class row; bicubic(in's G x G grid rows -> G2 x G2)]. G2 == G copies.
template <class T>
void pos_embed_resample(T* out,       // (1 + G2*G2, D)  overwritten
                        const T* in,  // (1 + G*G, D)
                        int G, int G2, int D) {
  ENVIT_CHECK(G > 0 && G2 > 0 && D > 0, ShapeError, "pos_embed_resample: grid ", G, " -> ", G2, ", dim ", D,
              " (all must be positive)");
  for (int d = 0; d < D; ++d) out[d] = in[d];
  std::vector<detail::CubicTaps> ty(static_cast<std::size_t>(G2));
  for (int i = 0; i < G2; ++i) ty[i] = detail::cubic_taps(i, G, G2);
  const T* grid = in + D;
  T* og = out + D;
  std::vector<double> acc(static_cast<std::size_t>(D));
  for (int y = 0; y < G2; ++y)
    for (int x = 0; x < G2; ++x) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int a = 0; a < 4; ++a) {
        double rowacc_w = ty[y].w[a];
        for (int b = 0; b < 4; ++b) {
          const double w = rowacc_w * ty[x].w[b];
          const T* src = grid + (static_cast<std::ptrdiff_t>(ty[y].idx[a]) * G + ty[x].idx[b]) * D;
          for (int d = 0; d < D; ++d) acc[d] += w * static_cast<double>(src[d]);
        }
      }
      T* dst = og + (static_cast<std::ptrdiff_t>(y) * G2 + x) * D;
      for (int d = 0; d < D; ++d) dst[d] = static_cast<T>(acc[d]);
    }
}

// The side of a square patch grid with `grid_tokens` tokens (tokens minus the class token), or -1.
inline int pos_embed_grid_side(std::int64_t grid_tokens) {
  if (grid_tokens <= 0) return -1;
  auto s = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(grid_tokens))));
  return s * s == grid_tokens ? static_cast<int>(s) : -1;
}

}  // namespace envit
