// The BEEM and energy (COSEE) exit rules on hand-made logits: the running score S and its resets,
// the energy signal and its strict threshold, beem weights, threshold candidates and calibration
// carrying the weights into the chosen criterion.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "envit/infer/simulate.hpp"

using namespace envit;

TEST_CASE("beem: S adds w_j * max prob while the argmax repeats, resets to 0 when it changes", "[infer][criteria]") {
  // 4 exits, 3 classes; argmax: 0, 0, 2, 2.
  const double z[4][3] = {{2, 0, 0}, {1, 0, 0}, {0, 0, 3}, {0, 1, 2}};
  const std::vector<double> w{0.5, 1.0, 1.5, 2.0};
  const ExitCriterion crit = ExitCriterion::beem(0.6, w);
  ExitTrack t;
  std::vector<double> S;
  for (int j = 0; j < 4; ++j) S.push_back(exit_score(crit, z[j], 3, t).score);
  const double p1 = softmax_confidence(z[1], 3), p3 = softmax_confidence(z[3], 3);
  CHECK(S[0] == 0.0);                         // exit 0 has no predecessor
  CHECK(S[1] == 1.0 * p1);                    // same argmax as exit 0
  CHECK(S[2] == 0.0);                         // argmax changed
  CHECK(S[3] == Approx(2.0 * p3).epsilon(1e-15));
  CHECK(crit.fires(1, 4, S[1]) == (p1 >= 0.6));
  CHECK_FALSE(crit.fires(2, 4, S[2]));
  CHECK(ExitCriterion::beem(0.0, w).fires(0, 4, 0.0));   // alpha 0: everyone leaves at exit 0
  CHECK(ExitCriterion::beem(S[1], w).fires(1, 4, S[1])); // ties at the threshold exit
  CHECK_THROWS_AS(ExitCriterion::beem(0.5, {1.0, 1.0}).validate(4), ShapeError);
  CHECK_THROWS_AS(ExitCriterion::beem(0.5, {1.0, -1.0, 1.0, 1.0}).validate(4), ValueError);
  CHECK(parse_exit_rule("beem") == ExitRule::beem);
  CHECK(parse_exit_rule("energy") == ExitRule::energy);
  CHECK_THROWS_AS(parse_exit_rule("pabee"), ValueError);
}

TEST_CASE("energy: sigmoid(-logsumexp(z)), exits strictly below the threshold", "[infer][criteria]") {
  const double z[3] = {1.0, -0.5, 0.25};
  const double lse = std::log(std::exp(1.0) + std::exp(-0.5) + std::exp(0.25));
  CHECK(energy_signal(z, 3) == Approx(1.0 / (1.0 + std::exp(lse))).epsilon(1e-15));
  const float big[2] = {800.f, 0.f};  // exp(lse) overflows: the signal is 0, not NaN
  CHECK(energy_signal(big, 2) == 0.0);
  const double s = energy_signal(z, 3);
  const ExitCriterion at = ExitCriterion::energy(s);
  CHECK_FALSE(at.fires(0, 3, s));  // strict
  CHECK(ExitCriterion::energy(std::nextafter(s, 1.0)).fires(0, 3, s));
  CHECK_FALSE(ExitCriterion::energy(ExitCriterion::never(ExitRule::energy)).fires(1, 3, 0.0));
  CHECK(ExitCriterion::energy(-1.0).fires(2, 3, 0.5));  // the final exit always fires
}

TEST_CASE("beem and energy in the simulation: candidates, weights and calibration", "[infer][simulate][calibrate]") {
  // M = 3 exits, N = 4 samples, C = 2 classes: logits (M, N, C).
  const int M = 3, N = 4, C = 2;
  const float z[M][N][C] = {{{3, 0}, {0, 1}, {2, 0}, {0, 0.5}},
                            {{4, 0}, {1, 0}, {2, 0}, {0, 2}},
                            {{5, 0}, {2, 0}, {0, 1}, {0, 3}}};
  const std::int32_t labels[N] = {0, 0, 0, 1};
  VitConfig cfg;
  cfg.image_size = 8; cfg.channels = 1; cfg.patch = 4; cfg.dim = 8; cfg.depth = 3; cfg.heads = 2;
  cfg.mlp_hidden = 16; cfg.classes = C; cfg.exits = {1, 2, 3};
  cfg.validate();
  const VitMacs macs = vit_macs(cfg);
  const std::vector<double> wc = beem_weights_cost(macs);
  REQUIRE(wc.size() == 3);
  CHECK(wc[2] == 1.0);
  CHECK(wc[0] < wc[1]);
  CHECK(wc[0] == Approx(double(macs.to_exit(0)) / double(macs.to_exit(2))).epsilon(1e-15));

  ExitScores conf = exit_scores(&z[0][0][0], M, N, C, ExitRule::confidence);
  const std::vector<double> wa = beem_weights_accuracy(conf, labels);
  CHECK(wa == std::vector<double>{0.75, 1.0, 0.75});

  CHECK_THROWS_AS(exit_scores(&z[0][0][0], M, N, C, ExitRule::beem), ValueError);
  ExitScores b = exit_scores(&z[0][0][0], M, N, C, ExitCriterion::beem(0, wa));
  CHECK(b.weights == wa);
  CHECK(b.score_at(0, 0) == 0.0);
  CHECK(b.score_at(1, 0) == Approx(1.0 * softmax_confidence(z[1][0], C)).epsilon(1e-15));
  CHECK(b.score_at(1, 1) == 0.0);  // sample 1: argmax 1 then 0
  // A criterion with other weights is refused on these scores.
  CHECK_THROWS_AS(exit_decide(b, ExitCriterion::beem(0.5, wc)), ValueError);
  // The threshold equal to sample 0's S at exit 1 exits it there; calibration keeps the weights.
  ExitDecisions d = exit_decide(b, ExitCriterion::beem(b.score_at(1, 0), wa));
  CHECK(d.exit[0] == 1);
  Calibration cal = calibrate_for_accuracy(b, labels, macs, 0.0);
  CHECK(cal.criterion.rule == ExitRule::beem);
  CHECK(cal.criterion.weights == wa);
  CHECK(cal.val.accuracy >= 0.75);

  // Energy candidates sit just above observed signals, so candidate k exits every sample whose
  // signal is <= the k-th observed one; the last candidate is "never".
  ExitScores e = exit_scores(&z[0][0][0], M, N, C, ExitRule::energy);
  std::vector<double> cand = threshold_candidates(e);
  CHECK(cand.back() == -std::numeric_limits<double>::infinity());
  double smallest = 1;
  for (int j = 0; j + 1 < M; ++j)
    for (int i = 0; i < N; ++i) smallest = std::min(smallest, e.score_at(j, i));
  CHECK(cand.front() == std::nextafter(smallest, 2.0));
  ExitDecisions de = exit_decide(e, ExitCriterion::energy(cand.front()));
  int early = 0;
  for (int i = 0; i < N; ++i) early += de.exit[i] < M - 1;
  CHECK(early >= 1);
  Calibration ce = calibrate_for_speedup(e, labels, macs, 1.0);
  CHECK(ce.met);
  CHECK(ce.criterion.rule == ExitRule::energy);
}
