// envit/data/cifar.hpp — the binary versions of CIFAR-10 and CIFAR-100 (Krizhevsky 2009).
//   CIFAR-10 record:  1 label byte (0..9)                       + 3072 pixel bytes
//   CIFAR-100 record: 1 coarse label (0..19) + 1 fine (0..99)   + 3072 pixel bytes
// Pixels are 1024 red, 1024 green, 1024 blue bytes, each a row-major 32x32 plane: exactly (C, H, W).
// A file must be a whole number of records; labels must be in range. Errors name the file, the
// record and its byte offset. Not handled: the Python-pickle versions of the datasets.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/data/dataset.hpp"
#include "envit/io/file.hpp"

namespace envit {

enum class CifarKind { cifar10, cifar100_fine, cifar100_coarse };

inline constexpr int kCifarPixels = 3 * 32 * 32;

inline int cifar_record_bytes(CifarKind k) { return (k == CifarKind::cifar10 ? 1 : 2) + kCifarPixels; }
inline int cifar_classes(CifarKind k) { return k == CifarKind::cifar10 ? 10 : k == CifarKind::cifar100_fine ? 100 : 20; }
inline const char* cifar_name(CifarKind k) { return k == CifarKind::cifar10 ? "CIFAR-10" : "CIFAR-100"; }

// Reads and concatenates CIFAR binary files (e.g. data_batch_1.bin .. data_batch_5.bin).
inline Dataset cifar_read(const std::vector<std::string>& files, CifarKind kind, const std::string& hint = {}) {
  ENVIT_CHECK(!files.empty(), ValueError, "cifar_read: no files given");
  const int rec = cifar_record_bytes(kind), classes = cifar_classes(kind);
  const int label_at = kind == CifarKind::cifar100_fine ? 1 : 0;  // fine label is the second byte
  Dataset d;
  d.file = files.size() == 1 ? files[0] : files[0] + " .. " + files.back();
  d.c = 3, d.h = 32, d.w = 32, d.classes = classes;
  std::vector<unsigned char> buf;
  for (const std::string& path : files) {
    io::InFile in(path, hint);
    ENVIT_CHECK(in.size() > 0, IoError, cifar_name(kind), " '", path, "': file is empty");
    ENVIT_CHECK(in.size() % static_cast<std::uint64_t>(rec) == 0, IoError, cifar_name(kind), " '", path,
                "': size ", in.size(), " is not a multiple of the ", rec, "-byte record (",
                in.size() / static_cast<std::uint64_t>(rec), " whole records + ", in.size() % static_cast<std::uint64_t>(rec),
                " bytes): truncated or not a ", cifar_name(kind), " binary file");
    const std::int64_t n = static_cast<std::int64_t>(in.size() / static_cast<std::uint64_t>(rec));
    buf.resize(static_cast<std::size_t>(in.size()));
    in.read_exact(buf.data(), buf.size(), 0, "records");
    d.images.resize(static_cast<std::size_t>((d.n + n) * kCifarPixels));
    d.labels.resize(static_cast<std::size_t>(d.n + n));
    for (std::int64_t i = 0; i < n; ++i) {
      const unsigned char* r = buf.data() + i * rec;
      if (kind != CifarKind::cifar10)
        ENVIT_CHECK(r[0] < 20 && r[1] < 100, IoError, cifar_name(kind), " '", path, "': record ", i, " (byte offset ",
                    i * rec, ") has coarse label ", int{r[0]}, " and fine label ", int{r[1]},
                    " (expected < 20 and < 100)");
      ENVIT_CHECK(r[label_at] < classes, IoError, cifar_name(kind), " '", path, "': record ", i, " (byte offset ",
                  i * rec + label_at, ") has label ", int{r[label_at]}, ", outside [0, ", classes, ")");
      d.labels[d.n + i] = r[label_at];
      std::memcpy(d.images.data() + (d.n + i) * kCifarPixels, r + rec - kCifarPixels, kCifarPixels);
    }
    d.n += n;
  }
  return d;
}

namespace detail {
// `dir/sub` if it holds `probe`, else `dir`.
inline std::string cifar_dir(const std::string& dir, const std::string& sub, const std::string& probe) {
  return io::file_exists(dir + "/" + sub + "/" + probe) ? dir + "/" + sub : dir;
}
inline std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}
}  // namespace detail

// CIFAR-10 train (data_batch_1..5.bin, 50000) or test (test_batch.bin, 10000) from `dir` or from
// `dir/cifar-10-batches-bin` (how the archive extracts).
inline Dataset cifar10_load(const std::string& dir, bool train = true) {
  const std::string root = detail::cifar_dir(dir, "cifar-10-batches-bin", "test_batch.bin");
  std::vector<std::string> files;
  if (train)
    for (int k = 1; k <= 5; ++k) files.push_back(root + "/data_batch_" + std::to_string(k) + ".bin");
  else
    files.push_back(root + "/test_batch.bin");
  Dataset d = cifar_read(files, CifarKind::cifar10,
                         "Expected the binary version of CIFAR-10 (cifar-10-binary.tar.gz) extracted in '" + dir +
                             "'; point the loader at the directory holding it");
  d.name = std::string("cifar10/") + (train ? "train" : "test");
  d.class_names = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return d;
}

// CIFAR-100 train.bin (50000) or test.bin (10000) from `dir` or `dir/cifar-100-binary`, with fine
// (100) or coarse (20) labels. Class names come from {fine,coarse}_label_names.txt when present.
inline Dataset cifar100_load(const std::string& dir, bool train = true, bool coarse = false) {
  const std::string root = detail::cifar_dir(dir, "cifar-100-binary", "test.bin");
  const CifarKind kind = coarse ? CifarKind::cifar100_coarse : CifarKind::cifar100_fine;
  Dataset d = cifar_read({root + (train ? "/train.bin" : "/test.bin")}, kind,
                         "Expected the binary version of CIFAR-100 (cifar-100-binary.tar.gz) extracted in '" + dir +
                             "'; point the loader at the directory holding it");
  d.name = std::string("cifar100/") + (train ? "train" : "test");
  auto names = detail::read_lines(root + (coarse ? "/coarse_label_names.txt" : "/fine_label_names.txt"));
  if (names.size() == static_cast<std::size_t>(d.classes)) d.class_names = std::move(names);
  return d;
}

}  // namespace envit
