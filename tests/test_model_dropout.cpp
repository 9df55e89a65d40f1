// Exit-aware dropout schedule (eq. 10) and masks: table, empirical rates, determinism.
#include <catch2/catch.hpp>

#include <cmath>

#include "envit/core/parallel.hpp"
#include "envit/model/dropout.hpp"

using namespace envit;

TEST_CASE("p_l table for L=12, M=6, p_M=0.3", "[dropout]") {
  auto p = exit_aware_probs(12, {2, 4, 6, 8, 10, 12}, 0.3);
  std::vector<double> want{0, 0, .06, .06, .12, .12, .18, .18, .24, .24, .3, .3};
  REQUIRE(p.size() == want.size());
  for (std::size_t l = 0; l < p.size(); ++l) CHECK(p[l] == Approx(want[l]).margin(1e-15));
  auto q = exit_aware_probs(4, {4}, 0.3);  // one exit: no dropout
  for (double v : q) CHECK(v == 0.0);
  CHECK_THROWS_AS(exit_aware_probs(12, {2, 4}, 0.3), ValueError);
  CHECK_THROWS_AS(exit_aware_probs(12, {12}, 1.0), ValueError);
}

TEST_CASE("empirical skip rates match p_l within a binomial tolerance", "[dropout]") {
  auto p = exit_aware_probs(12, {2, 4, 6, 8, 10, 12}, 0.3);
  LayerMasks m(12, 128);
  std::vector<double> skipped(12, 0);
  const int steps = 400, B = 128;
  for (int s = 0; s < steps; ++s) {
    m.draw(1234, s, p, B);
    for (int l = 0; l < 12; ++l) skipped[l] += B - double(m.exec[l].size());
  }
  const double n = double(steps) * B;
  for (int l = 0; l < 12; ++l) {
    double rate = skipped[l] / n;
    double sd = std::sqrt(p[l] * (1 - p[l]) / n);
    INFO("block " << l << " rate " << rate << " p " << p[l]);
    CHECK(std::abs(rate - p[l]) <= 5 * sd + 1e-12);
  }
}

TEST_CASE("masks are sorted, independent of thread count, and reproducible from the step", "[dropout]") {
  auto p = exit_aware_probs(12, {2, 4, 6, 8, 10, 12}, 0.3);
  LayerMasks a(12, 64), b(12, 64), c(12, 64);
  set_num_threads(1);
  a.draw(99, 17, p, 64);
  set_num_threads(2);
  b.draw(99, 17, p, 64);
  CHECK(a.exec == b.exec);
  for (auto& e : a.exec) CHECK(std::is_sorted(e.begin(), e.end()));
  c.draw(99, 18, p, 64);
  CHECK(c.exec != a.exec);
  // "Restoring" the generator is restoring (seed, step): drawing step 17 again after 18 matches.
  c.draw(99, 17, p, 64);
  CHECK(c.exec == a.exec);
  LayerMasks d(12, 64);
  d.draw(100, 17, p, 64);
  CHECK(d.exec != a.exec);
}

TEST_CASE("a shard's masks are the global batch's masks at its global sample positions", "[dropout]") {
  auto p = exit_aware_probs(12, {2, 4, 6, 8, 10, 12}, 0.3);
  LayerMasks whole(12, 64), lo(12, 64), hi(12, 64);
  whole.draw(7, 5, p, 64);
  lo.draw(7, 5, p, 27, 0, 64);
  hi.draw(7, 5, p, 37, 27, 64);
  CHECK(lo.norm_batch() == 64);
  CHECK(hi.first == 27);
  CHECK(whole.norm_batch() == 64);
  for (int l = 0; l < 12; ++l) {
    std::vector<std::int32_t> joined(lo.exec[l]);
    for (std::int32_t i : hi.exec[l]) joined.push_back(i + 27);  // shard-local -> global position
    CHECK(joined == whole.exec[l]);
  }
  CHECK_THROWS_AS(hi.draw(7, 5, p, 38, 27, 64), ValueError);  // past the end of the global batch
}
