// examples/envit/common.hpp — what `envit train` and `envit eval` share: dataset selection by name,
// JSON string escaping for the logs, and parsing of comma lists.
#pragma once
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
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

inline std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') { o += '\\'; o += c; }
    else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else o += c;
  }
  return o;
}

inline std::vector<double> parse_doubles(const std::string& s, const std::string& what) {
  std::vector<double> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t pos = 0;
    double x = 0;
    try { x = std::stod(item, &pos); } catch (const std::exception&) { pos = std::string::npos; }
    if (pos != item.size() || item.empty()) throw UsageError(what + ": '" + item + "' is not a number");
    v.push_back(x);
  }
  return v;
}

// The training samples a run uses, as indices into the full training set: the first `skip` are
// dropped, the next `subset` kept (0: all that remain), and of those only the labels listed in
// `classes` (empty: every label). `envit train` trains on them and `envit eval` rebuilds the same
// validation split from them, both from the flags recorded in the checkpoint.
inline std::vector<std::int64_t> training_indices(const Dataset& d, std::int64_t skip, std::int64_t subset,
                                                  const std::vector<int>& classes) {
  ENVIT_CHECK(skip >= 0 && skip < d.n, UsageError, "--skip ", skip, " leaves no sample of the ", d.n,
              " in '", d.name, "'");
  ENVIT_CHECK(subset >= 0, UsageError, "--subset must be >= 0, got ", subset);
  const std::int64_t end = subset > 0 ? std::min(d.n, skip + subset) : d.n;
  for (int c : classes)
    ENVIT_CHECK(c >= 0 && c < d.classes, UsageError, "--classes: label ", c, " is outside [0, ", d.classes,
                ") of '", d.name, "'");
  std::vector<std::int64_t> idx;
  for (std::int64_t i = skip; i < end; ++i)
    if (classes.empty() || std::find(classes.begin(), classes.end(), d.labels[std::size_t(i)]) != classes.end())
      idx.push_back(i);
  ENVIT_CHECK(!idx.empty(), UsageError, "--skip/--subset/--classes select no sample of '", d.name, "'");
  return idx;
}

inline std::vector<int> parse_ints(const std::string& s, const std::string& what) {
  std::vector<int> v;
  for (double x : parse_doubles(s, what)) {
    ENVIT_CHECK(x == double(int(x)), UsageError, what, ": '", x, "' is not an integer");
    v.push_back(int(x));
  }
  return v;
}

}  // namespace envit::cli
