// Tests for ops/cross_entropy.hpp: gradient check in double, float vs a naive double reference
// (logits near +-100), values exported from PyTorch, label validation, bitwise determinism.
// Debug checks are forced on in this file so the kernels' ENVIT_DCHECK preconditions are active in
// a Release build (this executable has a single envit translation unit: no ODR mix).
#define ENVIT_DEBUG_CHECKS 1

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "envit/core/parallel.hpp"
#include "envit/ops/cross_entropy.hpp"
#include "testing.hpp"

using namespace envit;
using Catch::Contains;
using envit::testing::check_grad;
using envit::testing::random_vec;
using envit::testing::require_close;
using std::int32_t;
using std::ptrdiff_t;
using std::size_t;

using namespace envit::testing;

namespace {

std::vector<int32_t> random_labels(ptrdiff_t R, ptrdiff_t C, std::uint64_t seed) {
  CounterRng r(seed, RngStream::init, 0x1AB);
  std::vector<int32_t> l(R);
  for (auto& v : l) v = static_cast<int32_t>(r.below(static_cast<std::uint32_t>(C)));
  return l;
}

}  // namespace

TEST_CASE("cross_entropy: gradient in double, accumulate", "[cross_entropy][grad]") {
  struct Case { ptrdiff_t R, C; size_t max_entries; };
  const Case cases[] = {{1, 1, 256}, {1, 3, 256}, {3, 17, 256}, {2, 33, 256}, {8, 10, 256}, {64, 100, 200}};
  std::uint64_t seed = 2000;
  for (const auto& c : cases) {
    CAPTURE(c.R, c.C);
    auto x = random_vec<double>(c.R * c.C, ++seed, -3.0, 3.0);
    auto labels = random_labels(c.R, c.C, ++seed);
    const double scale = 0.7 / double(c.R);
    std::vector<double> probs(c.R * c.C), scratch(c.C);
    const double l0 = cross_entropy_forward(probs.data(), x.data(), labels.data(), c.R, c.C, scale);
    // Loss for the finite differences: one call per row, rows summed in long double, so a
    // perturbation's effect is not buried in the rounding of a long double-precision sum.
    auto loss_ld = [&] {
      long double s = 0;
      for (ptrdiff_t r = 0; r < c.R; ++r)
        s += cross_entropy_forward(scratch.data(), x.data() + r * c.C, labels.data() + r, 1, c.C, scale);
      return s;
    };
    REQUIRE(std::abs(double(loss_ld()) - l0) <= 1e-13 * (1.0 + std::abs(l0)));
    auto loss = centred(loss_ld);
    REQUIRE(std::isfinite(l0));
    REQUIRE(l0 >= 0.0);
    std::vector<double> dx(c.R * c.C, kPre);
    cross_entropy_backward(dx.data(), probs.data(), labels.data(), c.R, c.C, scale);
    auto g = minus_pre(dx);
    check_grad("cross_entropy dlogits", x.data(), g.data(), g.size(), loss, 1e-6, c.max_entries, kStep);
    if (c.C == 1) REQUIRE(l0 == 0.0);
  }
}

TEST_CASE("cross_entropy: float vs naive double reference, logits near +-100", "[cross_entropy][ref]") {
  std::uint64_t seed = 2100;
  for (ptrdiff_t C : {1, 7, 15, 16, 17, 32, 48, 50, 191, 192, 768, 1000}) {
    for (bool extreme : {false, true}) {
      CAPTURE(C, extreme);
      const ptrdiff_t R = 12;
      auto x = extreme ? extreme_logits<float>(R, C, ++seed) : random_vec<float>(R * C, ++seed, -5.0, 5.0);
      auto labels = random_labels(R, C, ++seed);
      const double scale = 1.0 / double(R);
      double loss_ref = 0;
      std::vector<double> p_ref(R * C), d_ref(R * C);
      for (ptrdiff_t r = 0; r < R; ++r) {
        auto l = log_softmax_row(x.data() + r * C, C, 1.0);
        loss_ref -= l[labels[r]];
        for (ptrdiff_t c = 0; c < C; ++c) {
          p_ref[r * C + c] = std::exp(l[c]);
          d_ref[r * C + c] = scale * (p_ref[r * C + c] - (c == labels[r] ? 1.0 : 0.0));
        }
      }
      loss_ref *= scale;
      std::vector<float> p(R * C), dx(R * C, float(kPre));
      float loss = cross_entropy_forward(p.data(), x.data(), labels.data(), R, C, float(scale));
      cross_entropy_backward(dx.data(), p.data(), labels.data(), R, C, float(scale));
      require_finite("probs", p);
      REQUIRE(std::isfinite(loss));
      require_close("cross_entropy loss", &loss, &loss_ref, 1, 1e-5, 1e-6);
      require_close("cross_entropy probs", p.data(), p_ref.data(), p.size(), 1e-5, 1e-7);
      auto g = minus_pre(dx);
      require_close("cross_entropy dlogits", g.data(), d_ref.data(), g.size(), 1e-5, 1e-7);
      // probs may alias logits
      std::vector<float> xi(x);
      float loss_i = cross_entropy_forward(xi.data(), xi.data(), labels.data(), R, C, float(scale));
      REQUIRE(loss_i == loss);
      REQUIRE(std::memcmp(xi.data(), p.data(), p.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("cross_entropy: a probability that underflows still gives a finite loss",
          "[cross_entropy][ref]") {
  const float x[] = {100.f, -100.f, 100.f};  // label 1: p = exp(-200 - log 2) underflows in float
  const int32_t label = 1;
  float p[3];
  float loss = cross_entropy_forward(p, x, &label, 1, 3, 1.0f);
  REQUIRE(std::isfinite(loss));
  REQUIRE(std::abs(double(loss) - (200.0 + std::log(2.0))) < 1e-4);
  REQUIRE(p[1] == 0.f);
}

TEST_CASE("cross_entropy: matches PyTorch F.cross_entropy (mean)", "[cross_entropy][ref]") {
  // torch.nn.functional.cross_entropy(x, labels, reduction='mean') in float64, with x.grad.
  const double x[] = {1.5, -0.25, 3.0, 0.0, -2.0, 0.1, 0.2, 0.3, 0.4, 0.5, 100.0, -100.0, 99.0, 0.0, -50.0};
  const int32_t labels[] = {2, 0, 1};
  const double loss_torch = 67.46970639534867;
  const double grad_torch[] = {0.056413123819082506, 0.009803130988400206, -0.0805072528897233,
                               0.012587469352225083, 0.0017035287300155634, -0.27929321737714224,
                               0.05972356456421814,  0.06600474668018719,  0.07294652648589303,
                               0.08061837964684393,  0.2436861928766683,   -0.3333333333333333,
                               0.08964714045666503,  9.065311518084752e-45, 1.7484718212251272e-66};
  double p[15], g[15] = {};
  double loss = cross_entropy_forward(p, x, labels, 3, 5, 1.0 / 3.0);
  cross_entropy_backward(g, p, labels, 3, 5, 1.0 / 3.0);
  require_close("loss vs torch", &loss, &loss_torch, 1, 1e-12, 1e-12);
  require_close("grad vs torch", g, grad_torch, 15, 1e-12, 1e-15);
}

TEST_CASE("cross_entropy: labels out of range throw ValueError naming row and label",
          "[cross_entropy][error]") {
  const ptrdiff_t R = 4, C = 5;
  std::vector<float> x(R * C, 0.f), p(R * C), d(R * C);
  std::vector<int32_t> bad_hi = {0, 1, 5, 2}, bad_neg = {-1, 1, 2, 3};
  REQUIRE_THROWS_AS(cross_entropy_forward(p.data(), x.data(), bad_hi.data(), R, C, 1.f), ValueError);
  REQUIRE_THROWS_WITH(cross_entropy_forward(p.data(), x.data(), bad_hi.data(), R, C, 1.f),
                      Contains("row 2") && Contains("label 5"));
  REQUIRE_THROWS_WITH(cross_entropy_forward(p.data(), x.data(), bad_neg.data(), R, C, 1.f),
                      Contains("row 0") && Contains("label -1"));
  REQUIRE_THROWS_AS(cross_entropy_backward(d.data(), p.data(), bad_hi.data(), R, C, 1.f), ValueError);
  REQUIRE_THROWS_AS(cross_entropy_forward(p.data(), x.data(), bad_hi.data(), R, 0, 1.f), ShapeError);
  // rows = 0: loss 0, nothing touched
  REQUIRE(cross_entropy_forward<float>(nullptr, nullptr, nullptr, 0, C, 1.f) == 0.f);
}

TEST_CASE("cross_entropy: loss is bitwise reproducible with 2 threads", "[cross_entropy][determinism]") {
  ThreadGuard guard;
  set_num_threads(2);
  const ptrdiff_t R = 512, C = 1000;
  auto x = random_vec<float>(R * C, 2200, -4.0, 4.0);
  auto labels = random_labels(R, C, 2201);
  std::vector<float> p(R * C);
  float a = cross_entropy_forward(p.data(), x.data(), labels.data(), R, C, 1.f / R);
  float b = cross_entropy_forward(p.data(), x.data(), labels.data(), R, C, 1.f / R);
  REQUIRE(std::memcmp(&a, &b, sizeof a) == 0);
}
