// envit/data/idx.hpp — the IDX format of MNIST and Fashion-MNIST, gzip-compressed or plain (zlib's
// gzread reads both transparently), and loaders that pair an images file with a labels file.
//   magic: 0x00 0x00 <dtype> <ndim>, then ndim big-endian u32 dimensions, then the values.
// Only dtype 0x08 (unsigned byte) is supported: it is the only one the image datasets use.
// Every failure throws IoError naming the file and what was expected versus found.
// Not a general IDX library: no other dtypes, no writing of compressed streams beyond tests' needs.
#pragma once
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/data/dataset.hpp"
#include "envit/io/file.hpp"

namespace envit {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
inline constexpr const char* kIdxHint =
    "Fashion-MNIST is packaged by Debian: `apt-get install dataset-fashion-mnist` (installs "
    "/usr/share/datasets/fashion-mnist), or point the loader at a directory holding "
    "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]";

struct IdxArray {
  std::vector<std::int64_t> dims;   // e.g. (N, H, W) for images, (N) for labels
  std::vector<std::uint8_t> data;   // prod(dims) bytes, row-major
};

namespace detail {
struct GzFile {
  gzFile f = nullptr;
  ~GzFile() {
    if (f) gzclose(f);
  }
};
// Reads up to n bytes; returns the count. Throws on a decompression error (not on a short read:
// a gzip stream cut short returns what it has, and callers report expected vs got bytes).
inline std::size_t gz_read_some(gzFile f, void* dst, std::size_t n, const std::string& path) {
  auto* p = static_cast<unsigned char*>(dst);
  std::size_t got = 0;
  while (got < n) {
    unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, std::size_t{1} << 30));
    int r = gzread(f, p + got, chunk);
    if (r < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      throw IoError(detail::cat("idx '", path, "': decompression error after ", got, " bytes of this read: ",
                                msg ? msg : "unknown"));
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}
}  // namespace detail

// Reads one IDX file of unsigned bytes. Checks the magic, the dimensions, and that the file holds
// exactly prod(dims) data bytes (truncated or with trailing bytes -> IoError with both counts).
// `hint` is added to the message if the file does not exist.
inline IdxArray idx_read(const std::string& path, const std::string& hint = {}) {
  { io::InFile probe(path, hint); }  // existence, regular file, readable — with the hint on ENOENT
  detail::GzFile gz;
  gz.f = gzopen(path.c_str(), "rb");
  ENVIT_CHECK(gz.f, IoError, "idx '", path, "': cannot open (gzopen failed)");
  gzbuffer(gz.f, 1 << 17);
  const std::string w = "idx '" + path + "': ";

  unsigned char magic[4];
  std::size_t got = detail::gz_read_some(gz.f, magic, 4, path);
  ENVIT_CHECK(got == 4, IoError, w, "truncated: ", got, " bytes, the IDX magic needs 4");
  const std::uint32_t m = (std::uint32_t{magic[0]} << 24) | (magic[1] << 16) | (magic[2] << 8) | magic[3];
  char mhex[11];
  std::snprintf(mhex, sizeof mhex, "0x%08x", m);
  ENVIT_CHECK(magic[0] == 0 && magic[1] == 0, IoError, w, "bad magic ", mhex,
              ": not an IDX file (the first two bytes must be zero)");
  ENVIT_CHECK(magic[2] == 0x08, IoError, w, "bad magic ", mhex, ": dtype code 0x", std::hex, int{magic[2]},
              std::dec, " is not supported (only 0x08, unsigned byte)");
  const int ndim = magic[3];
  ENVIT_CHECK(ndim >= 1 && ndim <= 4, IoError, w, "bad magic ", mhex, ": ", ndim, " dimensions (expected 1 to 4)");

  IdxArray a;
  unsigned char dimbuf[16];
  got = detail::gz_read_some(gz.f, dimbuf, 4 * static_cast<std::size_t>(ndim), path);
  ENVIT_CHECK(got == 4 * static_cast<std::size_t>(ndim), IoError, w, "truncated header: expected ", 4 * ndim,
              " bytes of dimensions, got ", got);
  std::uint64_t total = 1;
  for (int k = 0; k < ndim; ++k) {
    const unsigned char* b = dimbuf + 4 * k;
    std::uint64_t d = (std::uint64_t{b[0]} << 24) | (std::uint64_t{b[1]} << 16) | (std::uint64_t{b[2]} << 8) | b[3];
    ENVIT_CHECK(d > 0, IoError, w, "dimension ", k, " is 0");
    total *= d;  // at most 2^(32*4) — checked below before it can wrap past 2^40
    ENVIT_CHECK(total <= (std::uint64_t{1} << 40), IoError, w, "dimensions announce more than 2^40 bytes: corrupt header");
    a.dims.push_back(static_cast<std::int64_t>(d));
  }
  // Grow in chunks doubling from 64 KiB to 16 MiB, so a lying header cannot make us allocate far more
  // than the file holds (a 100-byte file announcing 2^40 bytes costs 64 KiB, not 16 MiB).
  std::size_t chunk = std::size_t{1} << 16;
  std::size_t have = 0;
  while (have < total) {
    std::size_t want = std::min<std::size_t>(chunk, total - have);
    chunk = std::min<std::size_t>(2 * chunk, std::size_t{1} << 24);
    a.data.resize(have + want);
    std::size_t r = detail::gz_read_some(gz.f, a.data.data() + have, want, path);
    have += r;
    if (r < want) break;
  }
  const std::uint64_t header = 4 + 4 * static_cast<std::uint64_t>(ndim);
  ENVIT_CHECK(have == total, IoError, w, "truncated: dimensions announce ", total, " data bytes (",
              header + total, " bytes uncompressed in all), got ", have);
  unsigned char extra[1];
  ENVIT_CHECK(detail::gz_read_some(gz.f, extra, 1, path) == 0, IoError, w, "trailing bytes after the ", total,
              " data bytes the dimensions announce");
  return a;
}

// Writes an IDX file of unsigned bytes, gzip-compressed or plain (tests and tools; not atomic).
inline void idx_write(const std::string& path, const std::vector<std::int64_t>& dims, const std::uint8_t* data,
                      bool gzip) {
  ENVIT_CHECK(!dims.empty() && dims.size() <= 4, ValueError, "idx_write: ", dims.size(), " dimensions (1 to 4)");
  std::vector<unsigned char> buf = {0, 0, 0x08, static_cast<unsigned char>(dims.size())};
  std::uint64_t total = 1;
  for (std::int64_t d : dims) {
    ENVIT_CHECK(d > 0 && d <= INT32_MAX, ValueError, "idx_write: dimension ", d, " out of range");
    for (int s = 24; s >= 0; s -= 8) buf.push_back(static_cast<unsigned char>(d >> s));
    total *= static_cast<std::uint64_t>(d);
  }
  buf.insert(buf.end(), data, data + total);
  detail::GzFile gz;
  gz.f = gzopen(path.c_str(), gzip ? "wb6" : "wbT");  // 'T': transparent (plain) writing
  ENVIT_CHECK(gz.f, IoError, "idx_write '", path, "': cannot open for writing");
  ENVIT_CHECK(gzwrite(gz.f, buf.data(), static_cast<unsigned>(buf.size())) == static_cast<int>(buf.size()), IoError,
              "idx_write '", path, "': write failed");
  int rc = gzclose(gz.f);
  gz.f = nullptr;
  ENVIT_CHECK(rc == Z_OK, IoError, "idx_write '", path, "': close failed (", rc, ")");
}

// A dataset from an IDX images file (N, H, W) and labels file (N): C = 1, labels < classes.
inline Dataset idx_load(const std::string& images_path, const std::string& labels_path, int classes = 10,
                        const std::string& hint = kIdxHint) {
  IdxArray im = idx_read(images_path, hint);
  IdxArray lb = idx_read(labels_path, hint);
  ENVIT_CHECK(im.dims.size() == 3, IoError, "idx '", images_path, "': images file has ", im.dims.size(),
              " dimensions, expected 3 (N, H, W)");
  ENVIT_CHECK(lb.dims.size() == 1, IoError, "idx '", labels_path, "': labels file has ", lb.dims.size(),
              " dimensions, expected 1 (N)");
  ENVIT_CHECK(im.dims[0] == lb.dims[0], IoError, "idx: images file '", images_path, "' has ", im.dims[0],
              " images but labels file '", labels_path, "' has ", lb.dims[0], " labels");
  ENVIT_CHECK(classes > 0 && classes <= 256, ValueError, "idx_load: classes = ", classes, " outside [1, 256]");
  Dataset d;
  d.file = images_path;
  d.n = im.dims[0];
  d.c = 1;
  d.h = static_cast<int>(im.dims[1]);
  d.w = static_cast<int>(im.dims[2]);
  d.classes = classes;
  d.images = std::move(im.data);
  d.labels.resize(lb.data.size());
  for (std::size_t i = 0; i < lb.data.size(); ++i) {
    ENVIT_CHECK(lb.data[i] < classes, IoError, "idx '", labels_path, "': label ", int{lb.data[i]}, " of sample ", i,
                " (byte offset ", 8 + i, " uncompressed) is outside [0, ", classes, ")");
    d.labels[i] = lb.data[i];
  }
  return d;
}

// "dir/name.gz" if it exists, else "dir/name" if it exists, else "" .
inline std::string idx_find(const std::string& dir, const std::string& name) {
  for (const std::string& p : {dir + "/" + name + ".gz", dir + "/" + name})
    if (io::file_exists(p)) return p;
  return {};
}

// Fashion-MNIST's train (60000) or test (10000) split from `dir` (files gzipped or not).
inline Dataset fashion_mnist_load(const std::string& dir = kFashionMnistDir, bool train = true) {
  const std::string pre = train ? "train" : "t10k";
  const std::string im = idx_find(dir, pre + "-images-idx3-ubyte"), lb = idx_find(dir, pre + "-labels-idx1-ubyte");
  ENVIT_CHECK(!im.empty() && !lb.empty(), IoError, "Fashion-MNIST: '", dir, "/", pre, "-",
              im.empty() ? "images-idx3" : "labels-idx1", "-ubyte[.gz]' not found. ", kIdxHint);
  Dataset d = idx_load(im, lb, 10);
  d.name = std::string("fashion-mnist/") + (train ? "train" : "test");
  d.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  return d;
}

}  // namespace envit
