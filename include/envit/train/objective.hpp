// envit/train/objective.hpp — EnViT's training objective (paper eqs. 11-17) and the baseline
// schemes it is compared with, all on one code path:
//
//   scheme     dropout  per-exit loss                                         combination
//   vit-ee     no       CE_j                                                  sum_j
//   sdn        no       w_j(t) CE_j, w_j ramps 0.01 -> s_j/L over training    sum_j (final w = 1)
//   byot       no       (1-a) CE_j + a softCE_j [+ hint] (variants below)     sum_j (final: CE)
//   beem       no       CE_j                                                  sum_j j CE_j / sum_j j
//   cosee      no       exit-position-weighted CE + energy calibration        train/cosee.hpp
//   envit-sd   yes      CE_j                                                  (1/M) sum_j L_j/(1-p_sj)
//   envit-kd   no       (1-a) CE_j + a tau^2 KL_j (final: CE)                 (1/M) sum_j L_j
//   envit      yes      (1-a) CE_j + a tau^2 KL_j (final: CE)                 (1/M) sum_j L_j/(1-p_sj)
//   lgvit      no       stage 1: even steps CE_L only; odd steps              sum_j s_j CE_j / sum_j s_j
//                       (s_M = L for the final exit); stage 2: train/lgvit.hpp (heads only, distilled)
//
// CE_j and KL_j sum over the samples that executed block s_j and divide by the full batch B
// (reduction `batch`), or by the number of those samples (reduction `remaining`: the mean over
// the exit's samples, F.cross_entropy(z_remain, y_remain)); without dropout both are the same.
// BYOT variants (docs/method.md): `released` (Zhang et al.'s code, ArchipLab-LinfengZhang/
// pytorch-self-distillation-final train.py: a = 0.3, T = 3, soft cross-entropy
// -sum softmax(z_L/T) log_softmax(z_j/T) without T^2, no hint); `envit-legacy` (a = 0.1, T = 3,
// T^2 KL, hint 1e-6 |f_j - f_L|^2 / B on every non-final exit); `mmrazor` (open-mmlab/mmrazor
// configs/distill/mmcls/byot: CE 0.7, KDSoftCELoss tau 3 with T^2, and L2Loss(dist=True)
// 0.03 * sqrt(sum_b |f_j,b - f_L,b|^2) on the non-final exits but the last, with the identity in
// place of mmrazor's BYOTConnector; the KD gradient reaches the student, see docs/method.md).
// softCE = KL + H(teacher): the same gradient as KL, the value torch reports.
// KL_j = KL(teacher || student) at temperature tau, teacher = softmax(z_L / tau) without gradient.
// Teacher source: `full` = the complete model (no skipped block) run without gradient — the
// paper's "complete model as teacher" (eq. 11 uses the full features h_L); `self` = the final
// exit applied to the dropped pass's h_L, detached. When no sample skipped any block both are the
// same numbers and the extra forward is skipped.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "envit/model/vit.hpp"
#include "envit/ops/cross_entropy.hpp"
#include "envit/ops/kl_div.hpp"
#include "envit/ops/softmax.hpp"
#include "envit/train/cosee.hpp"

namespace envit {

enum class Scheme { vit_ee, sdn, byot, envit_sd, envit_kd, envit, lgvit, beem, cosee };
enum class ByotVariant { released, envit_legacy, mmrazor };
enum class LossReduction { batch, remaining };
enum class TeacherSource { full, self };

inline const char* scheme_name(Scheme s) {
  switch (s) {
    case Scheme::vit_ee: return "vit-ee";
    case Scheme::sdn: return "sdn";
    case Scheme::byot: return "byot";
    case Scheme::envit_sd: return "envit-sd";
    case Scheme::envit_kd: return "envit-kd";
    case Scheme::envit: return "envit";
    case Scheme::lgvit: return "lgvit";
    case Scheme::beem: return "beem";
    case Scheme::cosee: return "cosee";
  }
  return "?";
}
inline Scheme parse_scheme(const std::string& s) {
  for (Scheme k : {Scheme::vit_ee, Scheme::sdn, Scheme::byot, Scheme::envit_sd, Scheme::envit_kd, Scheme::envit,
                   Scheme::lgvit, Scheme::beem, Scheme::cosee})
    if (s == scheme_name(k)) return k;
  throw ValueError("unknown scheme '" + s +
                   "' (expected one of vit-ee, sdn, byot, envit-sd, envit-kd, envit, lgvit, beem, cosee)");
}
inline const char* byot_variant_name(ByotVariant v) {
  switch (v) {
    case ByotVariant::released: return "released";
    case ByotVariant::envit_legacy: return "envit-legacy";
    case ByotVariant::mmrazor: return "mmrazor";
  }
  return "?";
}
inline ByotVariant parse_byot_variant(const std::string& s) {
  for (ByotVariant v : {ByotVariant::released, ByotVariant::envit_legacy, ByotVariant::mmrazor})
    if (s == byot_variant_name(v)) return v;
  throw ValueError("unknown BYOT variant '" + s + "' (expected released, envit-legacy or mmrazor)");
}
inline const char* reduction_name(LossReduction r) { return r == LossReduction::batch ? "batch" : "remaining"; }
inline LossReduction parse_reduction(const std::string& s) {
  if (s == "batch") return LossReduction::batch;
  if (s == "remaining") return LossReduction::remaining;
  throw ValueError("unknown loss reduction '" + s + "' (expected batch (sum / B) or remaining (mean over the exit's samples))");
}
inline TeacherSource parse_teacher(const std::string& s) {
  if (s == "full") return TeacherSource::full;
  if (s == "self") return TeacherSource::self;
  throw ValueError("unknown teacher source '" + s + "' (expected full or self)");
}
inline const char* teacher_name(TeacherSource t) { return t == TeacherSource::full ? "full" : "self"; }

struct ObjectiveConfig {
  Scheme scheme = Scheme::envit;
  double p_max = 0.3;   // p_M of eq. 10 (used by envit and envit-sd only)
  double alpha = 0.5;   // eq. 16
  double tau = 4.0;     // eq. 11/13
  TeacherSource teacher = TeacherSource::full;
  ByotVariant byot = ByotVariant::released;
  double byot_alpha = 0.3, byot_tau = 3.0, byot_feat = 0.0;  // set from the variant (set_byot)
  LossReduction reduction = LossReduction::batch;
  CoseeConfig cosee;

  void set_byot(ByotVariant v) {
    byot = v;
    byot_tau = 3.0;
    byot_alpha = v == ByotVariant::envit_legacy ? 0.1 : 0.3;
    byot_feat = v == ByotVariant::released ? 0.0 : v == ByotVariant::envit_legacy ? 1e-6 : 0.03;
  }
  // Whether the KD term carries the T^2 factor.
  bool kd_tau2() const { return scheme != Scheme::byot || byot != ByotVariant::released; }
  // The KD term's reported value is the soft cross-entropy (KL + teacher entropy).
  bool kd_soft_ce() const { return scheme == Scheme::byot && byot != ByotVariant::envit_legacy; }
  // LGViT (docs/method.md): stage 1 for the first lgvit_stage1_frac of the steps, then stage 2
  // (train/lgvit.hpp). Defaults and quirks as the authors' code (falcon-xu/LGViT).
  double lgvit_stage1_frac = 0.5;
  double lgvit_alpha = 0.3, lgvit_tau = 2.0, lgvit_het = 0.01, lgvit_hom = 0.01;
  bool lgvit_kd_per_class = true;   // KD divided by B*K (the code's / numel); false: by B
  bool lgvit_teacher_ln = false;    // teacher = final head on LayerNorm(h_L); the code omits the LN
  bool lgvit_detach_hom = false;    // the code's homogeneous targets carry gradient
  bool lgvit_odd_step = false;      // stage 1's alternation, set per step by the trainer

  bool uses_dropout() const { return scheme == Scheme::envit || scheme == Scheme::envit_sd; }
  bool uses_kd() const {
    return scheme == Scheme::envit || scheme == Scheme::envit_kd || scheme == Scheme::byot;
  }
  double kd_tau() const { return scheme == Scheme::byot ? byot_tau : tau; }
  void validate() const {
    ENVIT_CHECK(p_max >= 0 && p_max < 1, ValueError, "objective: p_M must be in [0, 1), got ", p_max);
    ENVIT_CHECK(alpha >= 0 && alpha <= 1, ValueError, "objective: alpha must be in [0, 1], got ", alpha);
    ENVIT_CHECK(tau > 0, ValueError, "objective: tau must be > 0, got ", tau);
    ENVIT_CHECK(byot_alpha >= 0 && byot_alpha <= 1 && byot_tau > 0 && byot_feat >= 0, ValueError,
                "objective: invalid BYOT settings");
    ENVIT_CHECK(lgvit_stage1_frac >= 0 && lgvit_stage1_frac <= 1, ValueError,
                "objective: lgvit stage-1 fraction must be in [0, 1], got ", lgvit_stage1_frac);
    ENVIT_CHECK(lgvit_alpha >= 0 && lgvit_alpha <= 1 && lgvit_tau > 0 && lgvit_het >= 0 && lgvit_hom >= 0,
                ValueError, "objective: invalid LGViT settings (alpha in [0, 1], tau > 0, weights >= 0)");
    ENVIT_CHECK(cosee.thresholds >= 1 && cosee.lambda >= 0 && cosee.beta_max >= 0, ValueError,
                "objective: invalid COSEE settings");
  }
  // Per-block skip probabilities for this scheme (all zero without dropout).
  std::vector<double> block_probs(const VitConfig& cfg) const {
    return exit_aware_probs(cfg.depth, cfg.exits, uses_dropout() ? p_max : 0.0);
  }
};

// What one step measured; sums over the batch divided by B, as in the loss.
struct StepStats {
  double loss = 0;                 // the total objective
  std::vector<double> ce, kl, feat;  // (M) unweighted terms
  std::vector<int> n, correct;     // (M) samples seen by exit j, and how many it classified right
  CoseeStats cosee;                // the cosee scheme's terms and signal range (others: untouched)
  double weight_sum = 0;           // sum_j of the exits' combination weights (clip_mode weight-sum)
};

// Weight of exit j's loss and the mixing of its terms, for the scheme.
struct ExitWeights { double w = 1, ce = 1, kd = 0, feat = 0; };
inline ExitWeights exit_weights(const ObjectiveConfig& o, const VitConfig& cfg, int j,
                                const std::vector<double>& p, double progress) {
  const int M = cfg.num_exits();
  const bool last = j == M - 1;
  ExitWeights e;
  switch (o.scheme) {
    case Scheme::vit_ee: break;
    case Scheme::sdn: {
      double target = double(cfg.exits[j]) / double(cfg.depth);
      e.w = last ? 1.0 : 0.01 + (target - 0.01) * std::clamp(progress, 0.0, 1.0);
      break;
    }
    case Scheme::byot:
      if (!last) {
        e.ce = 1 - o.byot_alpha;
        e.kd = o.byot_alpha;
        // mmrazor's config gives the last shallow exit's hint weight 0.
        e.feat = o.byot == ByotVariant::mmrazor && j == M - 2 ? 0.0 : o.byot_feat;
      }
      break;
    case Scheme::lgvit: {  // stage 1 (stage 2 does not use exit_weights)
      if (!o.lgvit_odd_step) { e.w = last ? 1.0 : 0.0; break; }
      double S = double(cfg.depth);
      for (int k = 0; k + 1 < M; ++k) S += double(cfg.exits[k]);
      e.w = (last ? double(cfg.depth) : double(cfg.exits[j])) / S;
      break;
    }
    case Scheme::beem: e.w = double(j + 1) / (0.5 * double(M) * double(M + 1)); break;
    case Scheme::cosee: break;  // train/cosee.hpp
    case Scheme::envit_sd:
    case Scheme::envit_kd:
    case Scheme::envit:
      e.w = 1.0 / (double(M) * (1.0 - p[cfg.exits[j] - 1]));
      if (!last && o.scheme != Scheme::envit_sd) { e.ce = 1 - o.alpha; e.kd = o.alpha; }
      break;
  }
  return e;
}

// Per-step buffers the objective needs besides the model workspace (integer labels per exit,
// teacher log-probabilities). Sized once for the max batch.
template <class T>
struct ObjectiveWorkspace {
  Arena<T> arena;
  T* teacher_logp = nullptr;       // (B,C)
  std::vector<T*> probs, q, tlogp; // (M) x (B,C)
  std::vector<std::vector<std::int32_t>> labels;  // (M) x (B) reserved
  CoseeWorkspace cosee;            // the cosee scheme's buffers; its thresholds are set per step
  std::vector<double> count, hint; // (M) per exit: samples (reduction remaining), BYOT mmrazor's sum |f_j - f_L|^2
  ObjectiveWorkspace() = default;
  ObjectiveWorkspace(const VitConfig& cfg, int max_batch, int cosee_thresholds = CoseeConfig{}.thresholds)
      : cosee(cfg.num_exits(), max_batch, cosee_thresholds),
        count(std::size_t(cfg.num_exits())), hint(std::size_t(cfg.num_exits())) {
    const std::size_t BC = std::size_t(max_batch) * cfg.classes;
    const int M = cfg.num_exits();
    arena = Arena<T>(arena_round<T>(BC) * (1 + 3 * std::size_t(M)));
    teacher_logp = arena.take(BC);
    for (int j = 0; j < M; ++j) {
      probs.push_back(arena.take(BC));
      q.push_back(arena.take(BC));
      tlogp.push_back(arena.take(BC));
      labels.emplace_back();
      labels.back().reserve(static_cast<std::size_t>(max_batch));
    }
  }
};

// The complete model's final-exit logits (ws.teacher_logits) and final class token (ws.feat_target,
// BYOT's hint), detached. Needed as a separate pass only for `full` teachers when some sample skips
// some block; otherwise objective_forward derives the teacher from the training pass itself.
inline bool teacher_needs_full_pass(const ObjectiveConfig& o, const LayerMasks& masks) {
  return o.uses_kd() && o.teacher == TeacherSource::full && !masks.complete();
}
namespace detail {
template <class T>
void teacher_from_state(ViTWorkspace<T>& ws, const ViTParams<T>& P, const T* hL, int B) {  // hL: (B,N,D)
  const int M = ws.cfg.num_exits();
  exit_head_forward<T>(ws.teacher_logits, ws.scratch_exit, hL, P.exit(M - 1), ws.exit_shape(B),
                       T(ws.cfg.ln_eps));
  const std::ptrdiff_t N = ws.cfg.tokens(), D = ws.cfg.dim;
  for (int b = 0; b < B; ++b)
    std::memcpy(ws.feat_target + b * D, hL + b * N * D, sizeof(T) * std::size_t(D));
}
}  // namespace detail
// The teacher from its own complete forward, run before the training forward (it then costs a
// whole forward pass). train_step_grads uses the shared-prefix form below instead; this one is
// what a frozen teacher (gradient checks) or a reference is built from.
template <class T>
void teacher_forward(ViTWorkspace<T>& ws, const ViTParams<T>& P, const T* images, int B) {
  const T* hL = vit_forward_full<T>(ws, P, images, B, nullptr);
  detail::teacher_from_state<T>(ws, P, hL, B);
}
// The same teacher from the training pass's prefix: after vit_forward_train(ws, P, images, masks,
// ws.h2), only the blocks after each sample's first skipped block are run again (vit_complete_branches).
// At p_M = 0.3 (L 12, M 6) that is ~40% of a forward instead of all of it. Same values as
// teacher_forward (bitwise on the packed float GEMM; tested).
template <class T>
void teacher_from_branches(ViTWorkspace<T>& ws, const ViTParams<T>& P, const LayerMasks& masks) {
  vit_complete_branches<T>(ws, P, masks, ws.h2);
  detail::teacher_from_state<T>(ws, P, ws.h2, masks.batch);
}

namespace detail {
// The cosee scheme (train/cosee.hpp) on a pass where every sample reached every exit.
template <class T>
void cosee_objective(StepStats& st, ViTWorkspace<T>& ws, ObjectiveWorkspace<T>& ow, const std::int32_t* labels,
                     const LayerMasks& masks, const ObjectiveConfig& o, double progress) {
  const VitConfig& cfg = ws.cfg;
  const int B = masks.batch, M = cfg.num_exits(), C = cfg.classes;
  for (int j = 0; j < M; ++j) {
    ENVIT_CHECK(int(masks.exec[cfg.exits[j] - 1].size()) == B, ValueError,
                "objective (cosee): every sample must reach every exit (the scheme has no dropout)");
    ws.dfeat_used[j] = false;
  }
  st.loss = cosee_loss<T>(st.cosee, ow.cosee, ws.dlogits.data(), ow.probs.data(), ws.logits.data(), labels, M, B, C,
                          progress, o.cosee, BatchShard{ws.batch_reduce, masks.global_batch, masks.first == 0});
  for (int j = 0; j < M; ++j) {
    st.n[j] = B;
    double ce = 0;
    for (int b = 0; b < B; ++b) {
      ce += ow.cosee.ce[std::size_t(j) * B + b];
      st.correct[j] += ow.cosee.correct[std::size_t(j) * B + b];
    }
    st.ce[j] = ce / masks.norm_batch();
  }
}
}  // namespace detail

// Loss and exit gradients (into ws.dlogits / ws.dfeat) for a training forward already run with
// `masks`. When `teacher_ready` is true ws.teacher_logits / ws.feat_target are used as they are
// (set by teacher_forward, or frozen by a gradient check); otherwise they are taken from the
// training pass's final state. `progress` in [0,1] drives SDN's weight ramp.
// `p` = o.block_probs(cfg), computed once by the caller. `st` is reused across steps (its vectors
// keep their capacity, so a step does not allocate).
template <class T>
void objective_forward(StepStats& st, ViTWorkspace<T>& ws, ObjectiveWorkspace<T>& ow,
                       const ViTParams<T>& P,
                       const std::int32_t* labels,  // (B)
                       const LayerMasks& masks, const ObjectiveConfig& o,
                       const std::vector<double>& p, double progress, bool teacher_ready) {
  const VitConfig& cfg = ws.cfg;
  const int B = masks.batch, M = cfg.num_exits(), C = cfg.classes, D = cfg.dim;
  const std::ptrdiff_t N = cfg.tokens();
  for (int b = 0; b < B; ++b)
    ENVIT_CHECK(labels[b] >= 0 && labels[b] < C, ValueError, "objective: label ", labels[b],
                " of sample ", b, " outside 0..", C - 1);
  if (o.uses_kd() && !teacher_ready) {
    // The final exit on the pass's own h_L (all B samples), detached.
    exit_head_forward<T>(ws.teacher_logits, ws.scratch_exit, ws.h, P.exit(M - 1), ws.exit_shape(B),
                         T(cfg.ln_eps));
    for (int b = 0; b < B; ++b)
      std::memcpy(ws.feat_target + b * D, ws.h + b * N * D, sizeof(T) * std::size_t(D));
  }
  st.loss = 0;
  st.ce.assign(M, 0); st.kl.assign(M, 0); st.feat.assign(M, 0); st.n.assign(M, 0); st.correct.assign(M, 0);
  st.weight_sum = 0;
  for (int j = 0; j < M; ++j) st.weight_sum += exit_weights(o, cfg, j, p, progress).w;
  if (o.scheme == Scheme::cosee) {
    detail::cosee_objective<T>(st, ws, ow, labels, masks, o, progress);
    return;
  }
  const T tau = T(o.kd_tau());
  if (o.uses_kd()) log_softmax_forward<T>(ow.teacher_logp, ws.teacher_logits, B, C, T(1) / tau);
  // BYOT's hint sum_i |f_j,i - f_L,i|^2 over exit j's samples (f_j: exit j's class-token input).
  auto hint_sq = [&](int j) {
    const auto& idx = masks.exec[cfg.exits[j] - 1];
    const T* f = ws.exit[j].x;  // (n, D)
    double s = 0;
    for (std::size_t i = 0; i < idx.size(); ++i)
      for (int k = 0; k < D; ++k) {
        const double d = double(f[i * D + k]) - double(ws.feat_target[std::size_t(idx[i]) * D + k]);
        s += d * d;
      }
    return s;
  };
  // Under data parallelism (ws.batch_reduce) the batch statistics are the whole batch's: the
  // `remaining` reduction's per-exit sample counts and BYOT mmrazor's hint sums (its norm is not a
  // sum over samples; its value is counted in the loss of the shard holding position 0).
  const bool hint_norm = o.scheme == Scheme::byot && o.byot == ByotVariant::mmrazor;
  for (int j = 0; j < M; ++j) {
    ow.count[j] = double(masks.exec[cfg.exits[j] - 1].size());
    ow.hint[j] = hint_norm && exit_weights(o, cfg, j, p, progress).feat > 0 ? hint_sq(j) : 0.0;
  }
  if (o.reduction == LossReduction::remaining) batch_sum(ws.batch_reduce, ow.count.data(), M);
  if (hint_norm) batch_sum(ws.batch_reduce, ow.hint.data(), M);
  for (int j = 0; j < M; ++j) {
    const auto& idx = masks.exec[cfg.exits[j] - 1];
    const int n = static_cast<int>(idx.size());
    st.n[j] = n;
    ws.dfeat_used[j] = false;
    if (n == 0) continue;
    auto& lab = ow.labels[j];
    lab.resize(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) lab[i] = labels[idx[i]];
    const ExitWeights e = exit_weights(o, cfg, j, p, progress);
    // 1/B (reduction batch) or 1/n (remaining); under data parallelism B is the global batch
    // (masks.norm_batch()) and n the exit's samples over every process.
    const T inv = o.reduction == LossReduction::batch ? T(1) / T(masks.norm_batch()) : T(1) / T(ow.count[j]);
    T* z = ws.logits[j];
    T* dz = ws.dlogits[j];
    std::memset(dz, 0, sizeof(T) * std::size_t(n) * C);
    if (j < M - 1 && !ws.dlgfeat_used.empty()) ws.dlgfeat_used[j] = false;
    double ce = cross_entropy_forward<T>(ow.probs[j], z, lab.data(), n, C, inv);
    cross_entropy_backward<T>(dz, ow.probs[j], lab.data(), n, C, T(e.w * e.ce) * inv);
    st.ce[j] = ce;
    double term = e.ce * ce;
    if (e.kd > 0) {
      gather_rows<T>(ow.tlogp[j], ow.teacher_logp, idx.data(), n, C);
      double kl = kl_div_forward<T>(ow.q[j], z, ow.tlogp[j], n, C, tau, inv);
      kl_div_backward<T>(dz, ow.q[j], ow.tlogp[j], n, C, tau,
                         o.kd_tau2() ? T(e.w * e.kd) * tau * tau * inv : T(e.w * e.kd) * inv);
      if (o.kd_soft_ce()) {  // + H(teacher): soft cross-entropy's value
        double h = 0;
        for (std::size_t k = 0; k < std::size_t(n) * C; ++k) {
          const double lp = double(ow.tlogp[j][k]);
          if (std::isfinite(lp)) h -= std::exp(lp) * lp;
        }
        kl += h * double(inv);
      }
      st.kl[j] = kl;
      term += o.kd_tau2() ? e.kd * double(tau) * double(tau) * kl : e.kd * kl;
    }
    if (e.feat > 0) {  // BYOT's hint on class-token features f_j (exit j's input) vs f_L (detached)
      const T* f = ws.exit[j].x;  // (n, D)
      T* df = ws.dfeat[j];
      // envit-legacy: (1/B) sum |d|^2, gradient 2 d / B; mmrazor: sqrt(sum |d|^2), gradient d / sqrt(.)
      const bool norm = hint_norm;
      const double s = norm ? ow.hint[j] : hint_sq(j);
      st.feat[j] = norm ? (masks.first == 0 ? std::sqrt(s) : 0.0) : s * double(inv);
      const double g = norm ? (s > 0 ? e.w * e.feat / std::sqrt(s) : 0.0) : 2 * e.w * e.feat * double(inv);
      for (int i = 0; i < n; ++i)
        for (int k = 0; k < D; ++k)
          df[std::size_t(i) * D + k] =
              T(g * (double(f[std::size_t(i) * D + k]) - double(ws.feat_target[std::size_t(idx[i]) * D + k])));
      term += e.feat * st.feat[j];
      ws.dfeat_used[j] = true;
    }
    st.loss += e.w * term;
    for (int i = 0; i < n; ++i) {
      const T* zr = z + std::size_t(i) * C;
      st.correct[j] += static_cast<int>(std::max_element(zr, zr + C) - zr) == lab[i];
    }
  }
}

// One full forward + loss + backward; parameter gradients accumulate into P (zero them first).
// Matrix products in ws.precision, the teacher's head and the objective's included.
template <class T>
void train_step_grads(StepStats& st, ViTWorkspace<T>& ws, ObjectiveWorkspace<T>& ow, ViTParams<T>& P,
                      const T* images,              // (B, C, H, W)
                      const std::int32_t* labels,   // (B)
                      const LayerMasks& masks, const ObjectiveConfig& o,
                      const std::vector<double>& p, double progress) {
  const PrecisionScope scope(ws.precision);
  const bool full_teacher = teacher_needs_full_pass(o, masks);
  vit_forward_train<T>(ws, P, images, masks, full_teacher ? ws.h2 : nullptr);
  vit_update_running_stats<T>(ws, P, masks);
  if (full_teacher) teacher_from_branches<T>(ws, P, masks);
  objective_forward<T>(st, ws, ow, P, labels, masks, o, p, progress, full_teacher);
  vit_backward_train<T>(ws, P, masks);
}

}  // namespace envit
