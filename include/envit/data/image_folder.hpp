// envit/data/image_folder.hpp — a classification dataset from a folder of images, the layout of
// torchvision's ImageFolder:
//   DIR/train/<class>/*  with  DIR/val/<class>/*  or  DIR/test/<class>/*   (val preferred), or
//   DIR/train/<class>/*  alone, or  DIR/<class>/*:  a seeded split of one tree (val_fraction).
// Classes are the sorted sub-folder names of the training tree (the evaluation tree must have the
// same). PNG, JPEG and BMP files (by extension, any case) are decoded once with stb_image (Debian
// libstb-dev) and kept in memory as uint8 at the training size: training images resized so the
// shorter side is `size` and centre-cropped to size x size (random resized crops are then taken
// from that at batch time, see data/dataset.hpp), evaluation images resized so the shorter side is
// round(size / crop_fraction) and centre-cropped to size x size (torchvision's Resize + CenterCrop).
// Grayscale and RGBA images are converted to the requested channel count (1 or 3).
// image_folder_probe reads only the headers: the size the images share and whether all are grey,
// so `envit train` can train at the images' own size and channel count.
// Errors (IoError) name the file: unreadable or truncated images, a class folder without images,
// an evaluation class the training tree lacks, an empty split.
// Not done: an on-disk cache, lazy decoding, other image formats (GIF, TIFF, WebP).
#pragma once
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#ifndef STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC          // every translation unit has its own private copy: header-only
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#include <stb/stb_image.h>
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "envit/data/image_guard.hpp"
#include "envit/core/error.hpp"
#include "envit/core/rng.hpp"
#include "envit/data/dataset.hpp"
#include "envit/data/resize.hpp"
#include "envit/io/file.hpp"

namespace envit {

struct ImageFolderOptions {
  int size = 224;               // training / evaluation image side
  int channels = 3;             // 1 or 3
  double crop_fraction = 0.875; // evaluation: centre crop of this fraction of the resized image
  double val_fraction = 0.1;    // one tree: share held out for evaluation (seeded)
  std::uint64_t seed = 0;       // the split's seed
};

struct ImageFolderData {
  Dataset train, eval;
  std::string eval_name;  // "val", "test" or "split"
};

// One image file decoded to `channels` planes (C, H, W). Throws IoError naming the file, also for
// an image of more than max_pixels pixels (checked from its header, before decoding).
inline constexpr std::int64_t kMaxImagePixels = std::int64_t{1} << 24;  // 4096 x 4096
struct DecodedImage { int h = 0, w = 0, c = 0; std::vector<std::uint8_t> pixels; };
namespace detail {
// The bytes of an image file: IoError naming it when it is empty or 2 GiB or more.
inline std::vector<unsigned char> image_file_bytes(const std::string& path) {
  io::InFile f(path);
  ENVIT_CHECK(f.size() > 0, IoError, "image '", path, "': file is empty");
  ENVIT_CHECK(f.size() < (std::uint64_t{1} << 31), IoError, "image '", path, "': ", f.size(), " bytes is too large");
  std::vector<unsigned char> bytes(static_cast<std::size_t>(f.size()));
  f.read_exact(bytes.data(), bytes.size(), 0, "the image");
  return bytes;
}
}  // namespace detail
inline DecodedImage image_decode(const std::string& path, int channels, std::int64_t max_pixels = kMaxImagePixels) {
  std::vector<unsigned char> bytes = detail::image_file_bytes(path);
  image_bytes_check(bytes.data(), bytes.size(), path);  // inputs stb_image would mishandle
  int w = 0, h = 0, n = 0;
  // A few bytes can announce a huge image that stb_image then decodes in full (minutes): refuse
  // more than max_pixels before decoding.
  if (stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &n))
    ENVIT_CHECK(std::int64_t(w) * h <= max_pixels, IoError, "image '", path, "': ", w, "x", h,
                " pixels is more than the ", max_pixels, " envit decodes");
  unsigned char* p = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &n, channels);
  ENVIT_CHECK(p != nullptr, IoError, "image '", path, "': cannot decode (", stbi_failure_reason(),
              "): unreadable, truncated or not a PNG/JPEG/BMP file");
  DecodedImage d;
  d.h = h, d.w = w, d.c = channels;
  d.pixels.resize(std::size_t(h) * w * channels);
  for (int y = 0; y < h; ++y)  // interleaved (H, W, C) -> planes (C, H, W)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c)
        d.pixels[(std::size_t(c) * h + y) * w + x] = p[(std::size_t(y) * w + x) * channels + c];
  stbi_image_free(p);
  return d;
}

// torchvision's Resize(shorter) + CenterCrop(size) on a (C, H, W) uint8 image.
inline void resize_center_crop(std::uint8_t* out,  // (C, size, size)  overwritten
                               const DecodedImage& img, int shorter, int size, std::vector<float>& scratch) {
  const bool wide = img.w >= img.h;
  const int nh = wide ? shorter : static_cast<int>(static_cast<double>(shorter) * img.h / img.w);
  const int nw = wide ? static_cast<int>(static_cast<double>(shorter) * img.w / img.h) : shorter;
  std::vector<std::uint8_t> tmp(std::size_t(img.c) * nh * nw);
  resize_bilinear_u8(tmp.data(), img.pixels.data(), img.c, img.h, img.w, nh, nw, scratch);
  const int top = static_cast<int>(std::lround((nh - size) / 2.0)), left = static_cast<int>(std::lround((nw - size) / 2.0));
  for (int c = 0; c < img.c; ++c)
    for (int y = 0; y < size; ++y) {
      const int sy = std::clamp(top + y, 0, nh - 1);
      for (int x = 0; x < size; ++x)
        out[(std::size_t(c) * size + y) * size + x] = tmp[(std::size_t(c) * nh + sy) * nw + std::clamp(left + x, 0, nw - 1)];
    }
}

namespace detail {
inline bool image_ext(const std::filesystem::path& p) {
  std::string e = p.extension().string();
  for (char& ch : e) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp";
}
// Sorted class folders of `root` and, per class, its sorted image files.
struct FolderTree { std::vector<std::string> classes; std::vector<std::vector<std::string>> files; };
inline FolderTree folder_tree(const std::string& root) {
  namespace fs = std::filesystem;
  FolderTree t;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory() && e.path().filename().string()[0] != '.') t.classes.push_back(e.path().filename().string());
  ENVIT_CHECK(!ec, IoError, "image folder '", root, "': ", ec.message());
  std::sort(t.classes.begin(), t.classes.end());
  ENVIT_CHECK(!t.classes.empty(), IoError, "image folder '", root, "': no class sub-folders (expected ", root,
              "/<class>/<image>)");
  for (const std::string& c : t.classes) {
    std::vector<std::string> f;
    for (const auto& e : fs::directory_iterator(root + "/" + c))
      if (e.is_regular_file() && image_ext(e.path())) f.push_back(e.path().string());
    std::sort(f.begin(), f.end());
    ENVIT_CHECK(!f.empty(), IoError, "image folder '", root, "': class folder '", c,
                "' has no images (.png, .jpg, .jpeg, .bmp)");
    t.files.push_back(std::move(f));
  }
  return t;
}
// The training tree and the evaluation tree ("" for a seeded split of the training tree) of `dir`.
struct FolderRoots { std::string train, eval, eval_name; };
inline FolderRoots folder_roots(const std::string& dir) {
  namespace fs = std::filesystem;
  ENVIT_CHECK(fs::is_directory(dir), IoError, "image folder '", dir, "': not a directory");
  FolderRoots r{fs::is_directory(dir + "/train") ? dir + "/train" : dir, "", "split"};
  if (r.train != dir)  // DIR/train/... : DIR/val or DIR/test is the evaluation tree when present
    for (const char* s : {"val", "test"})
      if (fs::is_directory(dir + "/" + s) && r.eval.empty()) r.eval = dir + "/" + s, r.eval_name = s;
  return r;
}
struct FolderItem { std::string path; std::int32_t label; };
inline Dataset folder_decode(const std::string& name, const std::string& root, const std::vector<FolderItem>& items,
                             const std::vector<std::string>& classes, const ImageFolderOptions& o, bool train) {
  ENVIT_CHECK(!items.empty(), IoError, "image folder '", name, "': the split is empty");
  Dataset d;
  d.name = name;
  d.file = root;
  d.n = static_cast<std::int64_t>(items.size());
  d.c = o.channels, d.h = o.size, d.w = o.size;
  d.classes = static_cast<int>(classes.size());
  d.class_names = classes;
  const std::int64_t sz = d.image_size();
  d.images.resize(static_cast<std::size_t>(d.n * sz));
  d.labels.resize(items.size());
  const int shorter = train ? o.size : static_cast<int>(std::lround(o.size / o.crop_fraction));
  std::vector<std::string> errors(items.size());
  parallel_for(static_cast<std::ptrdiff_t>(items.size()), 1e6, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    std::vector<float> scratch;
    for (std::ptrdiff_t i = i0; i < i1; ++i) {
      try {
        DecodedImage img = image_decode(items[i].path, o.channels);
        resize_center_crop(d.images.data() + i * sz, img, shorter, o.size, scratch);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
      d.labels[i] = items[i].label;
    }
  });
  for (const std::string& e : errors) ENVIT_CHECK(e.empty(), IoError, e);
  return d;
}
}  // namespace detail

// What the images of a folder (both trees) are, from their headers, without decoding them: the
// size they share and whether every one is grey-scale (one channel, or grey + alpha). When two
// images differ in size, `other` names the first that differs from `first`.
struct ImageFolderProbe {
  std::int64_t files = 0;
  std::string first, other;        // paths
  int h = 0, w = 0;                // first's size
  int other_h = 0, other_w = 0;    // other's size (other non-empty)
  bool grey = true;
  bool same_size() const { return other.empty(); }
};
inline ImageFolderProbe image_folder_probe(const std::string& dir) {
  const detail::FolderRoots r = detail::folder_roots(dir);
  ImageFolderProbe p;
  for (const std::string& root : {r.train, r.eval}) {
    if (root.empty()) continue;
    const detail::FolderTree t = detail::folder_tree(root);
    for (const auto& files : t.files)
      for (const std::string& f : files) {
        const std::vector<unsigned char> bytes = detail::image_file_bytes(f);
        int w = 0, h = 0, n = 0;
        ENVIT_CHECK(stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &n), IoError,
                    "image '", f, "': cannot read its header (", stbi_failure_reason(),
                    "): unreadable, truncated or not a PNG/JPEG/BMP file");
        if (p.files++ == 0) p.first = f, p.h = h, p.w = w;
        else if ((h != p.h || w != p.w) && p.other.empty()) p.other = f, p.other_h = h, p.other_w = w;
        p.grey = p.grey && n <= 2;
      }
  }
  return p;
}

inline ImageFolderData image_folder_load(const std::string& dir, const ImageFolderOptions& o) {
  ENVIT_CHECK(o.size > 0 && (o.channels == 1 || o.channels == 3) && o.crop_fraction > 0 && o.crop_fraction <= 1 &&
                  o.val_fraction > 0 && o.val_fraction < 1,
              ValueError, "image_folder_load: size ", o.size, ", channels ", o.channels, ", crop fraction ",
              o.crop_fraction, ", val fraction ", o.val_fraction, " (size > 0, channels 1 or 3, fractions in (0, 1))");
  const detail::FolderRoots r = detail::folder_roots(dir);
  const std::string &train_root = r.train, &eval_root = r.eval, &eval_name = r.eval_name;
  detail::FolderTree tt = detail::folder_tree(train_root);
  std::vector<detail::FolderItem> train, eval;
  for (std::size_t c = 0; c < tt.classes.size(); ++c)
    for (const std::string& f : tt.files[c]) train.push_back({f, static_cast<std::int32_t>(c)});
  if (!eval_root.empty()) {
    detail::FolderTree et = detail::folder_tree(eval_root);
    for (std::size_t c = 0; c < et.classes.size(); ++c) {
      auto it = std::find(tt.classes.begin(), tt.classes.end(), et.classes[c]);
      ENVIT_CHECK(it != tt.classes.end(), IoError, "image folder '", eval_root, "': class '", et.classes[c],
                  "' is not among the training classes of '", train_root, "'");
      for (const std::string& f : et.files[c]) eval.push_back({f, static_cast<std::int32_t>(it - tt.classes.begin())});
    }
  } else {
    const auto n = static_cast<std::int64_t>(train.size());
    const auto n_val = static_cast<std::int64_t>(std::llround(o.val_fraction * static_cast<double>(n)));
    ENVIT_CHECK(n_val >= 1 && n_val < n, IoError, "image folder '", train_root, "': ", n, " images cannot be split ",
                o.val_fraction, " for evaluation (the split would be empty)");
    Split sp = split_train_val(n, n_val, o.seed);
    std::vector<detail::FolderItem> tr;
    for (std::int64_t i : sp.val) eval.push_back(train[i]);
    for (std::int64_t i : sp.train) tr.push_back(train[i]);
    train.swap(tr);
  }
  ImageFolderData out;
  out.train = detail::folder_decode(train_root + (eval_name == "split" ? " (train split)" : ""), train_root, train, tt.classes, o, true);
  out.eval = detail::folder_decode(eval_root.empty() ? train_root + " (evaluation split)" : eval_root,
                                 eval_root.empty() ? train_root : eval_root, eval, tt.classes, o, false);
  out.eval_name = eval_name;
  return out;
}

}  // namespace envit
