// envit/train/lgvit.hpp — LGViT's second training stage (Xu et al., ACM MM 2023; the authors'
// DeiTHighwayForImageClassification_distillation, train_strategy 'distillation_LGViT'): the
// backbone and the final head are frozen, only the K = M-1 early-exit heads learn, from
//   L = (1-a) sum_k CE(z_k, y) + a sum_k T^2 KD_k + b_het sum_(k,s) H_k + b_hom (sum G_loc + sum G_glob)
//   KD_k  = sum_b KL(softmax(z_T/T) || softmax(z_k/T)) / (B*K)       (the code's F.kl_div(..., 'sum') / numel;
//           ObjectiveConfig::lgvit_kd_per_class = false divides by B)
//   z_T   = the final head's Linear on h_L's class token WITHOUT the final LayerNorm (the code's
//           teacher; lgvit_teacher_ln = true applies the LayerNorm), detached
//   H_k   = (1/B) sum_{b,t} KL(softmax_D(F_t) || softmax_D(Y_k,t)) over channels, F = h_L's patch
//           tokens subsampled to head k's grid; for the first and last local head and the first
//           and last global head (the code's exits 0, 3, 4, 7 of 8)
//   G_loc = MSE(Y_k, Y_last local) for the other local heads (same shapes; the code's align 'none')
//   G_glob= MSE(Y_k^T Y_k, Y_g^T Y_g) for the other global heads, g the last global head
//           (Gram matrices, the code's align 'inner'); MSE = mean over all entries
//   The homogeneous targets (Y_last local, Y_g) carry gradient as in the code; lgvit_detach_hom
//   detaches them. Defaults T = 2, a = 0.3, b_het = b_hom = 0.01.
// Heads run in train mode (batch statistics, running statistics updated) as the code's model.train().
// Data parallelism: B in every normaliser is the global batch (masks.norm_batch()) and the heads'
// BatchNorm statistics are the whole batch's (ws.batch_reduce), so the shards' losses and
// gradients sum to the single-process ones.
// Letters: B batch, C (= K in the formula) classes, D dim, P patches, P' a head's feature tokens.
#pragma once
#include <cmath>
#include <cstring>
#include <vector>

#include "envit/ops/channel_kl.hpp"
#include "envit/ops/gram.hpp"
#include "envit/ops/subsample.hpp"
#include "envit/train/objective.hpp"

namespace envit {

template <class T>
struct LgvitDistillWorkspace {
  Arena<T> arena;
  T *zt = nullptr, *tlogp = nullptr, *probs = nullptr, *q = nullptr;  // (B, C) each
  T* hl = nullptr;                    // (B*P, D) h_L's patch tokens
  T *hl2 = nullptr, *hl3 = nullptr;   // (B*P'_s, D) subsampled for stride 2 and 3
  ChannelKlCache<T> kl{};             // (B*P, D) each
  T *gram_t = nullptr, *gram_k = nullptr, *dgram_k = nullptr, *dgram_t = nullptr;  // (B, D, D) each
  std::vector<std::int32_t> labels;   // reserved (B)
  std::vector<int> loc, glob;         // reserved (M-1): the local / global head lists (lgvit_groups)
  LgvitDistillWorkspace() = default;
  LgvitDistillWorkspace(const VitConfig& cfg, int max_batch) {
    const std::size_t B = std::size_t(max_batch), C = std::size_t(cfg.classes), D = std::size_t(cfg.dim);
    const std::size_t RP = B * std::size_t(cfg.patches()) * D, G = B * D * D;
    ArenaPlan<T> plan;
    carve(plan, B, C, RP, G);
    arena = Arena<T>(plan.total);
    carve(arena, B, C, RP, G);
    labels.reserve(B);
    loc.reserve(std::size_t(cfg.num_exits()));
    glob.reserve(std::size_t(cfg.num_exits()));
  }
  // Elements of the arena LgvitDistillWorkspace(cfg, max_batch) allocates, without allocating it.
  static std::size_t planned_elements(const VitConfig& cfg, int max_batch) {
    const std::size_t B = std::size_t(max_batch), C = std::size_t(cfg.classes), D = std::size_t(cfg.dim);
    LgvitDistillWorkspace w;
    ArenaPlan<T> plan;
    w.carve(plan, B, C, B * std::size_t(cfg.patches()) * D, B * D * D);
    return plan.total;
  }

 private:
  template <class A>
  void carve(A& a, std::size_t B, std::size_t C, std::size_t RP, std::size_t G) {
    zt = a.take(B * C); tlogp = a.take(B * C); probs = a.take(B * C); q = a.take(B * C);
    hl = a.take(RP); hl2 = a.take(RP); hl3 = a.take(RP);
    kl = {a.take(RP), a.take(RP)};
    gram_t = a.take(G); gram_k = a.take(G); dgram_k = a.take(G); dgram_t = a.take(G);
  }
};

// Local (convolutional) and global (attention) heads, in exit order.
inline void lgvit_groups(const std::vector<LgvitKind>& kinds, std::vector<int>& loc, std::vector<int>& glob) {
  loc.clear();
  glob.clear();
  for (int k = 0; k < int(kinds.size()); ++k) (lgvit_is_conv(kinds[std::size_t(k)]) ? loc : glob).push_back(k);
}

// Stage 2's loss (st.loss; st.ce/kl per head, st.feat[k] = head k's H + its G terms unweighted) and
// the heads' gradients, accumulated into P. Requires every sample to run every block (masks
// complete) and ws.last_block_all_tokens (H reads every token of h_L). Backbone and final-head
// gradients are not touched.
template <class T>
void lgvit_distill_step_grads(StepStats& st, ViTWorkspace<T>& ws, LgvitDistillWorkspace<T>& lw, ViTParams<T>& P,
                              const T* images,             // (B, C, H, W)
                              const std::int32_t* labels,  // (B)
                              const LayerMasks& masks, const ObjectiveConfig& o) {
  const PrecisionScope scope(ws.precision);  // the heads' products outside the model passes too
  const VitConfig& cfg = ws.cfg;
  ENVIT_CHECK(cfg.lgvit(), ValueError, "lgvit_distill_step_grads: the model has no LGViT heads (", cfg.str(), ")");
  ENVIT_CHECK(masks.complete(), ValueError, "lgvit_distill_step_grads: LGViT trains without block dropout");
  ENVIT_CHECK(ws.last_block_all_tokens, ValueError,
              "lgvit_distill_step_grads: set ViTWorkspace::last_block_all_tokens (H reads every token of h_L)");
  const int B = masks.batch, M = cfg.num_exits(), K = M - 1, C = cfg.classes;
  const std::ptrdiff_t D = cfg.dim, N = cfg.tokens(), P_ = cfg.patches(), G = cfg.grid();
  for (int b = 0; b < B; ++b)
    ENVIT_CHECK(labels[b] >= 0 && labels[b] < C, ValueError, "lgvit: label ", labels[b], " of sample ", b,
                " outside 0..", C - 1);
  vit_forward_train<T>(ws, P, images, masks);
  vit_update_running_stats<T>(ws, P, masks);

  // teacher: the final head's Linear on h_L's class token (with the LayerNorm when asked), detached
  if (o.lgvit_teacher_ln) {
    std::memcpy(lw.zt, ws.logits[M - 1], sizeof(T) * std::size_t(B) * C);
  } else {
    const ExitHeadParams<T> fp = P.exit(M - 1);
    for (int b = 0; b < B; ++b)
      for (int c = 0; c < C; ++c) {
        double a = fp.head_b[c];
        for (std::ptrdiff_t d = 0; d < D; ++d) a += double(fp.head_w[c * D + d]) * double(ws.h[b * N * D + d]);
        lw.zt[std::size_t(b) * C + c] = T(a);
      }
  }
  const T tau = T(o.lgvit_tau), a = T(o.lgvit_alpha);
  log_softmax_forward<T>(lw.tlogp, lw.zt, B, C, T(1) / tau);
  // Normalisers: the global batch under data parallelism (masks.norm_batch()), so the shards'
  // losses and gradients sum to the whole batch's.
  const int Bn = masks.norm_batch();
  const T kd_norm = o.lgvit_kd_per_class ? T(1) / T(Bn * C) : T(1) / T(Bn);
  const T invB = T(1) / T(Bn);

  st.loss = 0;
  st.ce.assign(M, 0); st.kl.assign(M, 0); st.feat.assign(M, 0); st.n.assign(M, 0); st.correct.assign(M, 0);
  auto& lab = lw.labels;
  lab.assign(labels, labels + B);
  for (int k = 0; k < K; ++k) {
    T* z = ws.logits[k];
    T* dz = ws.dlogits[k];
    std::memset(dz, 0, sizeof(T) * std::size_t(B) * C);
    const double ce = cross_entropy_forward<T>(lw.probs, z, lab.data(), B, C, invB);
    cross_entropy_backward<T>(dz, lw.probs, lab.data(), B, C, (T(1) - a) * invB);
    const double kl = kl_div_forward<T>(lw.q, z, lw.tlogp, B, C, tau, kd_norm);
    kl_div_backward<T>(dz, lw.q, lw.tlogp, B, C, tau, a * tau * tau * kd_norm);
    st.ce[k] = ce;
    st.kl[k] = kl;
    st.n[k] = B;
    st.loss += (1 - double(a)) * ce + double(a) * double(tau) * double(tau) * kl;
    for (int b = 0; b < B; ++b) {
      const T* zr = z + std::size_t(b) * C;
      st.correct[k] += static_cast<int>(std::max_element(zr, zr + C) - zr) == lab[std::size_t(b)];
    }
    const std::size_t nf = std::size_t(B) * ws.lgvit_shape(k, B).feat_tokens() * D;
    std::memset(ws.dlgfeat[k], 0, sizeof(T) * nf);
    ws.dlgfeat_used[k] = true;
  }
  {  // the final exit's statistics (not trained)
    const T* z = ws.logits[M - 1];
    st.n[M - 1] = B;
    for (int b = 0; b < B; ++b) {
      const T* zr = z + std::size_t(b) * C;
      st.correct[M - 1] += static_cast<int>(std::max_element(zr, zr + C) - zr) == lab[std::size_t(b)];
    }
  }

  // heterogeneous: first and last head of each group against h_L's patch tokens on its grid
  for (int b = 0; b < B; ++b)
    std::memcpy(lw.hl + b * P_ * D, ws.h + (b * N + 1) * D, sizeof(T) * std::size_t(P_ * D));
  subsample_forward<T>(lw.hl2, lw.hl, {B, G, D, 2});
  subsample_forward<T>(lw.hl3, lw.hl, {B, G, D, 3});
  std::vector<int>& loc = lw.loc;
  std::vector<int>& glob = lw.glob;
  lgvit_groups(ws.lg_kind, loc, glob);
  const T het = T(o.lgvit_het), hom = T(o.lgvit_hom);
  auto hete = [&](int k) {
    const LgvitHeadShape hs = ws.lgvit_shape(k, B);
    const T* target = lgvit_stride(hs.kind) == 2 ? lw.hl2 : lgvit_stride(hs.kind) == 3 ? lw.hl3 : lw.hl;
    const ChannelKlShape ks{B * hs.feat_tokens(), D};
    const double h = channel_kl_forward<T>(lw.kl, ws.lg[k].y, target, ks, invB);
    channel_kl_backward<T>(ws.dlgfeat[k], lw.kl, ks, het * invB);
    st.feat[k] += h;
    st.loss += double(het) * h;
  };
  for (const std::vector<int>* grp : {&loc, &glob}) {
    if (grp->empty()) continue;
    hete(grp->front());
    if (grp->size() > 1) hete(grp->back());
  }

  // homogeneous: local features against the last local head's, global Gram matrices against the
  // last global head's
  if (loc.size() > 1) {
    const int t = loc.back();
    const std::size_t n = std::size_t(B) * P_ * D, n_all = std::size_t(Bn) * P_ * D;  // MSE over the whole batch
    const T* yt = ws.lg[t].y;
    for (std::size_t i = 0; i + 1 < loc.size(); ++i) {
      const int k = loc[i];
      const T* yk = ws.lg[k].y;
      double s = 0;
      const T f = hom * T(2) / T(n_all);
      for (std::size_t e = 0; e < n; ++e) {
        const T d = yk[e] - yt[e];
        s += double(d) * double(d);
        ws.dlgfeat[k][e] += f * d;
        if (!o.lgvit_detach_hom) ws.dlgfeat[t][e] -= f * d;
      }
      st.feat[k] += s / double(n_all);
      st.loss += double(hom) * s / double(n_all);
    }
  }
  if (glob.size() > 1) {
    const int t = glob.back();
    const LgvitHeadShape ts = ws.lgvit_shape(t, B);
    const std::size_t n = std::size_t(B) * D * D, n_all = std::size_t(Bn) * D * D;
    gram_forward<T>(lw.gram_t, ws.lg[t].y, {B, ts.feat_tokens(), D});
    std::memset(lw.dgram_t, 0, sizeof(T) * n);
    for (std::size_t i = 0; i + 1 < glob.size(); ++i) {
      const int k = glob[i];
      const LgvitHeadShape ks = ws.lgvit_shape(k, B);
      gram_forward<T>(lw.gram_k, ws.lg[k].y, {B, ks.feat_tokens(), D});
      double s = 0;
      const T f = hom * T(2) / T(n_all);
      for (std::size_t e = 0; e < n; ++e) {
        const T d = lw.gram_k[e] - lw.gram_t[e];
        s += double(d) * double(d);
        lw.dgram_k[e] = f * d;
        lw.dgram_t[e] -= f * d;
      }
      gram_backward<T>(ws.dlgfeat[k], lw.dgram_k, ws.lg[k].y, {B, ks.feat_tokens(), D});
      st.feat[k] += s / double(n_all);
      st.loss += double(hom) * s / double(n_all);
    }
    if (!o.lgvit_detach_hom) gram_backward<T>(ws.dlgfeat[t], lw.dgram_t, ws.lg[t].y, {B, ts.feat_tokens(), D});
  }

  // backward through the heads only (the backbone is frozen: no input gradient)
  for (int k = 0; k < K; ++k)
    lgvit_head_backward<T>(nullptr, P.lgvit_grads(k), ws.dlogits[k], ws.dlgfeat[k], ws.lg[k], P.lgvit(k),
                           ws.lgvit_shape(k, B), ws.lg_ws, BnMode::train, ws.bn_group());
}

// Table entries stage 2 trains (the early-exit heads: every `exits.*` entry), one flag per entry,
// for adamw_step / sgd_step.
template <class T>
std::vector<char> lgvit_stage2_trainable(const ViTParams<T>& P) {
  std::vector<char> f;
  for (const ParamEntry& e : P.table()) f.push_back(e.name.rfind("exits.", 0) == 0 ? 1 : 0);
  return f;
}

}  // namespace envit
