// envit/data/interp.hpp — the bilinear tap of one output index along one axis, as PyTorch's
// compute_indices_weights_linear computes it for F.interpolate(mode='bilinear', align_corners=False)
// in float: source index max(scale * (i + 0.5) - 0.5, 0) with scale = in / out, lower tap its
// integer part, upper tap the next one clamped to the border. Shared by data/resize.hpp and the
// random resized crop in data/dataset.hpp.
#pragma once
#include <algorithm>

namespace envit {

struct LinearTap { int i0, i1; float w0, w1; };
inline LinearTap linear_tap(int out_i, int in_size, int out_size) {
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  const float src = std::max(scale * (static_cast<float>(out_i) + 0.5f) - 0.5f, 0.0f);
  const int i0 = static_cast<int>(src);
  const float l1 = std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
  return {i0, i0 + (i0 < in_size - 1 ? 1 : 0), 1.0f - l1, l1};
}

}  // namespace envit
