// Helpers shared by the PyTorch parity tests (test_train_parity.cpp, test_baselines_parity.cpp,
// test_lgvit_parity.cpp): fixture files read once, hybrid tensor comparison with a readable failure
// report, fixture tensors as double, loading a fixture's param.<name> tensors into ViTParams by
// name, the fixture's batch, and gradients compared against torch float64 (and float32).
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "envit/io/safetensors.hpp"
#include "envit/model/params.hpp"

#ifndef ENVIT_PARITY_DATA_DIR
#define ENVIT_PARITY_DATA_DIR "tests/data"
#endif

namespace envit::testing {

// tests/data/<file> (the directory from ENVIT_TEST_DATA when set), read on first use.
inline const StFile& parity_fixture(const std::string& file) {
  static std::map<std::string, StFile> cache;
  auto it = cache.find(file);
  if (it == cache.end()) {
    const char* d = std::getenv("ENVIT_TEST_DATA");
    it = cache.emplace(file, safetensors_read(std::string(d && *d ? d : ENVIT_PARITY_DATA_DIR) + "/" + file)).first;
  }
  return it->second;
}

// Hybrid comparison of n values; on failure names the tensor, the count, the first bad index
// with both values, and the largest difference.
template <class A>
void compare(const std::string& what, const A* got, const double* ref, std::size_t n, double rel,
             double abs_tol, const std::vector<bool>* skip = nullptr) {
  std::size_t bad = 0, first = n, checked = 0;
  double worst = 0, worst_rel = 0;
  std::size_t worst_i = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (skip && (*skip)[i]) continue;
    ++checked;
    const double d = std::abs(double(got[i]) - ref[i]);
    const bool ok = d <= abs_tol || d <= rel * std::abs(ref[i]);
    if (!ok && first == n) first = i;
    bad += !ok;
    if (!(d <= worst)) { worst = d; worst_i = i; }  // NaN propagates
    if (d > abs_tol) worst_rel = std::max(worst_rel, d / std::abs(ref[i]));
  }
  if (std::getenv("ENVIT_PARITY_VERBOSE"))
    std::printf("%-44s worst abs %.3g at %zu (got %.9g, torch %.9g), worst rel above abs tol %.3g, bad %zu/%zu\n",
                what.c_str(), worst, worst_i, n ? double(got[worst_i]) : 0.0, n ? ref[worst_i] : 0.0, worst_rel,
                bad, checked);
  INFO(what << ": " << bad << " of " << checked << " entries out of tolerance (rel " << rel << ", abs "
            << abs_tol << "); largest abs diff " << worst << ", largest rel diff above abs tol "
            << worst_rel
            << (first < n ? "; first at index " + std::to_string(first) + ": got " +
                                std::to_string(double(got[first])) + ", torch " + std::to_string(ref[first])
                          : std::string()));
  CHECK(bad == 0);
}

template <class S>
std::vector<double> as_double(const StFile& f, const std::string& name, const std::vector<std::int64_t>& shape) {
  std::vector<std::int64_t> got;
  std::vector<S> v = f.get<S>(name, &got);
  INFO("fixture tensor " << name);
  REQUIRE(got == shape);
  return std::vector<double>(v.begin(), v.end());
}

// Every parameter of the model is in the fixture under param.<name> with its timm shape, and the
// fixture has no parameter the model lacks.
template <class T>
void load_params(ViTParams<T>& P, const StFile& f) {
  std::size_t in_file = 0;
  for (const StTensor& t : f.tensors) in_file += t.name.rfind("param.", 0) == 0;
  REQUIRE(in_file == P.table().size());
  for (const ParamEntry& e : P.table()) {
    std::vector<double> v = as_double<float>(f, "param." + e.name, e.shape);
    for (std::size_t i = 0; i < e.numel; ++i) P.values()[e.offset + i] = static_cast<T>(v[i]);
  }
}

// The fixture's model configuration (its metadata) and batch: images (B, C, S, S) and labels (B).
template <class T>
struct ParityBatch {
  VitConfig cfg;
  int B = 0;
  std::vector<T> images;
  std::vector<std::int32_t> labels;
};
template <class T>
ParityBatch<T> parity_batch(const StFile& f) {
  ParityBatch<T> b;
  b.cfg = VitConfig::from_map(f.metadata);
  b.B = static_cast<int>(f.meta_int("batch"));
  std::vector<double> img = as_double<float>(f, "images", {b.B, b.cfg.channels, b.cfg.image_size, b.cfg.image_size});
  b.images.assign(img.begin(), img.end());
  b.labels = f.get<std::int32_t>("labels");
  REQUIRE(b.labels.size() == std::size_t(b.B));
  return b;
}

// Every parameter gradient of P against <prefix>.grad.<name> (torch float64) and, for float P,
// also against <prefix>.grad32.<name> (torch float32).
template <class T>
void compare_grads(const ViTParams<T>& P, const StFile& f, const std::string& prefix, double rel, double abs_tol) {
  for (const ParamEntry& e : P.table()) {
    const T* g = P.grads() + e.offset;
    std::vector<double> r64 = as_double<double>(f, prefix + ".grad." + e.name, e.shape);
    compare("grad " + e.name + " vs torch f64", g, r64.data(), e.numel, rel, abs_tol);
    if (sizeof(T) == 4) {
      std::vector<double> r32 = as_double<float>(f, prefix + ".grad32." + e.name, e.shape);
      compare("grad " + e.name + " vs torch f32", g, r32.data(), e.numel, rel, abs_tol);
    }
  }
}

}  // namespace envit::testing
