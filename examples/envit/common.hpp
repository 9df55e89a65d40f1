// examples/envit/common.hpp — what `envit train` and `envit eval` share: dataset selection by name,
// output directories, and parsing of comma lists of numbers.
#pragma once
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "envit/data/cifar.hpp"
#include "envit/data/idx.hpp"
#include "envit/data/image_folder.hpp"
#include "envit/data/resize.hpp"
#include "envit/io/safetensors.hpp"
#include "envit/model/config.hpp"

namespace envit::cli {

// What --dataset and --data select: the loader (`kind`: fashion-mnist, mnist, idx, cifar10, cifar100,
// folder) and the data set's name in logs, checkpoints (data.source) and eval output: "fashion-mnist",
// "mnist", or KIND:DIR for a directory of the user's ("idx:DIR", "folder:DIR", "cifar10:DIR").
// Without --dataset, --data DIR is a folder of class folders when it holds sub-folders and no
// train-images-idx3-ubyte[.gz], else IDX files; without either, Fashion-MNIST from its Debian package.
struct DataSource {
  std::string kind, dir, name;
};
inline DataSource data_source(const std::string& dataset, const std::string& dir, bool dataset_given) {
  std::string kind = dataset;
  if (!dataset_given && !dir.empty()) {
    namespace fs = std::filesystem;
    bool subdirs = false;
    std::error_code ec;
    if (fs::is_directory(dir, ec))
      for (const auto& e : fs::directory_iterator(dir, ec)) subdirs = subdirs || e.is_directory();
    kind = subdirs && idx_find(dir, "train-images-idx3-ubyte").empty() ? "folder" : "idx";
  }
  const bool named = (kind == "fashion-mnist" || kind == "mnist") && dir.empty();
  return {kind, dir, named ? kind : kind + ":" + dir};
}

// "fashion-mnist" (default dir /usr/share/datasets/fashion-mnist), "mnist", "idx" (a --data DIR of
// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; classes: the largest label + 1), "cifar10", "cifar100".
inline Dataset load_dataset(const std::string& name, const std::string& dir_flag, bool train) {
  if (name == "fashion-mnist") return fashion_mnist_load(dir_flag.empty() ? kFashionMnistDir : dir_flag, train);
  if (name == "idx") {
    ENVIT_CHECK(!dir_flag.empty(), UsageError, "--dataset idx needs --data DIR");
    const std::string pre = train ? "train" : "t10k";
    const std::string im = idx_find(dir_flag, pre + "-images-idx3-ubyte"), lb = idx_find(dir_flag, pre + "-labels-idx1-ubyte");
    ENVIT_CHECK(!im.empty() && !lb.empty(), IoError, "IDX data set: '", dir_flag, "/", pre, "-",
                im.empty() ? "images-idx3" : "labels-idx1",
                "-ubyte[.gz]' not found (an IDX data set holds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz])");
    Dataset d = idx_load(im, lb, 256);
    d.classes = d.labels.empty() ? 1 : *std::max_element(d.labels.begin(), d.labels.end()) + 1;
    d.name = "idx:" + dir_flag + (train ? "/train" : "/test");
    return d;
  }
  if (name == "mnist") {
    const std::string dir = dir_flag.empty() ? "/usr/share/datasets/mnist" : dir_flag;
    const std::string pre = train ? "train" : "t10k";
    std::string im = idx_find(dir, pre + "-images-idx3-ubyte"), lb = idx_find(dir, pre + "-labels-idx1-ubyte");
    ENVIT_CHECK(!im.empty() && !lb.empty(), IoError, "MNIST: '", dir, "/", pre,
                "-images-idx3-ubyte[.gz]' or its labels not found; pass --data DIR");
    Dataset d = idx_load(im, lb, 10);
    d.name = std::string("mnist/") + (train ? "train" : "test");
    return d;
  }
  if (name == "cifar10" || name == "cifar100") {
    ENVIT_CHECK(!dir_flag.empty(), UsageError, "--dataset ", name,
                " needs --data DIR (the extracted binary version of the dataset)");
    return name == "cifar10" ? cifar10_load(dir_flag, train) : cifar100_load(dir_flag, train);
  }
  throw UsageError("unknown --dataset '" + name + "' (fashion-mnist, mnist, idx, cifar10, cifar100, folder)");
}

inline ImageFolderOptions folder_options(const std::string& dir, int size, int channels, std::uint64_t seed,
                                         double val_fraction, double crop_fraction) {
  ENVIT_CHECK(!dir.empty(), UsageError, "--dataset folder needs --data DIR");
  ImageFolderOptions o;
  o.size = size;
  o.channels = channels;
  o.seed = seed;
  o.val_fraction = val_fraction;
  o.crop_fraction = crop_fraction;
  return o;
}

// Resizes d to size x size (bilinear) and gray to 3 channels when the model needs it; says so.
inline void fit_dataset(Dataset& d, int size, int channels) {
  if (d.h == size && d.w == size && d.c == channels) return;
  std::fprintf(stderr, "data: %s %dx%dx%d resized to %dx%dx%d\n", d.name.c_str(), d.c, d.h, d.w, channels, size, size);
  d = dataset_resize(d, size, channels);
}

// A checkpoint's dataset shaped for its model: named datasets resized as `envit train` did;
// `folder` re-read with the checkpoint's split (train.seed, data.folder_val, data.crop_fraction).
inline Dataset load_checkpoint_dataset(const std::string& name, const std::string& dir, bool train, const StFile& ckpt,
                                       const VitConfig& cfg) {
  if (name == "folder") {
    ImageFolderData fd = image_folder_load(
        dir, folder_options(dir, cfg.image_size, cfg.channels, std::stoull(ckpt.meta_or("train.seed", "0")),
                            std::stod(ckpt.meta_or("data.folder_val", "0.1")),
                            std::stod(ckpt.meta_or("data.crop_fraction", "0.875"))));
    return train ? std::move(fd.train) : std::move(fd.eval);
  }
  Dataset d = load_dataset(name, dir, train);
  fit_dataset(d, cfg.image_size, cfg.channels);
  return d;
}

// The validation split carved at training time (the run's --skip, --subset, --classes, --val and
// seed, from the checkpoint's metadata) as a dataset of its own, in split order.
inline Dataset checkpoint_validation_set(const StFile& ckpt, const std::string& path, const VitConfig& cfg,
                                         const std::string& name, const std::string& dir, const char* why) {
  const SplitSpec spec = SplitSpec::from_map(ckpt.metadata, ckpt.where());
  ENVIT_CHECK(spec.n_val > 0, UsageError, why, " needs a validation split: train with --val N (checkpoint '", path,
              "' has none)");
  Dataset train = load_checkpoint_dataset(name, dir, true, ckpt, cfg);
  train.check_fits(cfg.channels, cfg.image_size, cfg.image_size, cfg.classes, "checkpoint '" + path + "'");
  const std::vector<std::int64_t> used = spec.samples(train);  // --skip, --subset, --classes of the run
  train = dataset_subset(train, used.data(), std::int64_t(used.size()));
  const Split sp = split_train_val(train.n, spec.n_val, spec.seed);
  return dataset_subset(train, sp.val.data(), std::int64_t(sp.val.size()));
}

inline void make_dirs(const std::string& path) {
  std::string cur;
  for (std::size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        throw IoError("cannot create directory '" + cur + "': " + std::strerror(errno));
    }
    if (i < path.size()) cur += path[i];
  }
}

// Comma-separated numbers from a flag (strtod, so the same doubles as C++ literals of the same
// text); a malformed item is a UsageError naming `what`.
inline std::vector<double> parse_doubles(const std::string& s, const std::string& what) {
  std::vector<double> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const double x = std::strtod(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size() || std::isnan(x))
      throw UsageError(what + ": '" + item + "' is not a number");
    v.push_back(x);
  }
  return v;
}

}  // namespace envit::cli
