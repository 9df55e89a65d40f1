// envit/model/lgvit_head.hpp — LGViT's exit heads (Xu et al., ACM MM 2023; code falcon-xu/LGViT,
// models/deit_highway/highway.py): a local (convolutional) or global (attention) feature head on
// the raw block output h (before any LayerNorm), then logits = Linear(mean_tokens(Y) + h_cls).
//   X = the N-1 patch tokens of h on the G x G grid (token-major), cls = h[:, 0]
//   conv1_1:  U = BN(GELU(Conv1x1(X)));  U = BN(GELU(DWConv3x3(U)));  Y = BN(Conv1x1(U)) + X
//   conv2_1:  U = BN(GELU(Conv1x1(X)));                                Y = BN(Conv1x1(U)) + X
//   attn_r{s}: Y = Attention8(Subsample_s(X))   (qkv without bias, projection with bias, no residual)
// 1x1 convolutions are ops/linear.hpp on the token rows (PyTorch's (D, D, 1, 1) weight has the
// (D, D) layout); BatchNorm eps 1e-5 (train mode: batch statistics; eval: running statistics).
// Y is the head's feature for LGViT's distillation losses (train/lgvit.hpp).
// Not here: dropout (LGViT's heads have p = 0), the DeiT distillation token.
// Letters: B batch, N = G*G + 1 tokens, D dim, P = G*G patches, P' = G'*G' feature tokens, C classes.
#pragma once
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/ops/attention.hpp"
#include "envit/ops/batchnorm.hpp"
#include "envit/ops/dwconv.hpp"
#include "envit/ops/gelu.hpp"
#include "envit/ops/linear.hpp"
#include "envit/ops/subsample.hpp"

namespace envit {

enum class LgvitKind { conv1_1, conv2_1, attn_r2, attn_r3 };
inline constexpr int kLgvitAttnHeads = 8;     // GlobalSparseAttn's num_heads
inline constexpr double kLgvitBnEps = 1e-5;   // BatchNorm2d(eps=1e-5)
inline constexpr double kLgvitBnMomentum = 0.1;

inline const char* lgvit_kind_name(LgvitKind k) {
  switch (k) {
    case LgvitKind::conv1_1: return "conv1_1";
    case LgvitKind::conv2_1: return "conv2_1";
    case LgvitKind::attn_r2: return "attn_r2";
    case LgvitKind::attn_r3: return "attn_r3";
  }
  return "?";
}
inline bool lgvit_is_conv(LgvitKind k) { return k == LgvitKind::conv1_1 || k == LgvitKind::conv2_1; }
inline int lgvit_stride(LgvitKind k) { return k == LgvitKind::attn_r2 ? 2 : k == LgvitKind::attn_r3 ? 3 : 1; }

// Head kinds for K early exits (the final exit keeps the model's LayerNorm + Linear head).
// K = 2, 4, 6, 8: the lists of the authors' init_highway (8: conv1_1 x2, conv2_1 x2, attn_r2 x2,
// attn_r3 x2; 6: conv1_1, conv2_1, attn_r2 x2, attn_r3 x2). Any other K: the first floor(K/2)
// exits are local (the first ceil of that half conv1_1, the rest conv2_1), the later ones global
// (the first ceil of that half attn_r2, the rest attn_r3) — the same rule that gives the lists
// for K = 2, 4 and 8.
inline std::vector<LgvitKind> lgvit_head_kinds(int K) {
  using L = LgvitKind;
  if (K == 6) return {L::conv1_1, L::conv2_1, L::attn_r2, L::attn_r2, L::attn_r3, L::attn_r3};
  std::vector<LgvitKind> v;
  const int nl = K / 2, ng = K - nl;
  for (int i = 0; i < nl; ++i) v.push_back(i < (nl + 1) / 2 ? L::conv1_1 : L::conv2_1);
  for (int i = 0; i < ng; ++i) v.push_back(i < (ng + 1) / 2 ? L::attn_r2 : L::attn_r3);
  return v;
}

struct LgvitHeadShape {
  std::ptrdiff_t batch, grid, dim, classes;
  LgvitKind kind;
  std::ptrdiff_t tokens() const { return grid * grid + 1; }
  std::ptrdiff_t patches() const { return grid * grid; }
  std::ptrdiff_t out_grid() const { return lgvit_is_conv(kind) ? grid : (grid - 1) / lgvit_stride(kind) + 1; }
  std::ptrdiff_t feat_tokens() const { return out_grid() * out_grid(); }  // P'
  AttentionShape attn(std::ptrdiff_t b) const { return {b, feat_tokens(), dim, kLgvitAttnHeads}; }
};

template <class T> struct LgvitHeadParams {
  LgvitKind kind;
  const T *c1_w, *c1_b;     // conv heads: (D, D), (D)
  BatchNormParams<T> bn1;   // conv heads
  const T *dw_w, *dw_b;     // conv1_1: (D, 1, 3, 3), (D)
  BatchNormParams<T> bn2;   // conv1_1
  const T *c2_w, *c2_b;     // conv heads: (D, D), (D)
  BatchNormParams<T> bn3;   // conv heads
  const T *qkv_w, *proj_w, *proj_b;  // attention heads: (3D, D), (D, D), (D)
  const T *cls_w, *cls_b;   // (C, D), (C)
};
template <class T> struct LgvitHeadGrads {  // accumulated (+=); members of the other kind are nullptr
  T *dc1_w, *dc1_b;
  BatchNormGrads<T> bn1;
  T *ddw_w, *ddw_b;
  BatchNormGrads<T> bn2;
  T *dc2_w, *dc2_b;
  BatchNormGrads<T> bn3;
  T *dqkv_w, *dproj_w, *dproj_b;
  T *dcls_w, *dcls_b;
};
template <class T> struct LgvitHeadBuffers { T* running_mean[3]; T* running_var[3]; };  // bn1..bn3, (D) each

template <class T> struct LgvitHeadCache {
  T* x;       // (B*P, D) patch tokens (the residual)
  T* cls;     // (B, D)
  T *a1, *g1, *u1;       // conv: (B*P, D) conv1 out, GELU out, BN out
  T *a2, *g2, *u2;       // conv1_1: (B*P, D) dwconv out, GELU out, BN out
  T* a3;                 // conv: (B*P, D) conv2 out
  BatchNormCache<T> bn[3];
  T* xs;                 // attn: (B*P', D) subsampled tokens
  AttentionCache<T> att;
  T* y;       // (B*P', D) the head's feature Y
  T* pooled;  // (B, D) mean_tokens(Y) + cls
};
template <class T> struct LgvitHeadWorkspace {  // backward temporaries, overwritten on every call
  T *t0, *t1, *t2;   // (B*P, D) each
  T* dpooled;        // (B, D)
  AttentionWorkspace<T> att;  // for P' of attn_r2
};

template <class T, class A>
LgvitHeadCache<T> lgvit_head_cache_take(A& a, const LgvitHeadShape& s) {
  const std::size_t B = std::size_t(s.batch), D = std::size_t(s.dim), RP = B * std::size_t(s.patches()) * D;
  LgvitHeadCache<T> c{};
  c.x = a.take(RP);
  c.cls = a.take(B * D);
  if (lgvit_is_conv(s.kind)) {
    c.a1 = a.take(RP); c.g1 = a.take(RP); c.u1 = a.take(RP);
    if (s.kind == LgvitKind::conv1_1) { c.a2 = a.take(RP); c.g2 = a.take(RP); c.u2 = a.take(RP); }
    c.a3 = a.take(RP);
    for (auto& b : c.bn) b = {a.take(D), a.take(D), a.take(D)};
  } else {
    c.xs = a.take(B * std::size_t(s.feat_tokens()) * D);
    c.att = attention_cache_take<T>(a, s.attn(s.batch));
  }
  c.y = a.take(B * std::size_t(s.feat_tokens()) * D);
  c.pooled = a.take(B * D);
  return c;
}
template <class T, class A>
LgvitHeadWorkspace<T> lgvit_head_workspace_take(A& a, std::ptrdiff_t batch, std::ptrdiff_t grid, std::ptrdiff_t dim) {
  const std::size_t RP = std::size_t(batch * grid * grid * dim);
  LgvitHeadWorkspace<T> w;
  w.t0 = a.take(RP); w.t1 = a.take(RP); w.t2 = a.take(RP);
  w.dpooled = a.take(std::size_t(batch * dim));
  LgvitHeadShape r2{batch, grid, dim, 2, LgvitKind::attn_r2};
  w.att = attention_workspace_take<T>(a, r2.attn(batch));
  return w;
}

inline void lgvit_head_check(const LgvitHeadShape& s) {
  ENVIT_CHECK(s.batch >= 1 && s.grid >= 1 && s.dim > 0 && s.classes > 0, ShapeError,
              "lgvit_head: invalid shape batch=", s.batch, " grid=", s.grid, " dim=", s.dim, " classes=", s.classes);
  ENVIT_CHECK(lgvit_is_conv(s.kind) || s.dim % kLgvitAttnHeads == 0, ShapeError, "lgvit_head: dim ", s.dim,
              " is not a multiple of the attention head's ", kLgvitAttnHeads, " heads");
}

namespace detail {
template <class T>
AttentionParams<T> lgvit_attn_params(const LgvitHeadParams<T>& p) { return {p.qkv_w, nullptr, p.proj_w, p.proj_b}; }
}  // namespace detail

// Forward (see the file comment). mode: BatchNorm statistics (train: the batch's; eval: running).
// grp: the processes sharing the batch under data parallelism (batchnorm.hpp; default: none).
template <class T>
void lgvit_head_forward(T* logits,              // (B, C)  overwritten
                        LgvitHeadCache<T> c,    // written here, read by backward
                        const T* tokens,        // (B, N, D) raw block output
                        LgvitHeadParams<T> p, LgvitHeadShape s, BnMode mode, BatchNormGroup grp = {}) {
  lgvit_head_check(s);
  ENVIT_CHECK(p.kind == s.kind, ValueError, "lgvit_head_forward: parameters of a ", lgvit_kind_name(p.kind),
              " head for a ", lgvit_kind_name(s.kind), " shape");
  const std::ptrdiff_t B = s.batch, D = s.dim, N = s.tokens(), P = s.patches(), R = B * P, Pf = s.feat_tokens();
  const std::size_t row = sizeof(T) * std::size_t(P * D);
  for (std::ptrdiff_t b = 0; b < B; ++b) {
    std::memcpy(c.cls + b * D, tokens + b * N * D, sizeof(T) * std::size_t(D));
    std::memcpy(c.x + b * P * D, tokens + (b * N + 1) * D, row);
  }
  const T eps = T(kLgvitBnEps);
  if (lgvit_is_conv(s.kind)) {
    linear_forward<T>(c.a1, c.x, {p.c1_w, p.c1_b}, {R, D, D});
    gelu_forward<T>(c.g1, c.a1, R * D);
    batchnorm_forward<T>(c.u1, c.bn[0], c.g1, p.bn1, {R, D}, eps, mode, grp);
    const T* u = c.u1;
    if (s.kind == LgvitKind::conv1_1) {
      dwconv_forward<T>(c.a2, c.u1, {p.dw_w, p.dw_b}, {B, s.grid, D});
      gelu_forward<T>(c.g2, c.a2, R * D);
      batchnorm_forward<T>(c.u2, c.bn[1], c.g2, p.bn2, {R, D}, eps, mode, grp);
      u = c.u2;
    }
    linear_forward<T>(c.a3, u, {p.c2_w, p.c2_b}, {R, D, D});
    batchnorm_forward<T>(c.y, c.bn[2], c.a3, p.bn3, {R, D}, eps, mode, grp);
    for (std::ptrdiff_t i = 0; i < R * D; ++i) c.y[i] += c.x[i];
  } else {
    subsample_forward<T>(c.xs, c.x, {B, s.grid, D, lgvit_stride(s.kind)});
    attention_forward<T>(c.y, c.att, c.xs, detail::lgvit_attn_params(p), s.attn(B));
  }
  // pooled = mean over the P' feature tokens + cls (token sums in double)
  using Acc = decltype(T() + double());
  for (std::ptrdiff_t b = 0; b < B; ++b)
    for (std::ptrdiff_t d = 0; d < D; ++d) {
      Acc a = 0;
      for (std::ptrdiff_t t = 0; t < Pf; ++t) a += Acc(c.y[(b * Pf + t) * D + d]);
      c.pooled[b * D + d] = T(a / Acc(Pf)) + c.cls[b * D + d];
    }
  linear_forward<T>(logits, c.pooled, {p.cls_w, p.cls_b}, {B, D, s.classes});
}

// The running-statistics update after a train-mode forward over s.batch samples (PyTorch does it
// inside BatchNorm's forward; here it is separate so that the forward reads const parameters).
// all_batch: the samples the statistics were taken over (every process's under data
// parallelism; 0: s.batch).
template <class T>
void lgvit_head_update_running(LgvitHeadBuffers<T> buf, LgvitHeadCache<T> c, LgvitHeadShape s,
                               std::ptrdiff_t all_batch = 0) {
  if (!lgvit_is_conv(s.kind)) return;
  const BatchNormShape bs{(all_batch > 0 ? all_batch : s.batch) * s.patches(), s.dim};
  for (int k = 0; k < 3; ++k) {
    if (k == 1 && s.kind != LgvitKind::conv1_1) continue;
    batchnorm_running_update<T>(buf.running_mean[k], buf.running_var[k], c.bn[k], bs, kLgvitBnMomentum);
  }
}

// Backward. From logits = (mean_t Y + cls) Wc^T + bc:
//   dpooled = dlogits Wc,  dWc += dlogits^T pooled,  dbc += sum dlogits
//   dcls = dpooled,  dY[b, t] = dpooled[b] / P' + dfeat[b, t]
// then through the head's chain (conv: residual dX = dY plus the BN/conv/GELU chain; attention:
// attention_backward then the subsample's scatter). dtokens (+=): class-token rows get dcls, patch
// rows dX; nullptr when the input needs no gradient (LGViT's stage 2: frozen backbone).
template <class T>
void lgvit_head_backward(T* dtokens,              // (B, N, D)  accumulated (+=), or nullptr
                         LgvitHeadGrads<T> g,     // accumulated (+=)
                         const T* dlogits,        // (B, C)
                         const T* dfeat,          // (B, P', D) gradient on Y, or nullptr
                         LgvitHeadCache<T> c, LgvitHeadParams<T> p, LgvitHeadShape s,
                         LgvitHeadWorkspace<T> w, BnMode mode, BatchNormGroup grp = {}) {
  lgvit_head_check(s);
  const std::ptrdiff_t B = s.batch, D = s.dim, N = s.tokens(), P = s.patches(), R = B * P, Pf = s.feat_tokens();
  const std::size_t RD = std::size_t(R * D);
  std::memset(w.dpooled, 0, sizeof(T) * std::size_t(B * D));
  linear_backward<T>(w.dpooled, {g.dcls_w, g.dcls_b}, dlogits, c.pooled, {p.cls_w, p.cls_b}, {B, D, s.classes});
  T* dy = w.t0;  // (B*P', D)
  const T inv = T(1) / T(Pf);
  for (std::ptrdiff_t b = 0; b < B; ++b)
    for (std::ptrdiff_t t = 0; t < Pf; ++t)
      for (std::ptrdiff_t d = 0; d < D; ++d) {
        const std::ptrdiff_t i = (b * Pf + t) * D + d;
        dy[i] = w.dpooled[b * D + d] * inv + (dfeat ? dfeat[i] : T(0));
      }
  T* dx = w.t1;  // (B*P, D) gradient on the patch tokens
  if (lgvit_is_conv(s.kind)) {
    std::memcpy(dx, dy, sizeof(T) * RD);  // residual
    T* da = w.t2;
    std::memset(da, 0, sizeof(T) * RD);
    batchnorm_backward<T>(da, g.bn3, dy, c.a3, c.bn[2], p.bn3, {R, D}, mode, grp);       // da3
    T* du = w.t0;                                                                  // dy no longer needed
    std::memset(du, 0, sizeof(T) * RD);
    const T* u = s.kind == LgvitKind::conv1_1 ? c.u2 : c.u1;
    linear_backward<T>(du, {g.dc2_w, g.dc2_b}, da, u, {p.c2_w, p.c2_b}, {R, D, D});  // du (into U)
    if (s.kind == LgvitKind::conv1_1) {
      std::memset(da, 0, sizeof(T) * RD);
      batchnorm_backward<T>(da, g.bn2, du, c.g2, c.bn[1], p.bn2, {R, D}, mode, grp);   // dg2
      std::memset(du, 0, sizeof(T) * RD);
      gelu_backward<T>(du, da, c.a2, R * D);                                         // da2
      std::memset(da, 0, sizeof(T) * RD);
      dwconv_backward<T>(da, {g.ddw_w, g.ddw_b}, du, c.u1, {p.dw_w, p.dw_b}, {B, s.grid, D});  // du1
      std::swap(da, du);
    }
    std::memset(da, 0, sizeof(T) * RD);
    batchnorm_backward<T>(da, g.bn1, du, c.g1, c.bn[0], p.bn1, {R, D}, mode, grp);       // dg1
    std::memset(du, 0, sizeof(T) * RD);
    gelu_backward<T>(du, da, c.a1, R * D);                                           // da1
    linear_backward<T>(dtokens ? dx : nullptr, {g.dc1_w, g.dc1_b}, du, c.x, {p.c1_w, p.c1_b}, {R, D, D});
  } else {
    T* dxs = w.t2;
    const std::size_t nf = std::size_t(B * Pf * D);
    std::memset(dxs, 0, sizeof(T) * nf);
    attention_backward<T>(dtokens ? dxs : nullptr, {g.dqkv_w, nullptr, g.dproj_w, g.dproj_b}, dy, c.xs, c.att,
                          detail::lgvit_attn_params(p), s.attn(B), w.att);
    if (dtokens) {
      std::memset(dx, 0, sizeof(T) * RD);
      subsample_backward<T>(dx, dxs, {B, s.grid, D, lgvit_stride(s.kind)});
    }
  }
  if (!dtokens) return;
  for (std::ptrdiff_t b = 0; b < B; ++b) {
    T* dcls = dtokens + b * N * D;
    for (std::ptrdiff_t d = 0; d < D; ++d) dcls[d] += w.dpooled[b * D + d];
    T* dp = dtokens + (b * N + 1) * D;
    const T* src = dx + b * P * D;
    for (std::ptrdiff_t i = 0; i < P * D; ++i) dp[i] += src[i];
  }
}

}  // namespace envit
