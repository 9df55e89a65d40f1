// envit/infer/simulate.hpp — early exit simulated from the complete model's logits at every exit:
// where each sample would leave under a criterion, with which prediction; accuracy, exit histogram
// and MAC speed-up (eq. 19); threshold sweeps; and threshold calibration on a validation set.
//
// Input layout: logits (M, N, C) — exit-major: exit j's logits for sample i at
// logits[(j * N + i) * C], as infer_all_exits (infer/early_exit.hpp) writes them.
// The logits are first reduced to scores (ExitScores: one score and one argmax per exit and
// sample, with the same exit_score the real early exit uses); decisions for any threshold are then
// a cheap pass over the scores, so a sweep over K thresholds costs O(K * M * N), not K forwards.
//
// Accuracy "drop" is absolute (a fraction: 0.01 = one percentage point) and measured from the final
// exit's accuracy when every sample runs the whole model.
// Calibration looks only at the thresholds it is given (threshold_candidates: every distinct
// score observed at the non-final exits when there are at most `max_count`, otherwise evenly spaced
// quantiles of them, plus "never exit early"); it picks a single shared threshold.
// Not here: per-exit threshold search, confidence intervals, anything that runs the model.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/infer/criteria.hpp"
#include "envit/infer/macs.hpp"

namespace envit {

// One score and one prediction per (exit, sample), both (M, N).
struct ExitScores {
  ExitRule rule = ExitRule::confidence;
  bool entropy_normalized = true;
  std::vector<double> weights;  // beem only: the exit weights the scores were computed with
  int exits = 0, samples = 0;
  std::vector<double> score;  // (M, N)
  std::vector<int> pred;      // (M, N)
  double score_at(int j, int i) const { return score[std::size_t(j) * samples + i]; }
  int pred_at(int j, int i) const { return pred[std::size_t(j) * samples + i]; }
};

// Where each sample leaves and what it predicts there.
struct ExitDecisions {
  std::vector<int> exit;  // (N) exit index 0..M-1
  std::vector<int> pred;  // (N) predicted class at that exit
};

struct ExitStats {
  std::int64_t samples = 0;
  std::int64_t correct = 0;             // needs labels; 0 without
  double accuracy = 0;                  // correct / samples (0 without labels)
  std::vector<std::int64_t> histogram;  // (M) samples per exit
  double speedup = 0;                   // eq. 19, baseline VitMacs::full()
  double mean_macs = 0;                 // per sample
};

// Scores of every exit's logits under `crit`'s rule (and beem weights; thresholds do not matter).
template <class T>
ExitScores exit_scores(const T* logits,  // (M, N, C)
                       int M, int N, int C, const ExitCriterion& crit) {
  ENVIT_CHECK(M >= 1 && N >= 0 && C >= 2, ShapeError, "exit_scores: invalid shape M=", M, " N=", N,
              " C=", C);
  crit.validate(M);
  ExitScores s;
  s.rule = crit.rule;
  s.entropy_normalized = crit.entropy_normalized;
  if (crit.rule == ExitRule::beem) s.weights = crit.weights;
  s.exits = M;
  s.samples = N;
  s.score.resize(std::size_t(M) * N);
  s.pred.resize(std::size_t(M) * N);
  for (int i = 0; i < N; ++i) {
    ExitTrack track;
    for (int j = 0; j < M; ++j) {
      ExitScore r = exit_score(crit, logits + (std::size_t(j) * N + i) * C, C, track);
      s.score[std::size_t(j) * N + i] = r.score;
      s.pred[std::size_t(j) * N + i] = r.pred;
    }
  }
  return s;
}
// The same for the rules that need no weights (every rule but beem).
template <class T>
ExitScores exit_scores(const T* logits,  // (M, N, C)
                       int M, int N, int C, ExitRule rule, bool entropy_normalized = true) {
  ENVIT_CHECK(rule != ExitRule::beem, ValueError, "exit_scores: the beem rule needs exit weights; pass an "
              "ExitCriterion (ExitCriterion::beem(alpha, weights))");
  return exit_scores(logits, M, N, C, ExitCriterion{rule, {0.0}, entropy_normalized, {}});
}

// The criterion the scores were computed for, with one shared threshold t.
inline ExitCriterion scores_criterion(const ExitScores& s, double t) {
  return ExitCriterion{s.rule, {t}, s.entropy_normalized, s.weights};
}

inline void exit_check_rule(const ExitScores& s, const ExitCriterion& c, const char* who) {
  ENVIT_CHECK(s.rule == c.rule && (c.rule != ExitRule::entropy || s.entropy_normalized == c.entropy_normalized),
              ValueError, who, ": scores were computed for rule '", exit_rule_name(s.rule),
              s.rule == ExitRule::entropy ? (s.entropy_normalized ? " (normalized)" : " (nats)") : "",
              "', the criterion is '", exit_rule_name(c.rule),
              c.rule == ExitRule::entropy ? (c.entropy_normalized ? " (normalized)" : " (nats)") : "", "'");
  ENVIT_CHECK(c.rule != ExitRule::beem || s.weights == c.weights, ValueError, who,
              ": the beem scores were computed with other exit weights than the criterion's");
}

// Decisions under `crit` (its rule must match the scores'): the first exit that fires.
inline void exit_decide(ExitDecisions& out, const ExitScores& s, const ExitCriterion& crit) {
  exit_check_rule(s, crit, "exit_decide");
  crit.validate(s.exits);
  out.exit.resize(std::size_t(s.samples));
  out.pred.resize(std::size_t(s.samples));
  for (int i = 0; i < s.samples; ++i) {
    int j = 0;
    while (!crit.fires(j, s.exits, s.score_at(j, i))) ++j;
    out.exit[i] = j;
    out.pred[i] = s.pred_at(j, i);
  }
}
inline ExitDecisions exit_decide(const ExitScores& s, const ExitCriterion& crit) {
  ExitDecisions d;
  exit_decide(d, s, crit);
  return d;
}

// Accuracy (labels may be nullptr: accuracy and correct stay 0), histogram and eq. 19 speed-up.
inline ExitStats exit_stats(const ExitDecisions& d, const std::int32_t* labels, const VitMacs& macs) {
  const int M = macs.num_exits();
  ExitStats st;
  st.samples = static_cast<std::int64_t>(d.exit.size());
  st.histogram.assign(std::size_t(M), 0);
  for (std::size_t i = 0; i < d.exit.size(); ++i) {
    ENVIT_CHECK(d.exit[i] >= 0 && d.exit[i] < M, ValueError, "exit_stats: sample ", i, " left at exit ",
                d.exit[i], ", the model has ", M, " exits");
    ++st.histogram[std::size_t(d.exit[i])];
    if (labels && d.pred[i] == labels[i]) ++st.correct;
  }
  if (st.samples > 0) {
    st.accuracy = labels ? double(st.correct) / double(st.samples) : 0.0;
    st.speedup = macs_speedup(macs, st.histogram);
    st.mean_macs = macs_mean(macs, st.histogram);
  }
  return st;
}

// Everything at once: scores, decisions, stats (labels may be nullptr).
template <class T>
ExitStats simulate_exits(ExitDecisions& out, const T* logits,  // (M, N, C)
                         int N, int C, const ExitCriterion& crit, const std::int32_t* labels,
                         const VitMacs& macs) {
  ExitScores s = exit_scores(logits, macs.num_exits(), N, C, crit);
  exit_decide(out, s, crit);
  return exit_stats(out, labels, macs);
}

// Accuracy of exit j alone (every sample classified by exit j).
inline double exit_accuracy(const ExitScores& s, const std::int32_t* labels, int j) {
  ENVIT_CHECK(j >= 0 && j < s.exits, ValueError, "exit_accuracy: exit ", j, " out of range 0..", s.exits - 1);
  if (s.samples == 0) return 0;
  std::int64_t ok = 0;
  for (int i = 0; i < s.samples; ++i) ok += s.pred_at(j, i) == labels[i];
  return double(ok) / double(s.samples);
}

// BEEM's exit weights (Bajpai & Hanawal, ICLR 2025). BEEM-C: w_j = the cost of reaching exit j
// relative to reaching the final exit, MACs(j) / MACs(M-1) (1 at the final exit; for equal blocks
// and negligible heads, proportional to the exit's depth as in the paper's Figure 1 example
// w = 0.1, 0.2, ..., 1.2). BEEM-A: w_j = exit j's accuracy on a validation set (any rule's scores
// give the predictions).
inline std::vector<double> beem_weights_cost(const VitMacs& macs) {
  std::vector<double> w(std::size_t(macs.num_exits()));
  for (int j = 0; j < macs.num_exits(); ++j) w[j] = double(macs.to_exit(j)) / double(macs.to_exit(macs.num_exits() - 1));
  return w;
}

// Candidate thresholds: the distinct scores at the non-final exits (ascending), or `max_count`
// evenly spaced order statistics of them (always including the smallest and the largest), then
// ExitCriterion::never(rule) — every sample to the final exit. For the energy rule (strict
// `score < t`) each candidate is the next double above an observed score, so that candidate k
// exits exactly the samples whose score is <= the k-th observed score, as for the other rules.
inline std::vector<double> threshold_candidates(const ExitScores& s, int max_count = 512) {
  ENVIT_CHECK(max_count >= 2, ValueError, "threshold_candidates: max_count must be >= 2, got ", max_count);
  std::vector<double> v;
  v.reserve(std::size_t(std::max(0, s.exits - 1)) * s.samples + 1);
  for (int j = 0; j + 1 < s.exits; ++j)
    for (int i = 0; i < s.samples; ++i)
      if (!std::isnan(s.score_at(j, i))) v.push_back(s.score_at(j, i));
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  if (static_cast<int>(v.size()) > max_count) {
    std::vector<double> q(static_cast<std::size_t>(max_count));
    const double step = double(v.size() - 1) / double(max_count - 1);
    for (int k = 0; k < max_count; ++k) q[k] = v[std::size_t(double(k) * step + 0.5)];
    q.erase(std::unique(q.begin(), q.end()), q.end());
    v.swap(q);
  }
  if (s.rule == ExitRule::energy)
    for (double& t : v) t = std::nextafter(t, std::numeric_limits<double>::infinity());
  v.push_back(ExitCriterion::never(s.rule));
  return v;
}

inline std::vector<double> beem_weights_accuracy(const ExitScores& val, const std::int32_t* labels) {
  ENVIT_CHECK(labels != nullptr && val.samples > 0, ValueError,
              "beem_weights_accuracy: needs a non-empty labelled validation set");
  std::vector<double> w(std::size_t(val.exits));
  for (int j = 0; j < val.exits; ++j) w[j] = exit_accuracy(val, labels, j);
  return w;
}

struct SweepPoint {
  double threshold;
  ExitStats stats;
};

// Stats at each shared threshold (same rule as the scores).
inline std::vector<SweepPoint> threshold_sweep(const ExitScores& s, const std::int32_t* labels,
                                               const VitMacs& macs, const std::vector<double>& thresholds) {
  ENVIT_CHECK(macs.num_exits() == s.exits, ShapeError, "threshold_sweep: scores for ", s.exits,
              " exits, MAC counts for ", macs.num_exits());
  std::vector<SweepPoint> out;
  out.reserve(thresholds.size());
  ExitDecisions d;
  ExitCriterion c = scores_criterion(s, 0.0);
  for (double t : thresholds) {
    c.thresholds[0] = t;
    exit_decide(d, s, c);
    out.push_back({t, exit_stats(d, labels, macs)});
  }
  return out;
}

struct Calibration {
  bool met = false;                // some candidate reached the target on the validation set
  ExitCriterion criterion;         // the chosen rule + shared threshold
  ExitStats val;                   // its stats on the validation set
  double reference_accuracy = 0;   // the final exit's accuracy on the validation set (all samples)
};

namespace detail {
inline Calibration calibrate_finish(const ExitScores& val, const std::vector<SweepPoint>& sw,
                                    std::ptrdiff_t best, bool met, const std::int32_t* labels) {
  Calibration c;
  c.met = met;
  c.criterion = scores_criterion(val, sw[std::size_t(best)].threshold);
  c.val = sw[std::size_t(best)].stats;
  c.reference_accuracy = exit_accuracy(val, labels, val.exits - 1);
  return c;
}
inline std::vector<SweepPoint> calibrate_sweep(const ExitScores& val, const std::int32_t* labels,
                                               const VitMacs& macs, std::vector<double> candidates,
                                               const char* who) {
  ENVIT_CHECK(labels != nullptr, ValueError, who, ": validation labels are required");
  ENVIT_CHECK(val.samples > 0, ValueError, who, ": the validation set is empty");
  if (candidates.empty()) candidates = threshold_candidates(val);
  return threshold_sweep(val, labels, macs, candidates);
}
}  // namespace detail

// (a) The threshold whose speed-up on the validation set is >= target_speedup and whose accuracy is
// the highest among those (ties: the larger speed-up, then the earlier candidate). If none reaches
// the target, met = false and the fastest candidate is returned.
inline Calibration calibrate_for_speedup(const ExitScores& val, const std::int32_t* labels,
                                         const VitMacs& macs, double target_speedup,
                                         std::vector<double> candidates = {}) {
  auto sw = detail::calibrate_sweep(val, labels, macs, std::move(candidates), "calibrate_for_speedup");
  std::ptrdiff_t best = -1, fastest = 0;
  for (std::size_t k = 0; k < sw.size(); ++k) {
    const ExitStats& s = sw[k].stats;
    if (s.speedup > sw[std::size_t(fastest)].stats.speedup) fastest = std::ptrdiff_t(k);
    if (s.speedup < target_speedup) continue;
    if (best < 0 || s.correct > sw[std::size_t(best)].stats.correct ||
        (s.correct == sw[std::size_t(best)].stats.correct && s.speedup > sw[std::size_t(best)].stats.speedup))
      best = std::ptrdiff_t(k);
  }
  const bool met = best >= 0;
  return detail::calibrate_finish(val, sw, met ? best : fastest, met, labels);
}

// (b) The fastest threshold whose validation accuracy is >= (final exit's accuracy - max_drop)
// (ties: the higher accuracy, then the earlier candidate). "Never exit early" always qualifies
// (it reproduces the final exit's accuracy), so met is true whenever that candidate is present.
inline Calibration calibrate_for_accuracy(const ExitScores& val, const std::int32_t* labels,
                                          const VitMacs& macs, double max_drop,
                                          std::vector<double> candidates = {}) {
  ENVIT_CHECK(max_drop >= 0, ValueError, "calibrate_for_accuracy: max_drop must be >= 0, got ", max_drop);
  auto sw = detail::calibrate_sweep(val, labels, macs, std::move(candidates), "calibrate_for_accuracy");
  std::int64_t ref = 0;
  for (int i = 0; i < val.samples; ++i) ref += val.pred_at(val.exits - 1, i) == labels[i];
  // correct / N >= ref / N - max_drop, in counts; the 1e-9 absorbs rounding of max_drop * N.
  const double need = double(ref) - max_drop * double(val.samples) - 1e-9;
  std::ptrdiff_t best = -1, most_accurate = 0;
  for (std::size_t k = 0; k < sw.size(); ++k) {
    const ExitStats& s = sw[k].stats;
    if (s.correct > sw[std::size_t(most_accurate)].stats.correct) most_accurate = std::ptrdiff_t(k);
    if (double(s.correct) < need) continue;
    if (best < 0 || s.speedup > sw[std::size_t(best)].stats.speedup ||
        (s.speedup == sw[std::size_t(best)].stats.speedup && s.correct > sw[std::size_t(best)].stats.correct))
      best = std::ptrdiff_t(k);
  }
  const bool met = best >= 0;
  return detail::calibrate_finish(val, sw, met ? best : most_accurate, met, labels);
}

}  // namespace envit
