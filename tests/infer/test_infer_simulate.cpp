// Simulation from every exit's logits: decisions, accuracy, histogram, eq. 19; threshold sweeps;
// calibration on a validation set applied to a test set.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "envit/core/rng.hpp"
#include "envit/infer/simulate.hpp"

using namespace envit;

namespace {
VitConfig tiny() {  // the hand-checked config of test_infer_macs.cpp: C_j = 1830, 3468, 5106; full 5070
  VitConfig c;
  c.image_size = 4; c.channels = 2; c.patch = 2;
  c.dim = 6; c.depth = 3; c.heads = 2; c.mlp_hidden = 10; c.classes = 3;
  c.exits = {1, 2, 3};
  return c;
}

// Synthetic (M, N, C) logits: exit j's logits lean towards the label with strength growing with j
// and with a per-sample easiness, plus noise, so later exits are more accurate and confident.
std::vector<float> synthetic_logits(int M, int N, int C, std::vector<std::int32_t>& labels, std::uint64_t seed) {
  CounterRng r(seed, RngStream::init, 11);
  labels.resize(std::size_t(N));
  std::vector<float> z(std::size_t(M) * N * C);
  for (int i = 0; i < N; ++i) {
    labels[i] = std::int32_t(r.below(std::uint32_t(C)));
    const double easy = 3.0 * r.uniform();
    for (int j = 0; j < M; ++j)
      for (int c = 0; c < C; ++c)
        z[(std::size_t(j) * N + i) * C + c] =
            float(2.0 * r.normal() + (c == labels[i] ? easy * (1.0 + j) : 0.0));
  }
  return z;
}
}  // namespace

TEST_CASE("simulated exits, accuracy, histogram and speed-up on hand-made logits", "[infer][simulate]") {
  const VitMacs macs = vit_macs(tiny());
  const int M = 3, N = 4, C = 3;
  // Confidences per (exit, sample), from the logits below:
  //   sample 0: exit 0 [5,0,0] conf ~0.987                 -> leaves at exit 0 under t = 0.9
  //   sample 1: exit 0 [0,0,0] 1/3; exit 1 [0,4,0] ~0.965  -> exit 1
  //   sample 2: [0,0,0] at exits 0 and 1; exit 2 [0,0,1]  -> exit 2 (final)
  //   sample 3: exit 0 [0,0] tie [1,1,-inf-ish]: 0.5 ...   -> exit 2 under 0.9, exit 0 under 0.5
  const float big = -1e30f;
  const float z[M][N][C] = {
      {{5, 0, 0}, {0, 0, 0}, {0, 0, 0}, {1, 1, big}},
      {{0, 0, 5}, {0, 4, 0}, {0, 0, 0}, {1, 1, big}},
      {{0, 5, 0}, {0, 0, 4}, {0, 0, 1}, {0, 0, 2}},
  };
  const std::int32_t labels[N] = {0, 1, 1, 2};
  ExitScores s = exit_scores(&z[0][0][0], M, N, C, ExitRule::confidence);
  CHECK(s.score_at(0, 3) == 0.5);
  CHECK(s.pred_at(0, 3) == 0);

  ExitDecisions d;
  ExitStats st = simulate_exits(d, &z[0][0][0], N, C, ExitCriterion::confidence(0.9), labels, macs);
  CHECK(d.exit == std::vector<int>{0, 1, 2, 2});
  CHECK(d.pred == std::vector<int>{0, 1, 2, 2});
  CHECK(st.histogram == std::vector<std::int64_t>{1, 1, 2});
  CHECK(st.correct == 3);  // sample 2 predicts 2, label 1
  CHECK(st.accuracy == 0.75);
  // speed-up = 4 * 5070 / (1830 + 3468 + 2 * 5106) = 20280 / 15510
  CHECK(st.speedup == Approx(20280.0 / 15510.0).epsilon(1e-15));
  CHECK(st.mean_macs == Approx(15510.0 / 4.0).epsilon(1e-15));

  // t = 0.5: sample 3's tie (0.5) exits at exit 0 with prediction 0 (first of the tied maxima).
  simulate_exits(d, &z[0][0][0], N, C, ExitCriterion::confidence(0.5), labels, macs);
  CHECK(d.exit == std::vector<int>{0, 1, 2, 0});
  CHECK(d.pred == std::vector<int>{0, 1, 2, 0});
  // t = 0: everyone at exit 0; t = 1.01: everyone at the final exit with its argmax.
  st = simulate_exits(d, &z[0][0][0], N, C, ExitCriterion::confidence(0.0), labels, macs);
  CHECK(d.exit == std::vector<int>{0, 0, 0, 0});
  CHECK(st.speedup == Approx(5070.0 / 1830.0).epsilon(1e-15));
  st = simulate_exits(d, &z[0][0][0], N, C, ExitCriterion::confidence(1.01), labels, macs);
  CHECK(d.exit == std::vector<int>{2, 2, 2, 2});
  CHECK(d.pred == std::vector<int>{1, 2, 2, 2});
  CHECK(st.accuracy == exit_accuracy(s, labels, 2));
  CHECK(st.speedup == Approx(5070.0 / 5106.0).epsilon(1e-15));
  // Per-exit thresholds: exit 0 needs 0.99 (sample 0 has 0.987: stays), exit 1 needs 0.5.
  simulate_exits(d, &z[0][0][0], N, C, ExitCriterion::confidence(std::vector<double>{0.99, 0.5}), labels, macs);
  CHECK(d.exit == std::vector<int>{1, 1, 2, 1});
  CHECK(d.pred == std::vector<int>{2, 1, 2, 0});
  // Patience 2: argmax per exit: s0 (0,2,1), s1 (0,1,2), s2 (0,0,2), s3 (0,0,2) -> s2, s3 leave at exit 1.
  simulate_exits(d, &z[0][0][0], N, C, ExitCriterion::patience(2), labels, macs);
  CHECK(d.exit == std::vector<int>{2, 2, 1, 1});
  CHECK(d.pred == std::vector<int>{1, 2, 0, 0});
  // Rule mismatch between scores and criterion is an error.
  CHECK_THROWS_AS(exit_decide(s, ExitCriterion::entropy(0.5)), ValueError);
  // Labels are optional.
  st = simulate_exits(d, &z[0][0][0], N, C, ExitCriterion::confidence(0.9), nullptr, macs);
  CHECK(st.correct == 0);
  CHECK(st.histogram == std::vector<std::int64_t>{1, 1, 2});
}

TEST_CASE("threshold sweep: confidence speed-up never increases with the threshold", "[infer][simulate]") {
  const VitMacs macs = vit_macs(tiny());
  std::vector<std::int32_t> labels;
  const int M = 3, N = 300, C = 3;
  std::vector<float> z = synthetic_logits(M, N, C, labels, 5);
  ExitScores s = exit_scores(z.data(), M, N, C, ExitRule::confidence);
  std::vector<double> cand = threshold_candidates(s, 64);
  REQUIRE(cand.size() <= 65);
  CHECK(std::isinf(cand.back()));
  auto sw = threshold_sweep(s, labels.data(), macs, cand);
  REQUIRE(sw.size() == cand.size());
  for (std::size_t k = 1; k < sw.size(); ++k) {
    INFO("k " << k << " t " << sw[k].threshold);
    CHECK(sw[k].threshold > sw[k - 1].threshold);
    CHECK(sw[k].stats.speedup <= sw[k - 1].stats.speedup);
  }
  // The smallest candidate is the smallest exit-0 score: everyone leaves at exit 0.
  CHECK(sw.front().stats.histogram[0] == N);
  CHECK(sw.back().stats.histogram[M - 1] == N);
  CHECK(sw.back().stats.accuracy == exit_accuracy(s, labels.data(), M - 1));
  // Synthetic sanity: later exits are more accurate.
  CHECK(exit_accuracy(s, labels.data(), 0) < exit_accuracy(s, labels.data(), M - 1));
  // Without a cap, every distinct score is a candidate.
  CHECK(threshold_candidates(s, 100000).size() == std::size_t(2 * N) + 1);
}

TEST_CASE("calibration on validation logits meets its target and is optimal among candidates",
          "[infer][simulate][calibrate]") {
  const VitMacs macs = vit_macs(tiny());
  const int M = 3, N = 400, C = 3;
  std::vector<std::int32_t> yv, yt;
  std::vector<float> zv = synthetic_logits(M, N, C, yv, 21), zt = synthetic_logits(M, N, C, yt, 22);
  for (ExitRule rule : {ExitRule::confidence, ExitRule::entropy, ExitRule::patience}) {
    ExitScores val = exit_scores(zv.data(), M, N, C, rule);
    ExitScores test = exit_scores(zt.data(), M, N, C, rule);
    auto sw = threshold_sweep(val, yv.data(), macs, threshold_candidates(val));
    for (double target : {1.2, 1.5, 2.0}) {
      Calibration cal = calibrate_for_speedup(val, yv.data(), macs, target);
      INFO(exit_rule_name(rule) << " target speed-up " << target << " -> t " << cal.criterion.threshold(0)
                                << " val speed-up " << cal.val.speedup << " acc " << cal.val.accuracy);
      REQUIRE(cal.met);
      CHECK(cal.val.speedup >= target);
      for (const SweepPoint& p : sw)  // nothing meeting the target is more accurate
        if (p.stats.speedup >= target) CHECK(p.stats.correct <= cal.val.correct);
      // The chosen criterion reproduces its validation stats, then applies to the test set.
      ExitStats again = exit_stats(exit_decide(val, cal.criterion), yv.data(), macs);
      CHECK(again.correct == cal.val.correct);
      CHECK(again.speedup == cal.val.speedup);
      ExitStats on_test = exit_stats(exit_decide(test, cal.criterion), yt.data(), macs);
      CHECK(on_test.samples == N);
    }
    for (double drop : {0.0, 0.01, 0.05}) {
      Calibration cal = calibrate_for_accuracy(val, yv.data(), macs, drop);
      INFO(exit_rule_name(rule) << " max drop " << drop << " -> t " << cal.criterion.threshold(0)
                                << " val acc " << cal.val.accuracy << " ref " << cal.reference_accuracy
                                << " speed-up " << cal.val.speedup);
      REQUIRE(cal.met);
      CHECK(cal.reference_accuracy == exit_accuracy(val, yv.data(), M - 1));
      CHECK(cal.val.accuracy >= cal.reference_accuracy - drop - 1e-12);
      for (const SweepPoint& p : sw)  // nothing within the drop is faster
        if (p.stats.accuracy >= cal.reference_accuracy - drop - 1e-12) CHECK(p.stats.speedup <= cal.val.speedup);
    }
  }
  // An unreachable target: met = false, the fastest candidate is returned.
  ExitScores val = exit_scores(zv.data(), M, N, C, ExitRule::confidence);
  Calibration cal = calibrate_for_speedup(val, yv.data(), macs, 100.0);
  CHECK_FALSE(cal.met);
  CHECK(cal.val.histogram[0] == N);
  CHECK_THROWS_AS(calibrate_for_speedup(val, nullptr, macs, 1.5), ValueError);
  CHECK_THROWS_AS(calibrate_for_accuracy(val, yv.data(), macs, -0.1), ValueError);
}

TEST_CASE("calibration picks the known answer on a hand-made validation set", "[infer][simulate][calibrate]") {
  // 2 exits (config tiny with exits {1,3}: C_0 = 192 + 1620 + 18 = 1830, C_1 = 192 + 4860 + 36 = 5088,
  // full 5070), 4 samples, 2 classes. Exit-0 confidences: 0.95, 0.9, 0.8, 0.7 (logit gaps log(p/(1-p))).
  // Exit 0 predicts right for samples 0 and 2, wrong for 1 and 3; the final exit is right for all.
  VitConfig cfg = tiny();
  cfg.exits = {1, 3};
  const VitMacs macs = vit_macs(cfg);
  const int M = 2, N = 4, C = 2;
  const double conf[N] = {0.95, 0.9, 0.8, 0.7};
  const std::int32_t y[N] = {0, 1, 0, 1};
  std::vector<double> z(std::size_t(M) * N * C, 0.0);
  for (int i = 0; i < N; ++i) {
    z[std::size_t(i) * C + 0] = std::log(conf[i] / (1 - conf[i]));  // exit 0 predicts class 0
    z[(std::size_t(N) + i) * C + y[i]] = 3.0;                          // final exit: the label
  }
  ExitScores val = exit_scores(z.data(), M, N, C, ExitRule::confidence);
  // Candidates (ascending exit-0 scores, then +inf): leaving at exit 0 are
  //   t = 0.7: all 4 (correct 2)   t = 0.8: 0,1,2 (correct 3)   t = 0.9: 0,1 (correct 3)
  //   t = 0.95: 0 (correct 4)      t = inf: none (correct 4)
  // Speed-ups: n0 leave early -> 4 * 5070 / (n0 * 1830 + (4 - n0) * 5088).
  auto su = [](int n0) { return 4.0 * 5070.0 / (n0 * 1830.0 + (4 - n0) * 5088.0); };
  // su(0) = 0.9965, su(1) = 20280/17094 = 1.1864, su(2) = 20280/13836 = 1.4657,
  // su(3) = 20280/10578 = 1.9172, su(4) = 20280/7320 = 2.7705.
  // Target 1.5: t = 0.7 (correct 2) or 0.8 (correct 3) qualify -> 0.8.
  Calibration a = calibrate_for_speedup(val, y, macs, 1.5);
  CHECK(a.met);
  CHECK(a.criterion.threshold(0) == Approx(0.8).epsilon(1e-12));
  CHECK(a.val.speedup == Approx(su(3)).epsilon(1e-12));
  CHECK(a.val.correct == 3);
  // Target 1.2: 0.7 (2), 0.8 (3), 0.9 (3) qualify; 0.8 and 0.9 tie on accuracy -> the faster, 0.8.
  Calibration b = calibrate_for_speedup(val, y, macs, 1.2);
  CHECK(b.criterion.threshold(0) == Approx(0.8).epsilon(1e-12));
  // Target 1.1: 0.95 qualifies too and has all 4 right.
  Calibration b2 = calibrate_for_speedup(val, y, macs, 1.1);
  CHECK(b2.criterion.threshold(0) == Approx(0.95).epsilon(1e-12));
  CHECK(b2.val.correct == 4);
  // Target 3: unreachable (su(4) = 2.77) -> met = false, fastest (t = 0.7) returned.
  Calibration b3 = calibrate_for_speedup(val, y, macs, 3.0);
  CHECK_FALSE(b3.met);
  CHECK(b3.criterion.threshold(0) == Approx(0.7).epsilon(1e-12));
  // Max drop 0.25 (one sample of four): correct >= 3 -> fastest is t = 0.8 (3 leave early).
  Calibration c = calibrate_for_accuracy(val, y, macs, 0.25);
  CHECK(c.met);
  CHECK(c.reference_accuracy == 1.0);
  CHECK(c.criterion.threshold(0) == Approx(0.8).epsilon(1e-12));
  CHECK(c.val.accuracy == 0.75);
  // Max drop 0: t = 0.95 (one sample leaves early, still all correct).
  Calibration d = calibrate_for_accuracy(val, y, macs, 0.0);
  CHECK(d.criterion.threshold(0) == Approx(0.95).epsilon(1e-12));
  CHECK(d.val.accuracy == 1.0);
  CHECK(d.val.speedup == Approx(su(1)).epsilon(1e-12));
}
