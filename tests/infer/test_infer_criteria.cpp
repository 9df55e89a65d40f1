// Exit criteria on hand-made logits: confidence (ties at the threshold), entropy, patience,
// per-exit thresholds, the final exit taking everyone, argument checks.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "envit/infer/criteria.hpp"

using namespace envit;

TEST_CASE("confidence is the max softmax probability; ties at the threshold exit", "[infer][criteria]") {
  const double z2[2] = {0.0, 0.0};   // softmax (1/2, 1/2): exactly 0.5
  const float z4[4] = {3, 3, 3, 3};  // exactly 0.25
  CHECK(softmax_confidence(z2, 2) == 0.5);
  CHECK(softmax_confidence(z4, 4) == 0.25);
  // [2, 1, 0]: 1 / (1 + e^-1 + e^-2)
  const double z3[3] = {0.0, 2.0, 1.0};
  CHECK(softmax_confidence(z3, 3) == Approx(1.0 / (1.0 + std::exp(-1.0) + std::exp(-2.0))).epsilon(1e-15));
  // Logits near 100 do not overflow.
  const float zb[3] = {100.f, 99.f, 98.f};
  CHECK(softmax_confidence(zb, 3) == Approx(1.0 / (1.0 + std::exp(-1.0) + std::exp(-2.0))).epsilon(1e-12));

  ExitTrack t;
  ExitScore s = exit_score(ExitCriterion::confidence(0.5), z2, 2, t);
  CHECK(s.pred == 0);  // first index among equal maxima
  CHECK(s.score == 0.5);
  const int M = 3;
  CHECK(ExitCriterion::confidence(0.5).fires(0, M, s.score));                          // tie exits
  CHECK_FALSE(ExitCriterion::confidence(std::nextafter(0.5, 1.0)).fires(0, M, s.score));
  CHECK(ExitCriterion::confidence(0.0).fires(0, M, s.score));
  CHECK_FALSE(ExitCriterion::confidence(1.01).fires(1, M, 1.0));
  CHECK(ExitCriterion::confidence(1.01).fires(2, M, 0.0));   // the final exit always fires
  CHECK(ExitCriterion::confidence(1.01).fires(2, M, std::nan("")));
  CHECK_FALSE(ExitCriterion::confidence(0.0).fires(0, M, std::nan("")));  // NaN never fires early
  CHECK(exit_score(ExitCriterion::confidence(0.5), z3, 3, t).pred == 1);
}

TEST_CASE("entropy score, natural log or normalised by log C", "[infer][criteria]") {
  // p = (1/2, 1/4, 1/4) from logits (log 2, 0, 0): H = 1.5 log 2 nats.
  const double z[3] = {std::log(2.0), 0.0, 0.0};
  const double h = 1.5 * std::log(2.0);
  CHECK(softmax_entropy(z, 3, false) == Approx(h).epsilon(1e-14));
  CHECK(softmax_entropy(z, 3, true) == Approx(h / std::log(3.0)).epsilon(1e-14));
  // Uniform: H = log C, normalised 1.
  const float u[5] = {0.3f, 0.3f, 0.3f, 0.3f, 0.3f};
  CHECK(softmax_entropy(u, 5, false) == Approx(std::log(5.0)).epsilon(1e-14));
  CHECK(softmax_entropy(u, 5, true) == Approx(1.0).epsilon(1e-14));
  // A one-hot distribution (other classes at -inf) has entropy exactly 0 (no 0 * inf NaN).
  const double inf = std::numeric_limits<double>::infinity();
  const double oh[3] = {-inf, 4.0, -inf};
  CHECK(softmax_entropy(oh, 3, true) == 0.0);

  const int M = 2;
  ExitTrack t;
  ExitCriterion c = ExitCriterion::entropy(h, false);
  ExitScore s = exit_score(c, z, 3, t);
  CHECK(s.pred == 0);
  CHECK(c.with_threshold(s.score).fires(0, M, s.score));          // <= : a tie exits
  CHECK_FALSE(c.with_threshold(std::nextafter(s.score, 0.0)).fires(0, M, s.score));
  CHECK(ExitCriterion::entropy(0.0).fires(0, M, 0.0));
  CHECK_FALSE(ExitCriterion::entropy(ExitCriterion::never(ExitRule::entropy)).fires(0, M, 0.0));
  CHECK(ExitCriterion::entropy(-1.0).fires(1, M, 1.0));  // final exit
}

TEST_CASE("patience: the argmax must repeat for `patience` consecutive exits", "[infer][criteria]") {
  // Argmax per exit (5 exits, 3 classes): 1, 1, 2, 2, 2.
  const double z[5][3] = {{0, 1, 0}, {0, 2, 1}, {0, 1, 3}, {1, 0, 2}, {0, 0, 5}};
  auto leave = [&](const ExitCriterion& c, int& pred) {
    ExitTrack t;
    for (int j = 0; j < 5; ++j) {
      ExitScore s = exit_score(c, z[j], 3, t);
      if (c.fires(j, 5, s.score)) { pred = s.pred; return j; }
    }
    return -1;
  };
  int pred = -1;
  CHECK(leave(ExitCriterion::patience(1), pred) == 0);  // streak 1 at exit 0
  CHECK(pred == 1);
  CHECK(leave(ExitCriterion::patience(2), pred) == 1);  // streaks 1, 2
  CHECK(pred == 1);
  CHECK(leave(ExitCriterion::patience(3), pred) == 4);  // streaks 1, 2, 1, 2, 3
  CHECK(pred == 2);
  CHECK(leave(ExitCriterion::patience(4), pred) == 4);  // never reached: the final exit takes it
  CHECK(pred == 2);
  // Streak values themselves.
  ExitTrack t;
  std::vector<double> streak;
  for (int j = 0; j < 5; ++j) streak.push_back(exit_score(ExitCriterion::patience(9), z[j], 3, t).score);
  CHECK(streak == std::vector<double>{1, 2, 1, 2, 3});
  // Alternating argmax never builds a streak.
  const double alt[4][2] = {{1, 0}, {0, 1}, {1, 0}, {0, 1}};
  ExitTrack t2;
  for (int j = 0; j < 4; ++j) CHECK(exit_score(ExitCriterion::patience(2), alt[j], 2, t2).score == 1.0);
}

TEST_CASE("per-exit thresholds and argument checks", "[infer][criteria]") {
  // 3 exits; thresholds 0.9 at exit 0 and 0.5 at exit 1 (the final exit's value is ignored).
  ExitCriterion c = ExitCriterion::confidence(std::vector<double>{0.9, 0.5});
  CHECK_NOTHROW(c.validate(3));
  CHECK_FALSE(c.fires(0, 3, 0.6));
  CHECK(c.fires(1, 3, 0.6));
  CHECK(c.fires(2, 3, 0.0));
  ExitCriterion c3 = ExitCriterion::confidence(std::vector<double>{0.9, 0.5, 2.0});
  CHECK_NOTHROW(c3.validate(3));
  CHECK(c3.fires(2, 3, 0.0));
  CHECK_THROWS_AS(c3.validate(5), ShapeError);
  CHECK_THROWS_AS(ExitCriterion::confidence(std::vector<double>{}).validate(3), ShapeError);
  CHECK_THROWS_AS(ExitCriterion::confidence(std::nan("")).validate(3), ValueError);
  CHECK_NOTHROW(ExitCriterion::confidence(0.5).validate(1));
  CHECK(ExitCriterion::confidence(2.0).fires(0, 1, 0.0));  // a single exit is the final exit
}
