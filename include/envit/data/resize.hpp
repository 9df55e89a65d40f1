// envit/data/resize.hpp — image resizing for the input pipeline: bilinear interpolation exactly as
// torch.nn.functional.interpolate(mode='bilinear', align_corners=False, antialias=False) computes
// it in float (source index max(scale * (i + 0.5) - 0.5, 0), scale = in / out in float, the upper
// tap clamped to the border, rows interpolated first along x then combined along y), a uint8
// version that rounds half to even and clamps (as torchvision does for uint8 tensors), grayscale
// to 3 channels, and a whole-dataset resize. Not antialiased: downscaling by large factors aliases,
// as F.interpolate does.
// Letters: C channels, H x W input, OH x OW output.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/data/dataset.hpp"
#include "envit/data/interp.hpp"

namespace envit {

// out(c, y, x) = wy0 * (wx0 in(c,y0,x0) + wx1 in(c,y0,x1)) + wy1 * (wx0 in(c,y1,x0) + wx1 in(c,y1,x1)).
inline void resize_bilinear(float* out,       // (C, OH, OW)  overwritten
                            const float* in,  // (C, H, W)
                            int C, int H, int W, int OH, int OW) {
  ENVIT_CHECK(C > 0 && H > 0 && W > 0 && OH > 0 && OW > 0, ShapeError, "resize_bilinear: ", C, "x", H, "x", W,
              " -> ", OH, "x", OW, " (all sizes must be positive)");
  std::vector<LinearTap> tx(static_cast<std::size_t>(OW));
  for (int x = 0; x < OW; ++x) tx[x] = linear_tap(x, W, OW);
  for (int c = 0; c < C; ++c) {
    const float* src = in + static_cast<std::ptrdiff_t>(c) * H * W;
    float* dst = out + static_cast<std::ptrdiff_t>(c) * OH * OW;
    for (int y = 0; y < OH; ++y) {
      const LinearTap ty = linear_tap(y, H, OH);
      const float* r0 = src + static_cast<std::ptrdiff_t>(ty.i0) * W;
      const float* r1 = src + static_cast<std::ptrdiff_t>(ty.i1) * W;
      for (int x = 0; x < OW; ++x) {
        const LinearTap& t = tx[x];
        const float a = r0[t.i0] * t.w0 + r0[t.i1] * t.w1;
        const float b = r1[t.i0] * t.w0 + r1[t.i1] * t.w1;
        dst[static_cast<std::ptrdiff_t>(y) * OW + x] = a * ty.w0 + b * ty.w1;
      }
    }
  }
}

// Float pixel value to uint8: round half to even, clamp to [0, 255].
inline std::uint8_t pixel_u8(float v) {
  float r = std::nearbyint(v);  // default rounding mode: to nearest, ties to even
  return static_cast<std::uint8_t>(std::min(std::max(r, 0.0f), 255.0f));
}

// uint8 resize through resize_bilinear on the pixel values. `scratch` is resized as needed.
inline void resize_bilinear_u8(std::uint8_t* out,       // (C, OH, OW)  overwritten
                               const std::uint8_t* in,  // (C, H, W)
                               int C, int H, int W, int OH, int OW, std::vector<float>& scratch) {
  const std::size_t n_in = std::size_t(C) * H * W, n_out = std::size_t(C) * OH * OW;
  scratch.resize(n_in + n_out);
  for (std::size_t i = 0; i < n_in; ++i) scratch[i] = in[i];
  resize_bilinear(scratch.data() + n_in, scratch.data(), C, H, W, OH, OW);
  for (std::size_t i = 0; i < n_out; ++i) out[i] = pixel_u8(scratch[n_in + i]);
}

// A copy of `d` with every image resized to size x size (bilinear, uint8) and, when d has one
// channel and `channels` is 3, the gray plane repeated into three. Same labels and names.
inline Dataset dataset_resize(const Dataset& d, int size, int channels) {
  ENVIT_CHECK(size > 0, ValueError, "dataset_resize: size ", size, " must be positive");
  ENVIT_CHECK(channels == d.c || (d.c == 1 && channels == 3), ValueError, "dataset '", d.name, "' has ", d.c,
              " channels; the model needs ", channels, " (only 1 -> 3 is converted)");
  Dataset o;
  o.name = d.name;
  o.file = d.file;
  o.n = d.n, o.c = channels, o.h = size, o.w = size, o.classes = d.classes;
  o.labels = d.labels;
  o.class_names = d.class_names;
  const std::int64_t plane = std::int64_t{size} * size, out_sz = plane * channels;
  o.images.resize(static_cast<std::size_t>(d.n * out_sz));
  parallel_for(static_cast<std::ptrdiff_t>(d.n), 8.0 * static_cast<double>(out_sz), [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    std::vector<float> scratch;
    for (std::ptrdiff_t i = i0; i < i1; ++i) {
      std::uint8_t* dst = o.images.data() + i * out_sz;
      if (d.h == size && d.w == size) std::memcpy(dst, d.image(i), static_cast<std::size_t>(plane * d.c));
      else resize_bilinear_u8(dst, d.image(i), d.c, d.h, d.w, size, size, scratch);
      for (int c = d.c; c < channels; ++c) std::memcpy(dst + c * plane, dst, static_cast<std::size_t>(plane));
    }
  });
  return o;
}

}  // namespace envit
