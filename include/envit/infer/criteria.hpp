// envit/infer/criteria.hpp — early-exit criteria: when a sample may leave at exit j.
//
// Every rule reduces an exit's logits to one number, the exit *score*, and compares it with the
// exit's threshold; the same two functions (exit_score, ExitCriterion::fires) serve the simulation
// (infer/simulate.hpp) and the real early exit (infer/early_exit.hpp), so given bitwise-equal
// logits both make the same decisions.
//
//   confidence (eq. 18): score = max_c softmax(z)_c;  exits when score >= threshold.
//                        Computed as 1 / sum_c exp(z_c - max z) in double, so logits with a k-way
//                        tie for the maximum and every other class at -inf give exactly 1/k
//                        (e.g. [0, 0] -> 0.5): "ties at the threshold" exit.
//   entropy:             score = H(softmax(z)) = log S - sum_c e_c (z_c - m) / S  (natural log,
//                        e_c = exp(z_c - m), S = sum e_c), divided by log C when
//                        `entropy_normalized` (the default: the score is then in [0, 1] for any C,
//                        so one threshold means the same thing across datasets); exits when
//                        score <= threshold.
//   patience (PABEE):    score = streak = how many consecutive exits, ending at this one, have
//                        predicted the same class as this one (1 at the first exit, or after a
//                        change); exits when streak >= threshold ("the argmax has been the same for
//                        `patience` consecutive exits"). PABEE's patience t (counter of *unchanged*
//                        predictions) is threshold t + 1 here. Needs per-sample state (ExitTrack).
//   beem (BEEM):         score = S, a running sum over exits (Bajpai & Hanawal, ICLR 2025; the
//                        released ALBERT code path): S = 0 before the first exit; at exit j, if the
//                        argmax equals exit j-1's then S += w_j * max_c softmax(z)_c, else S = 0
//                        (exit 0 has no predecessor, so S = 0 there); exits when S >= threshold.
//                        w_j: one non-negative weight per exit (`weights`, M values; see
//                        beem_weights_cost / beem_weights_accuracy in simulate.hpp). Needs ExitTrack.
//   energy (COSEE):      score = sigmoid(-T logsumexp(z / T)) with T = 1 (He et al., AAAI 2025):
//                        lower = more confident; exits when score < threshold (strict, as in the
//                        source). Computed as 1 / (1 + exp(lse)) in double (0 for lse > ~709).
//
// Thresholds: one shared value, or one per exit (M-1 values for the non-final exits, or M values of
// which the last is ignored). The final exit always takes every remaining sample, whatever its score.
// The prediction at an exit is argmax z (the first index among equal maxima). Scores are computed
// in double from the logits of any scalar type. NaN logits give a NaN score, which never fires.
// Not here: learned exit policies, combinations of rules, calibrated temperatures (scale the logits).
#pragma once
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "envit/core/error.hpp"

namespace envit {

enum class ExitRule { confidence, entropy, patience, beem, energy };

inline const char* exit_rule_name(ExitRule r) {
  switch (r) {
    case ExitRule::confidence: return "confidence";
    case ExitRule::entropy: return "entropy";
    case ExitRule::patience: return "patience";
    case ExitRule::beem: return "beem";
    case ExitRule::energy: return "energy";
  }
  return "?";
}
inline ExitRule parse_exit_rule(const std::string& s) {
  for (ExitRule r : {ExitRule::confidence, ExitRule::entropy, ExitRule::patience, ExitRule::beem, ExitRule::energy})
    if (s == exit_rule_name(r)) return r;
  throw ValueError("unknown exit rule '" + s + "' (expected confidence, entropy, patience, beem or energy)");
}
// Rules whose score falls as confidence rises (they exit when the score is below the threshold).
inline bool exit_rule_lower_is_confident(ExitRule r) { return r == ExitRule::entropy || r == ExitRule::energy; }

// Per-sample state carried from one exit to the next (the patience and beem rules read it).
struct ExitTrack {
  int prev_pred = -1;  // argmax at the previous exit, -1 before the first exit
  int streak = 0;      // consecutive exits ending at the previous one with that argmax
  int seen = 0;        // exits scored so far (the index of the next exit)
  double sum = 0;      // beem's running score S after the previous exit
};

struct ExitScore {
  int pred;      // argmax of the logits
  double score;  // confidence, entropy, streak, S or energy (see the rule)
};

struct ExitCriterion {
  ExitRule rule = ExitRule::confidence;
  std::vector<double> thresholds{1.0};  // 1 shared, or per exit (M-1, or M with the last ignored)
  bool entropy_normalized = true;       // entropy rule only: divide by log C
  std::vector<double> weights;          // beem rule only: w_j, one per exit (M values)

  static ExitCriterion confidence(double t) { return {ExitRule::confidence, {t}, true, {}}; }
  static ExitCriterion confidence(std::vector<double> per_exit) {
    return {ExitRule::confidence, std::move(per_exit), true, {}};
  }
  static ExitCriterion entropy(double t, bool normalized = true) { return {ExitRule::entropy, {t}, normalized, {}}; }
  static ExitCriterion entropy(std::vector<double> per_exit, bool normalized = true) {
    return {ExitRule::entropy, std::move(per_exit), normalized, {}};
  }
  static ExitCriterion patience(int p) { return {ExitRule::patience, {double(p)}, true, {}}; }
  static ExitCriterion beem(double alpha, std::vector<double> w) {
    return {ExitRule::beem, {alpha}, true, std::move(w)};
  }
  static ExitCriterion energy(double tau) { return {ExitRule::energy, {tau}, true, {}}; }
  // The threshold at which no sample leaves before the final exit (+inf, or -inf for entropy and
  // energy).
  static double never(ExitRule r) {
    const double inf = std::numeric_limits<double>::infinity();
    return exit_rule_lower_is_confident(r) ? -inf : inf;
  }
  // The same rule with one shared threshold.
  ExitCriterion with_threshold(double t) const { return {rule, {t}, entropy_normalized, weights}; }

  void validate(int num_exits) const {
    const int n = static_cast<int>(thresholds.size());
    ENVIT_CHECK(num_exits >= 1, ValueError, "ExitCriterion: the model needs at least one exit");
    ENVIT_CHECK(n == 1 || n == num_exits - 1 || n == num_exits, ShapeError, "ExitCriterion (",
                exit_rule_name(rule), "): ", n, " thresholds for ", num_exits,
                " exits; give 1 (shared), ", num_exits - 1, " (non-final exits) or ", num_exits);
    for (int j = 0; j < n; ++j)
      ENVIT_CHECK(!std::isnan(thresholds[j]), ValueError, "ExitCriterion: threshold ", j, " is NaN");
    if (rule != ExitRule::beem) return;
    ENVIT_CHECK(int(weights.size()) == num_exits, ShapeError, "ExitCriterion (beem): ", weights.size(),
                " exit weights for ", num_exits, " exits; give one per exit");
    for (int j = 0; j < num_exits; ++j)
      ENVIT_CHECK(std::isfinite(weights[j]) && weights[j] >= 0, ValueError, "ExitCriterion (beem): weight ", j,
                  " is ", weights[j], "; weights must be finite and >= 0");
  }
  double threshold(int j) const {
    return thresholds.size() == 1 ? thresholds[0] : thresholds[static_cast<std::size_t>(j)];
  }
  // Does a sample with this score leave at exit j of M? The final exit always fires.
  bool fires(int j, int num_exits, double score) const {
    if (j >= num_exits - 1) return true;
    const double t = threshold(j);
    if (rule == ExitRule::entropy) return score <= t;
    if (rule == ExitRule::energy) return score < t;
    return score >= t;
  }
};

// argmax over C logits; the first index among equal maxima (NaNs are skipped unless all are NaN).
template <class T>
int exit_argmax(const T* z, int C) {
  int best = 0;
  for (int c = 1; c < C; ++c)
    if (z[c] > z[best] || (std::isnan(double(z[best])) && !std::isnan(double(z[c])))) best = c;
  return best;
}

// max_c softmax(z)_c = 1 / sum_c exp(z_c - max z)   (eq. 18), in double.
template <class T>
double softmax_confidence(const T* z, int C) {
  const double m = double(z[exit_argmax(z, C)]);
  double s = 0;
  for (int c = 0; c < C; ++c) s += std::exp(double(z[c]) - m);
  return 1.0 / s;
}

// H(softmax(z)) in nats, divided by log C when `normalized`; in double.
template <class T>
double softmax_entropy(const T* z, int C, bool normalized) {
  const double m = double(z[exit_argmax(z, C)]);
  double s = 0, ez = 0;
  for (int c = 0; c < C; ++c) {
    const double d = double(z[c]) - m;
    const double e = std::exp(d);
    s += e;
    if (e > 0) ez += e * d;  // e == 0 (d = -inf) contributes p log p -> 0, not 0 * -inf
  }
  double h = std::log(s) - ez / s;
  if (h < 0) h = 0;  // rounding for one-hot-like logits
  return normalized ? h / std::log(double(C)) : h;
}

// sigmoid(-logsumexp(z)) = 1 / (1 + exp(lse)): COSEE's energy signal at T = 1, in double.
template <class T>
double energy_signal(const T* z, int C) {
  const double m = double(z[exit_argmax(z, C)]);
  double s = 0;
  for (int c = 0; c < C; ++c) s += std::exp(double(z[c]) - m);
  return 1.0 / (1.0 + std::exp(m + std::log(s)));
}

// The score of exit j's logits under `crit`, updating the sample's patience / beem state.
// Must be called for every exit the sample reaches, in order (exit 0 first).
template <class T>
ExitScore exit_score(const ExitCriterion& crit, const T* z, int C, ExitTrack& track) {
  ExitScore r;
  r.pred = exit_argmax(z, C);
  switch (crit.rule) {
    case ExitRule::confidence: r.score = softmax_confidence(z, C); break;
    case ExitRule::entropy: r.score = softmax_entropy(z, C, crit.entropy_normalized); break;
    case ExitRule::patience:
      track.streak = r.pred == track.prev_pred ? track.streak + 1 : 1;
      r.score = double(track.streak);
      break;
    case ExitRule::beem:
      track.sum = r.pred == track.prev_pred
                      ? track.sum + crit.weights[std::size_t(track.seen)] * softmax_confidence(z, C)
                      : 0.0;
      r.score = track.sum;
      break;
    case ExitRule::energy: r.score = energy_signal(z, C); break;
  }
  track.prev_pred = r.pred;
  ++track.seen;
  return r;
}

}  // namespace envit
