// examples/envit/common.hpp — what `envit train` and `envit eval` share: dataset selection by name,
// output directories, and parsing of comma lists of numbers.
#pragma once
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "envit/data/cifar.hpp"
#include "envit/data/idx.hpp"

namespace envit::cli {

// "fashion-mnist" (default dir /usr/share/datasets/fashion-mnist), "mnist", "cifar10", "cifar100".
inline Dataset load_dataset(const std::string& name, const std::string& dir_flag, bool train) {
  if (name == "fashion-mnist") return fashion_mnist_load(dir_flag.empty() ? kFashionMnistDir : dir_flag, train);
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
  throw UsageError("unknown --dataset '" + name + "' (fashion-mnist, mnist, cifar10, cifar100)");
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
