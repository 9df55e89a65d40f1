// Parity with PyTorch for the baseline schemes' losses (tests/data/gen_baselines_fixture.py):
// beem, cosee and the three BYOT variants on a 4-block ViT with an exit after every block. For
// each: the loss, every parameter gradient, and one plain SGD step (w -= lr * g), in float and
// double, against torch float64 (and the float path also against torch float32 gradients).
// Tolerances (hybrid |d| <= abs || |d| <= rel |ref|) as in test_train_parity.cpp, where they are
// justified; the float gradient bound is rel 1e-4 / abs 2e-6 here (mmrazor's hint gradient
// d / ||d|| and COSEE's sigmoid' products add a few float roundings).
// The float updated weights are compared at rel 1e-6 / abs 2e-6 (lr 0.5 times the gradient error).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "envit/io/safetensors.hpp"
#include "envit/train/objective.hpp"
#include "parity_testing.hpp"

using namespace envit;
using envit::testing::as_double;
using envit::testing::compare;
using envit::testing::load_params;

namespace {

const StFile& fixture() { return testing::parity_fixture("baselines_fixture.safetensors"); }

struct Tol {
  double loss_rel, grad_rel, grad_abs, upd_rel, upd_abs;
};
constexpr Tol kFloat{2e-6, 1e-4, 2e-6, 1e-6, 2e-6};
constexpr Tol kDouble{1e-12, 1e-9, 1e-13, 1e-13, 1e-14};

std::vector<double> split_doubles(const std::string& s) {
  std::vector<double> v;
  std::size_t a = 0;
  while (a <= s.size()) {
    const std::size_t b = std::min(s.find(',', a), s.size());
    v.push_back(std::stod(s.substr(a, b - a)));
    a = b + 1;
  }
  return v;
}

ObjectiveConfig config_for(const std::string& scheme) {
  ObjectiveConfig o;
  o.p_max = 0;
  if (scheme.rfind("byot", 0) == 0) {
    o.scheme = Scheme::byot;
    o.set_byot(scheme == "byot" ? ByotVariant::released
               : scheme == "byot-legacy" ? ByotVariant::envit_legacy : ByotVariant::mmrazor);
  } else {
    o.scheme = parse_scheme(scheme);
  }
  o.validate();
  return o;
}

template <class T>
void check(const std::string& scheme, const Tol& tol) {
  const StFile& f = fixture();
  const testing::ParityBatch<T> b = testing::parity_batch<T>(f);
  const VitConfig& cfg = b.cfg;
  const int B = b.B;
  INFO("scheme " << scheme << ", " << (sizeof(T) == 4 ? "float" : "double"));
  ViTParams<T> P(cfg);
  load_params(P, f);

  const ObjectiveConfig o = config_for(scheme);
  const std::vector<double> p = o.block_probs(cfg);
  LayerMasks masks(cfg.depth, B);
  masks.all(B);
  ViTWorkspace<T> ws(cfg, B);
  ObjectiveWorkspace<T> ow(cfg, B);
  ow.cosee.thresholds = split_doubles(f.meta("thresholds"));
  REQUIRE(ow.cosee.thresholds.size() == 5);
  StepStats st;
  P.zero_grads();
  train_step_grads<T>(st, ws, ow, P, b.images.data(), b.labels.data(), masks, o, p, f.meta_double("progress"));

  const double l64 = f.get<double>(scheme + ".loss").at(0);
  INFO("loss: envit " << st.loss << ", torch f64 " << l64);
  CHECK(std::abs(st.loss - l64) <= tol.loss_rel * std::abs(l64));
  const double lr = f.meta_double("lr");
  testing::compare_grads(P, f, scheme, tol.grad_rel, tol.grad_abs);
  for (const ParamEntry& e : P.table()) {
    const T* g = P.grads() + e.offset;
    std::vector<T> w(P.values() + e.offset, P.values() + e.offset + e.numel);
    for (std::size_t i = 0; i < e.numel; ++i) w[i] -= T(lr) * g[i];
    std::vector<double> u64 = as_double<double>(f, scheme + ".updated." + e.name, e.shape);
    compare("sgd-updated " + e.name + " vs torch f64", w.data(), u64.data(), e.numel, tol.upd_rel, tol.upd_abs);
  }
}

}  // namespace

TEST_CASE("baseline losses match PyTorch: beem, cosee, byot variants (float)", "[e2e][parity]") {
  for (const char* s : {"beem", "cosee", "byot", "byot-legacy", "byot-mmrazor"}) {
    SECTION(s) { check<float>(s, kFloat); }
  }
}

TEST_CASE("baseline losses match PyTorch: beem, cosee, byot variants (double)", "[e2e][parity]") {
  for (const char* s : {"beem", "cosee", "byot", "byot-legacy", "byot-mmrazor"}) {
    SECTION(s) { check<double>(s, kDouble); }
  }
}

TEST_CASE("the baselines fixture lists the schemes and thresholds the test reads", "[e2e][parity]") {
  const StFile& f = fixture();
  CHECK(f.meta("schemes") == "beem,byot,byot-legacy,byot-mmrazor,cosee");
  CHECK(VitConfig::from_map(f.metadata).exits == std::vector<int>{1, 2, 3, 4});
}
