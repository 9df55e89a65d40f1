// envit/data/dataset.hpp — an in-memory image classification dataset (uint8 pixels, (N, C, H, W))
// and everything between it and a float batch: per-channel normalisation, seeded augmentation
// (random crop with zero padding, horizontal flip), seeded shuffling, a seeded validation split,
// and make_batch, which assembles a normalised (B, C, H, W) batch without allocating.
// Every random choice is a pure function of (seed, epoch, dataset index) through Philox
// (envit/core/rng.hpp): batches do not depend on thread count or batch order, and a resumed run
// reproduces them from (seed, epoch) alone. Not a data pipeline: no prefetch threads, no decoding.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/core/rng.hpp"
#include "envit/data/channel_stats.hpp"
#include "envit/data/interp.hpp"

namespace envit {

// N images of C x H x W uint8 pixels (row-major, channel planes) and their labels in [0, classes).
struct Dataset {
  std::string name;                      // e.g. "fashion-mnist/train", "idx:DIR/test"
  std::string file;                      // the file or folder the images were read from (for messages)
  std::int64_t n = 0;
  int c = 0, h = 0, w = 0;
  int classes = 0;
  std::vector<std::uint8_t> images;      // (n, c, h, w)
  std::vector<std::int32_t> labels;      // (n)
  std::vector<std::string> class_names;  // (classes) or empty

  std::int64_t image_size() const { return std::int64_t{c} * h * w; }
  const std::uint8_t* image(std::int64_t i) const { return images.data() + i * image_size(); }

  // Throws ShapeError unless the images are c_ x h_ x w_, and ValueError unless every label lies in
  // [0, classes_): what a model of that geometry (`model` names it in messages) can consume. Checked
  // for every split when it is loaded, so a mis-sized split fails before training, not in evaluation.
  void check_fits(int c_, int h_, int w_, int classes_, const std::string& model) const {
    ENVIT_CHECK(c == c_ && h == h_ && w == w_, ShapeError, "dataset '", name, "' has ", c, "x", h, "x", w,
                " images (C x H x W), ", model, " expects ", c_, "x", h_, "x", w_);
    ENVIT_CHECK(images.size() == static_cast<std::size_t>(n * image_size()) && labels.size() == static_cast<std::size_t>(n),
                ShapeError, "dataset '", name, "': ", images.size(), " image bytes and ", labels.size(),
                " labels for ", n, " images of ", image_size(), " bytes");
    for (std::int64_t i = 0; i < n; ++i)
      ENVIT_CHECK(labels[i] >= 0 && labels[i] < classes_, ValueError, "dataset '", name, "': label ", labels[i],
                  " of sample ", i, " is outside [0, ", classes_, "), the classes of ", model);
  }

  // Throws ValueError if sizes are inconsistent or a label is out of range.
  void check() const {
    ENVIT_CHECK(n >= 0 && c > 0 && h > 0 && w > 0 && classes > 0, ValueError, "dataset '", name,
                "': invalid geometry n=", n, " c=", c, " h=", h, " w=", w, " classes=", classes);
    ENVIT_CHECK(images.size() == static_cast<std::size_t>(n * image_size()), ValueError, "dataset '", name,
                "': images hold ", images.size(), " bytes, expected ", n * image_size());
    ENVIT_CHECK(labels.size() == static_cast<std::size_t>(n), ValueError, "dataset '", name, "': ",
                labels.size(), " labels for ", n, " images");
    for (std::int64_t i = 0; i < n; ++i)
      ENVIT_CHECK(labels[i] >= 0 && labels[i] < classes, ValueError, "dataset '", name, "': label ", labels[i],
                  " of sample ", i, " is outside [0, ", classes, ")");
    ENVIT_CHECK(class_names.empty() || class_names.size() == static_cast<std::size_t>(classes), ValueError,
                "dataset '", name, "': ", class_names.size(), " class names for ", classes, " classes");
  }
};

// A copy of the samples idx[0..n_idx) (in that order).
inline Dataset dataset_subset(const Dataset& d, const std::int64_t* idx, std::int64_t n_idx) {
  Dataset s;
  s.name = d.name + "/subset";
  s.file = d.file;
  s.n = n_idx;
  s.c = d.c, s.h = d.h, s.w = d.w, s.classes = d.classes, s.class_names = d.class_names;
  const std::int64_t sz = d.image_size();
  s.images.resize(static_cast<std::size_t>(n_idx * sz));
  s.labels.resize(static_cast<std::size_t>(n_idx));
  for (std::int64_t k = 0; k < n_idx; ++k) {
    ENVIT_CHECK(idx[k] >= 0 && idx[k] < d.n, ValueError, "dataset_subset: index ", idx[k], " at position ", k,
                " is outside [0, ", d.n, ")");
    std::memcpy(s.images.data() + k * sz, d.image(idx[k]), static_cast<std::size_t>(sz));
    s.labels[k] = d.labels[idx[k]];
  }
  return s;
}

// ---- normalisation ---------------------------------------------------------------------------

// Statistics over the samples idx[0..n_idx), or over all samples when idx is null. Sums are exact
// 64-bit integers, so the result does not depend on order or threads.
inline ChannelStats channel_stats(const Dataset& d, const std::int64_t* idx = nullptr, std::int64_t n_idx = -1) {
  if (!idx) n_idx = d.n;
  ENVIT_CHECK(n_idx > 0, ValueError, "channel_stats: dataset '", d.name, "' has no samples to measure");
  const std::int64_t hw = std::int64_t{d.h} * d.w;
  std::vector<std::uint64_t> s1(d.c, 0), s2(d.c, 0);
  for (std::int64_t k = 0; k < n_idx; ++k) {
    std::int64_t i = idx ? idx[k] : k;
    ENVIT_CHECK(i >= 0 && i < d.n, ValueError, "channel_stats: index ", i, " is outside [0, ", d.n, ")");
    const std::uint8_t* img = d.image(i);
    for (int ch = 0; ch < d.c; ++ch) {
      std::uint64_t a = 0, b = 0;
      for (std::int64_t p = 0; p < hw; ++p) {
        std::uint64_t v = img[ch * hw + p];
        a += v;
        b += v * v;
      }
      s1[ch] += a;
      s2[ch] += b;
    }
  }
  ChannelStats st;
  const double cnt = static_cast<double>(n_idx) * static_cast<double>(hw);
  for (int ch = 0; ch < d.c; ++ch) {
    double m = static_cast<double>(s1[ch]) / cnt;                      // in pixel units
    double var = static_cast<double>(s2[ch]) / cnt - m * m;
    st.mean.push_back(m / 255.0);
    st.std.push_back(std::sqrt(std::max(var, 0.0)) / 255.0);
  }
  return st;
}

// Maps (channel, pixel) to (pixel/255 - mean[c]) / std[c] through a (C, 256) table computed in
// double: every path (batch, single image, padding) produces bit-identical floats.
struct Normalizer {
  int channels = 0;
  std::vector<float> lut;  // (channels, 256)

  Normalizer() = default;
  Normalizer(const std::vector<double>& mean, const std::vector<double>& std) {
    ENVIT_CHECK(!mean.empty() && mean.size() == std.size(), ValueError, "Normalizer: ", mean.size(),
                " means for ", std.size(), " standard deviations");
    channels = static_cast<int>(mean.size());
    lut.resize(static_cast<std::size_t>(channels) * 256);
    for (int c = 0; c < channels; ++c) {
      ENVIT_CHECK(std[c] > 0 && std::isfinite(std[c]) && std::isfinite(mean[c]), ValueError,
                  "Normalizer: channel ", c, " has mean ", mean[c], " and std ", std[c], " (std must be > 0)");
      for (int v = 0; v < 256; ++v) {
        lut[c * 256 + v] = static_cast<float>((v / 255.0 - mean[c]) / std[c]);
        ENVIT_CHECK(std::isfinite(lut[c * 256 + v]), ValueError, "Normalizer: channel ", c, " maps pixel ", v, " to ",
                    lut[c * 256 + v], " (mean ", mean[c], ", std ", std[c], "): not finite in float");
      }
    }
  }
  explicit Normalizer(const ChannelStats& s) : Normalizer(s.mean, s.std) {}
  // pixel/255 for every channel (no centring).
  static Normalizer identity(int channels) {
    return Normalizer(std::vector<double>(channels, 0.0), std::vector<double>(channels, 1.0));
  }
  float operator()(int c, std::uint8_t v) const { return lut[c * 256 + v]; }
};

// ---- augmentation ----------------------------------------------------------------------------

// Random crop: pad the image with `crop_pad` black pixels (value 0, before normalisation, as
// torchvision's RandomCrop(padding=P) ahead of Normalize) on every side and take an H x W window at a
// uniform offset in [0, 2P]^2. Then, if hflip, mirror left-right with probability 1/2.
// With rrc_min_scale > 0 the padded crop is replaced by torchvision's RandomResizedCrop(scale =
// (rrc_min_scale, 1), ratio = (3/4, 4/3)): a window of that area share and aspect, resized back to
// H x W bilinearly (data/resize.hpp's arithmetic) before normalisation.
struct Augment {
  int crop_pad = 0;
  bool hflip = false;
  double rrc_min_scale = 0;
};

struct AugmentDraw {
  int dy = 0, dx = 0;  // window offset in the padded image, each in [0, 2 * crop_pad]
  bool flip = false;
};

// The random choices for dataset sample `index` at `epoch`: one Philox block keyed by the seed.
inline AugmentDraw augment_draw(const Augment& a, std::uint64_t seed, std::uint32_t epoch, std::int64_t index) {
  const auto u = static_cast<std::uint64_t>(index);
  Philox4 r = philox4x32({epoch, static_cast<std::uint32_t>(u), static_cast<std::uint32_t>(u >> 32),
                          static_cast<std::uint32_t>(RngStream::augment)}, seed);
  const auto span = static_cast<std::uint64_t>(2 * a.crop_pad + 1);
  AugmentDraw d;
  d.dy = static_cast<int>((std::uint64_t{r[0]} * span) >> 32);  // bias < span / 2^32
  d.dx = static_cast<int>((std::uint64_t{r[1]} * span) >> 32);
  d.flip = a.hflip && (r[2] >> 31) != 0;
  return d;
}

// One image: out(c, y, x) = norm(c, padded(c, y + dy, x' + dx)), x' = flip ? W-1-x : x, where
// padded(c, i, j) = img(c, i - pad, j - pad) inside the image and 0 outside (crop, then flip).
inline void transform_image(float* out,               // (C, H, W)  overwritten
                            const std::uint8_t* img,  // (C, H, W)
                            int C, int H, int W, int pad, AugmentDraw d, const Normalizer& norm) {
  for (int c = 0; c < C; ++c) {
    const float* lut = norm.lut.data() + c * 256;
    const std::uint8_t* src = img + static_cast<std::ptrdiff_t>(c) * H * W;
    float* dst = out + static_cast<std::ptrdiff_t>(c) * H * W;
    for (int y = 0; y < H; ++y) {
      const int sy = y + d.dy - pad;
      float* row = dst + static_cast<std::ptrdiff_t>(y) * W;
      if (sy < 0 || sy >= H) {
        std::fill(row, row + W, lut[0]);
        continue;
      }
      const std::uint8_t* srow = src + static_cast<std::ptrdiff_t>(sy) * W;
      for (int x = 0; x < W; ++x) {
        const int sx = (d.flip ? W - 1 - x : x) + d.dx - pad;
        row[x] = (sx >= 0 && sx < W) ? lut[srow[sx]] : lut[0];
      }
    }
  }
}

// The RandomResizedCrop window (top, left, height, width) of sample `index` at `epoch`, as
// torchvision's get_params draws it: up to 10 tries of area share U(min_scale, 1) and log-uniform
// aspect in [3/4, 4/3]; otherwise the whole image clamped to that aspect range, centred.
struct CropBox { int top, left, h, w; };
inline CropBox rrc_draw(double min_scale, int H, int W, std::uint64_t seed, std::uint32_t epoch, std::int64_t index) {
  const auto u = static_cast<std::uint64_t>(index);
  const double area = double(H) * W, lr0 = std::log(3.0 / 4.0), lr1 = std::log(4.0 / 3.0);
  for (std::uint32_t k = 0; k < 10; ++k) {
    Philox4 r = philox4x32({epoch, static_cast<std::uint32_t>(u), static_cast<std::uint32_t>(u >> 32),
                            (static_cast<std::uint32_t>(RngStream::augment) << 8) | (k + 1)}, seed);
    const double target = area * (min_scale + (1.0 - min_scale) * uniform01(r[0]));
    const double ratio = std::exp(lr0 + (lr1 - lr0) * uniform01(r[1]));
    const int w = static_cast<int>(std::lround(std::sqrt(target * ratio)));
    const int h = static_cast<int>(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && w <= W && h > 0 && h <= H)
      return {static_cast<int>((std::uint64_t{r[2]} * std::uint64_t(H - h + 1)) >> 32),
              static_cast<int>((std::uint64_t{r[3]} * std::uint64_t(W - w + 1)) >> 32), h, w};
  }
  const double in_ratio = double(W) / H;
  int w = W, h = H;
  if (in_ratio < 3.0 / 4.0) h = static_cast<int>(std::lround(w / (3.0 / 4.0)));
  else if (in_ratio > 4.0 / 3.0) w = static_cast<int>(std::lround(h * (4.0 / 3.0)));
  return {(H - h) / 2, (W - w) / 2, h, w};
}

// One image through RandomResizedCrop + flip: the box of img resized to (H, W) bilinearly
// (F.interpolate(align_corners=False) on the crop), mirrored if d.flip, then normalised.
inline void transform_image_rrc(float* out,               // (C, H, W)  overwritten
                                const std::uint8_t* img,  // (C, H, W)
                                int C, int H, int W, CropBox box, bool flip, const Normalizer& norm) {
  for (int c = 0; c < C; ++c) {
    const float* lut = norm.lut.data() + c * 256;
    const float a = (lut[255] - lut[0]) / 255.0f, b = lut[0];  // norm(v) = a * v + b: affine in the pixel value
    const std::uint8_t* src = img + static_cast<std::ptrdiff_t>(c) * H * W;
    for (int y = 0; y < H; ++y) {
      const LinearTap ty = linear_tap(y, box.h, H);
      const std::uint8_t* r0 = src + static_cast<std::ptrdiff_t>(box.top + ty.i0) * W + box.left;
      const std::uint8_t* r1 = src + static_cast<std::ptrdiff_t>(box.top + ty.i1) * W + box.left;
      float* row = out + (static_cast<std::ptrdiff_t>(c) * H + y) * W;
      for (int x = 0; x < W; ++x) {
        const LinearTap tx = linear_tap(x, box.w, W);
        const float v = (r0[tx.i0] * tx.w0 + r0[tx.i1] * tx.w1) * ty.w0 + (r1[tx.i0] * tx.w0 + r1[tx.i1] * tx.w1) * ty.w1;
        row[flip ? W - 1 - x : x] = a * v + b;
      }
    }
  }
}

// ---- batches -----------------------------------------------------------------------------------

// Fills out with the normalised, augmented images of dataset samples indices[0..B) and labels with
// their labels. Sample b's augmentation depends only on (seed, epoch, indices[b]). Allocates nothing;
// parallel over samples. Throws ValueError for an index out of range or a channel-count mismatch.
inline void make_batch(float* out,                   // (B, C, H, W)  overwritten
                       std::int32_t* labels,         // (B)           overwritten; may be null
                       const Dataset& d,
                       const std::int64_t* indices,  // (B) dataset indices
                       int B, const Normalizer& norm, const Augment& aug, std::uint64_t seed,
                       std::uint32_t epoch) {
  ENVIT_CHECK(B >= 0, ValueError, "make_batch: negative batch size ", B);
  ENVIT_CHECK(norm.channels == d.c, ValueError, "make_batch: normalizer has ", norm.channels,
              " channels, dataset '", d.name, "' has ", d.c);
  ENVIT_CHECK(aug.crop_pad >= 0 && aug.crop_pad <= std::min(d.h, d.w), ValueError, "make_batch: crop_pad ",
              aug.crop_pad, " outside [0, ", std::min(d.h, d.w), "]");
  for (int b = 0; b < B; ++b)
    ENVIT_CHECK(indices[b] >= 0 && indices[b] < d.n, ValueError, "make_batch: index ", indices[b],
                " at batch position ", b, " is outside [0, ", d.n, ") of dataset '", d.name, "'");
  const std::int64_t sz = d.image_size();
  parallel_for(B, 4.0 * static_cast<double>(sz), [&](std::ptrdiff_t b0, std::ptrdiff_t b1) {
    for (std::ptrdiff_t b = b0; b < b1; ++b) {
      const std::int64_t i = indices[b];
      const AugmentDraw draw = augment_draw(aug, seed, epoch, i);
      if (aug.rrc_min_scale > 0)
        transform_image_rrc(out + b * sz, d.image(i), d.c, d.h, d.w, rrc_draw(aug.rrc_min_scale, d.h, d.w, seed, epoch, i),
                            draw.flip, norm);
      else
        transform_image(out + b * sz, d.image(i), d.c, d.h, d.w, aug.crop_pad, draw, norm);
      if (labels) labels[b] = d.labels[i];
    }
  });
}

// ---- shuffling and splits ----------------------------------------------------------------------

// Permutes idx[0..n) in place (Fisher-Yates) with the stream (seed, shuffle, epoch).
inline void shuffle_indices(std::int64_t* idx, std::int64_t n, std::uint64_t seed, std::uint32_t epoch) {
  ENVIT_CHECK(n >= 0 && n <= std::int64_t{UINT32_MAX}, ValueError, "shuffle_indices: n = ", n, " outside [0, 2^32)");
  CounterRng r(seed, RngStream::shuffle, epoch);
  for (std::int64_t i = n - 1; i > 0; --i) std::swap(idx[i], idx[r.below(static_cast<std::uint32_t>(i + 1))]);
}

// out[0..n) = a seeded permutation of 0..n-1 for this epoch (the order of one training epoch).
inline void epoch_permutation(std::int64_t* out, std::int64_t n, std::uint64_t seed, std::uint32_t epoch) {
  std::iota(out, out + n, std::int64_t{0});
  shuffle_indices(out, n, seed, epoch);
}

// A validation split carved out of a training set: disjoint, covering 0..n-1, each part sorted.
struct Split {
  std::vector<std::int64_t> train, val;
};

// The n_val validation samples are the first n_val of a permutation seeded by (seed, split):
// the same (n, n_val, seed) always give the same split.
inline Split split_train_val(std::int64_t n, std::int64_t n_val, std::uint64_t seed) {
  ENVIT_CHECK(n_val >= 0 && n_val <= n, ValueError, "split_train_val: n_val = ", n_val, " outside [0, ", n, "]");
  ENVIT_CHECK(n <= std::int64_t{UINT32_MAX}, ValueError, "split_train_val: n = ", n, " too large");
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), std::int64_t{0});
  CounterRng r(seed, RngStream::split, 0);
  for (std::int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[r.below(static_cast<std::uint32_t>(i + 1))]);
  Split s;
  s.val.assign(p.begin(), p.begin() + n_val);
  s.train.assign(p.begin() + n_val, p.end());
  std::sort(s.val.begin(), s.val.end());
  std::sort(s.train.begin(), s.train.end());
  return s;
}

// How a training run carved its data: of the training set, the first `skip` samples are dropped,
// the next `subset` kept (0: all that remain), and of those only the labels in `classes` (empty:
// every label); n_val of the result form the validation split of split_train_val(.., seed). A
// checkpoint records it (to_map(): data.skip, data.subset, data.classes, data.val, train.seed) so
// evaluation can rebuild the same validation samples (from_map, samples, apply).
struct SplitSpec {
  std::int64_t skip = 0;
  std::int64_t subset = 0;
  std::vector<int> classes;
  std::int64_t n_val = 0;
  std::uint64_t seed = 0;

  std::map<std::string, std::string> to_map() const {
    std::string cl;
    for (int c : classes) cl += (cl.empty() ? "" : ",") + std::to_string(c);
    return {{"data.skip", std::to_string(skip)}, {"data.subset", std::to_string(subset)}, {"data.classes", cl},
            {"data.val", std::to_string(n_val)}, {"train.seed", std::to_string(seed)}};
  }
  // Missing keys read as 0 (classes: empty); `where` names the source in error messages.
  static SplitSpec from_map(const std::map<std::string, std::string>& m, const std::string& where) {
    auto parse = [&](const char* k, const std::string& v) -> std::int64_t {
      std::size_t pos = 0;
      long long x = -1;
      try { x = std::stoll(v, &pos); } catch (const std::exception&) { pos = std::string::npos; }
      ENVIT_CHECK(pos == v.size() && x >= 0, ValueError, where, ": metadata ", k,
                  " must be a non-negative integer, got '", v, "'");
      return x;
    };
    auto get = [&](const char* k) -> std::int64_t {
      auto it = m.find(k);
      return it == m.end() ? 0 : parse(k, it->second);
    };
    SplitSpec s;
    s.skip = get("data.skip");
    s.subset = get("data.subset");
    s.n_val = get("data.val");
    s.seed = std::uint64_t(get("train.seed"));
    if (auto it = m.find("data.classes"); it != m.end() && !it->second.empty()) {
      std::stringstream ss(it->second);
      std::string item;
      while (std::getline(ss, item, ',')) s.classes.push_back(int(parse("data.classes", item)));
    }
    return s;
  }
  // The samples of `d` the run uses (indices into d, ascending): skip, then subset, then classes.
  std::vector<std::int64_t> samples(const Dataset& d) const {
    ENVIT_CHECK(skip >= 0 && subset >= 0 && skip + subset <= d.n && skip < d.n, ValueError, "split: skip ", skip,
                " and subset ", subset, " do not fit in the ", d.n, " samples of '", d.name, "'");
    for (int c : classes)
      ENVIT_CHECK(c >= 0 && c < d.classes, ValueError, "split: class ", c, " is outside [0, ", d.classes, ") of '",
                  d.name, "'");
    const std::int64_t end = subset > 0 ? skip + subset : d.n;
    std::vector<std::int64_t> idx;
    for (std::int64_t i = skip; i < end; ++i)
      if (classes.empty() || std::find(classes.begin(), classes.end(), d.labels[std::size_t(i)]) != classes.end())
        idx.push_back(i);
    ENVIT_CHECK(!idx.empty(), ValueError, "split: skip ", skip, ", subset ", subset,
                " and the classes chosen select no sample of '", d.name, "'");
    return idx;
  }
  // The split of the samples that samples(d) selects (indices into that selection).
  Split apply(const Dataset& d) const { return split_train_val(std::int64_t(samples(d).size()), n_val, seed); }
  // The same for a training set of n samples, known by its size only (no skip, no classes).
  Split apply(std::int64_t n) const {
    ENVIT_CHECK(skip == 0 && classes.empty(), ValueError, "split: skip and classes need the dataset (apply(d))");
    ENVIT_CHECK(subset <= n, ValueError, "split: subset of ", subset, " samples from a set of ", n);
    return split_train_val(subset > 0 ? subset : n, n_val, seed);
  }
};

}  // namespace envit
