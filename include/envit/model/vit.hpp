// envit/model/vit.hpp — the multi-exit ViT's forward and backward passes with per-sample block
// skipping (EnViT's structured dropout, eqs. 5-9), and the complete-model forward used by the
// teacher and by evaluation.
//
// Skipping is real: for block l only the samples in masks.exec[l] are gathered into a compact
// sub-batch, run through the block, and scattered back in batch order; skipped samples keep
// h_{l-1} unchanged (bitwise) and cost nothing. Exit j sees only the samples that executed block
// s_j (eq. 8). All memory is planned in ViTWorkspace from the config and the max batch; the passes
// below only view it.
// Precision: every pass below runs its matrix products in ws.precision (core/precision.hpp: FP32,
// or BF16 operands with FP32 accumulation), set for the duration of the pass; everything else stays
// FP32, and so do the parameters and their gradients.
// Letters: B batch, N tokens, D dim, C classes, L depth, M exits.
#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "envit/core/arena.hpp"
#include "envit/core/batch_reduce.hpp"
#include "envit/core/precision.hpp"
#include "envit/model/dropout.hpp"
#include "envit/model/lgvit_head.hpp"
#include "envit/ops/exit_head.hpp"
#include "envit/model/params.hpp"
#include "envit/ops/block.hpp"
#include "envit/ops/gather.hpp"
#include "envit/ops/patch_embed.hpp"

namespace envit {

// The training forward's result at exit j: the rows that reached the exit, in batch order. Views
// into the workspace, valid until the next pass with it.
//   n = masks.exec[s_j - 1].size(); row i is sample rows[i] of the batch.
//   feat is what the exit's head reads and what a gradient on the exit's feature is taken against:
//   the class token (F = D) for the linear head, its feature Y (F = P' D) for an LGViT head.
template <class T> struct ExitOut {
  const T* logits = nullptr;          // (n, C)
  const std::int32_t* rows = nullptr; // (n) batch position of each row
  int n = 0;
  const T* feat = nullptr;            // (n, F)
  int feat_len = 0;                   // F
};
// The caller's gradients at exit j, rows as in ExitOut<T>. dlogits: (n, C), read-only, every
// entry meaningful (may be nullptr only when n = 0). dfeat: (n, F) or nullptr for no gradient on
// the head's feature. Either may point into the workspace (ws.dlogits[j], ws.dfeat[j]) or to the
// caller's own buffers.
template <class T> struct ExitGrad {
  const T* dlogits = nullptr;  // (n, C)
  const T* dfeat = nullptr;    // (n, F) or nullptr
};

template <class T>
struct ViTWorkspace {
  VitConfig cfg;
  int max_batch = 0;
  Arena<T> arena;

  PatchEmbedCache<T> embed;
  PatchEmbedWorkspace<T> embed_ws;
  T* h = nullptr;        // (B,N,D) running full-batch state h_l
  T* dh = nullptr;       // (B,N,D) dL/dh_l
  T* h2 = nullptr;       // (B,N,D) second state for the cache-free complete forward
  T* sub_out = nullptr;  // (B,N,D) block output of the executed sub-batch
  T* dsub_out = nullptr; // (B,N,D)
  T* dsub_in = nullptr;  // (B,N,D)
  std::vector<T*> xin;                 // (L) x (B,N,D) gathered block inputs (kept for backward)
  std::vector<BlockCache<T>> block;    // (L)
  BlockCache<T> scratch_block;         // for passes without backward
  BlockWorkspace<T> block_ws;
  std::vector<ExitHeadCache<T>> exit;  // (M)
  ExitHeadCache<T> scratch_exit;
  ExitHeadWorkspace<T> exit_ws;
  std::vector<T*> logits, dlogits;     // (M) x (B,C): exit j's logits for its executed samples
  std::vector<T*> dfeat;               // (M) x (B,D): optional gradient on exit j's class token
  std::vector<bool> dfeat_used;        // (M)
  T* teacher_logits = nullptr;         // (B,C) the complete model's final-exit logits (detached)
  T* feat_target = nullptr;            // (B,D) final class-token feature (detached; BYOT's hint)
  std::vector<int> exit_of_block;      // (L): exit index at block l, or -1
  // LGViT heads (cfg.lgvit()): caches of early exit j < M-1, a scratch cache per family for passes
  // without backward, the backward workspace, and an optional gradient on head j's feature Y.
  std::vector<LgvitKind> lg_kind;      // (M-1)
  std::vector<LgvitHeadCache<T>> lg;   // (M-1)
  LgvitHeadCache<T> scratch_lg_conv{}, scratch_lg_attn{};
  LgvitHeadWorkspace<T> lg_ws{};
  std::vector<T*> dlgfeat;             // (M-1) x (B, P', D)
  std::vector<bool> dlgfeat_used;      // (M-1)
  std::vector<ExitOut<T>> exit_out;    // (M) what vit_forward_exits returns
  std::vector<ExitGrad<T>> exit_grad;  // (M) vit_backward_train's view of dlogits / dfeat
  // The pass the caches hold, checked by the backward: the training forward's batch and executed
  // (sample, block) count, and whether vit_forward_full has overwritten the patch-embedding cache
  // since (it must not run between the training forward and its backward).
  int train_batch = 0;
  std::size_t train_rows = 0;
  bool embed_from_train = false;
  std::vector<int> first_skip;         // (max_batch): first block each sample skips, L if none
  std::vector<std::int32_t> branch_idx;  // (max_batch) scratch list for vit_complete_branches
  // Training runs the last block on class tokens only (forward and backward): all that reads its
  // output is the final exit head (and the teachers, which read the same class tokens), so this is
  // exact; it skips the MLP, projection and attention rows of the other tokens (~6% of a step at
  // tiny28). ws.h then holds h_L's class tokens and h_{L-1} in the other token rows. Set to true
  // for research code that needs every token of h_L from vit_forward_train.
  bool last_block_all_tokens = false;
  // Data parallelism: sums over the processes that hold the other shards of the batch, for the
  // LGViT heads' BatchNorm statistics and the objective's batch statistics (nullptr: one process).
  const BatchReduce* batch_reduce = nullptr;
  std::vector<double> bn_acc;          // (2D + 1) BatchNorm's scratch for batch_reduce (LGViT heads)
  // The arithmetic of the matrix products of every pass with this workspace (and of the training
  // step and objective around them): fp32, or bf16 (BF16 operands, FP32 accumulation).
  Precision precision = Precision::fp32;

  ViTWorkspace() = default;
  ViTWorkspace(const VitConfig& c, int max_b) : cfg(c), max_batch(max_b) {
    cfg.validate();
    ENVIT_CHECK(max_b > 0, ValueError, "ViTWorkspace: max batch must be positive, got ", max_b);
    if (cfg.lgvit()) lg_kind = lgvit_head_kinds(cfg.num_exits() - 1);
    if (cfg.lgvit()) bn_acc.assign(2 * std::size_t(cfg.dim) + 1, 0.0);
    ArenaPlan<T> plan;
    carve(plan);
    arena = Arena<T>(plan.total);
    carve(arena);
    dlgfeat_used.assign(lg_kind.size(), false);
    exit_of_block.assign(static_cast<std::size_t>(cfg.depth), -1);
    for (int j = 0; j < cfg.num_exits(); ++j) exit_of_block[cfg.exits[j] - 1] = j;
    dfeat_used.assign(static_cast<std::size_t>(cfg.num_exits()), false);
    exit_out.assign(static_cast<std::size_t>(cfg.num_exits()), ExitOut<T>{});
    exit_grad.assign(static_cast<std::size_t>(cfg.num_exits()), ExitGrad<T>{});
    first_skip.assign(static_cast<std::size_t>(max_b), 0);
    branch_idx.reserve(static_cast<std::size_t>(max_b));
  }
  // Elements of the arena ViTWorkspace(c, max_b) allocates, computed without allocating it.
  static std::size_t planned_elements(const VitConfig& c, int max_b) {
    ViTWorkspace w;
    w.cfg = c, w.max_batch = max_b;
    w.cfg.validate();
    if (c.lgvit()) w.lg_kind = lgvit_head_kinds(c.num_exits() - 1);
    ArenaPlan<T> plan;
    w.carve(plan);
    return plan.total;
  }
  ViTWorkspace(const ViTWorkspace&) = delete;
  ViTWorkspace& operator=(const ViTWorkspace&) = delete;
  ViTWorkspace(ViTWorkspace&&) = default;
  ViTWorkspace& operator=(ViTWorkspace&&) = default;

  PatchEmbedShape embed_shape(int b) const {
    return {b, cfg.channels, cfg.image_size, cfg.image_size, cfg.patch, cfg.dim};
  }
  BlockShape block_shape(int b) const { return {b, cfg.tokens(), cfg.dim, cfg.heads, cfg.mlp_hidden}; }
  ExitHeadShape exit_shape(int b) const { return {b, cfg.tokens(), cfg.dim, cfg.classes}; }
  BatchNormGroup bn_group() { return {batch_reduce, batch_reduce ? bn_acc.data() : nullptr}; }
  LgvitHeadShape lgvit_shape(int j, int b) const { return {b, cfg.grid(), cfg.dim, cfg.classes, lg_kind[std::size_t(j)]}; }
  std::size_t state_size(int b) const { return std::size_t(b) * cfg.tokens() * cfg.dim; }
  std::size_t bytes() const { return arena.capacity() * sizeof(T); }

 private:
  template <class A>
  void carve(A& a) {
    const int B = max_batch, L = cfg.depth, M = cfg.num_exits();
    const std::size_t S = state_size(B);
    embed = patch_embed_cache_take<T>(a, embed_shape(B));
    embed_ws = patch_embed_workspace_take<T>(a, embed_shape(B));
    h = a.take(S); dh = a.take(S); h2 = a.take(S);
    sub_out = a.take(S); dsub_out = a.take(S); dsub_in = a.take(S);
    xin.assign(L, nullptr);
    block.assign(L, BlockCache<T>{});
    for (int l = 0; l < L; ++l) {
      xin[l] = a.take(S);
      block[l] = block_cache_take<T>(a, block_shape(B));
    }
    scratch_block = block_cache_take<T>(a, block_shape(B));
    block_ws = block_workspace_take<T>(a, block_shape(B));
    exit.assign(M, ExitHeadCache<T>{});
    logits.assign(M, nullptr); dlogits.assign(M, nullptr); dfeat.assign(M, nullptr);
    for (int j = 0; j < M; ++j) {
      exit[j] = exit_head_cache_take<T>(a, exit_shape(B));
      logits[j] = a.take(std::size_t(B) * cfg.classes);
      dlogits[j] = a.take(std::size_t(B) * cfg.classes);
      dfeat[j] = a.take(std::size_t(B) * cfg.dim);
    }
    scratch_exit = exit_head_cache_take<T>(a, exit_shape(B));
    exit_ws = exit_head_workspace_take<T>(a, exit_shape(B));
    teacher_logits = a.take(std::size_t(B) * cfg.classes);
    feat_target = a.take(std::size_t(B) * cfg.dim);
    if (lg_kind.empty()) return;
    lg.assign(lg_kind.size(), LgvitHeadCache<T>{});
    dlgfeat.assign(lg_kind.size(), nullptr);
    for (std::size_t j = 0; j < lg_kind.size(); ++j) {
      const LgvitHeadShape hs = lgvit_shape(int(j), B);
      lg[j] = lgvit_head_cache_take<T>(a, hs);
      dlgfeat[j] = a.take(std::size_t(B) * std::size_t(hs.feat_tokens()) * std::size_t(cfg.dim));
    }
    scratch_lg_conv = lgvit_head_cache_take<T>(a, LgvitHeadShape{B, cfg.grid(), cfg.dim, cfg.classes, LgvitKind::conv1_1});
    scratch_lg_attn = lgvit_head_cache_take<T>(a, LgvitHeadShape{B, cfg.grid(), cfg.dim, cfg.classes, LgvitKind::attn_r2});
    lg_ws = lgvit_head_workspace_take<T>(a, B, cfg.grid(), cfg.dim);
  }
};

namespace detail {
inline std::size_t executed_rows(const LayerMasks& masks) {
  std::size_t n = 0;
  for (const auto& e : masks.exec) n += e.size();
  return n;
}
// Exit j's logits on n samples' block output (B, N, D) for a pass without backward (eval-mode
// BatchNorm in LGViT heads), from the scratch caches.
template <class T>
void exit_forward_scratch(ViTWorkspace<T>& ws, const ViTParams<T>& P, int j, T* logits, const T* tokens, int n) {
  if (P.exit_is_lgvit(j)) {
    const LgvitHeadShape hs = ws.lgvit_shape(j, n);
    lgvit_head_forward<T>(logits, lgvit_is_conv(hs.kind) ? ws.scratch_lg_conv : ws.scratch_lg_attn, tokens,
                          P.lgvit(j), hs, BnMode::eval);
  } else {
    exit_head_forward<T>(logits, ws.scratch_exit, tokens, P.exit(j), ws.exit_shape(n), T(ws.cfg.ln_eps));
  }
}

// Whether training runs block l on class tokens only (the last block; see
// ViTWorkspace::last_block_all_tokens). Needs 2+ tokens, which a ViT always has (patches + class).
template <class T>
bool last_block_class_only(const ViTWorkspace<T>& ws, int l) {
  return l == ws.cfg.depth - 1 && !ws.last_block_all_tokens && ws.cfg.tokens() >= 2;
}
}  // namespace detail

// Training forward with skipping. Afterwards ws.logits[j] holds exit j's logits for the samples in
// masks.exec[s_j - 1] (in that order), ws.exit[j] the exit's cache, ws.h the final state h_L (its
// class tokens only unless ws.last_block_all_tokens; see there).
// branch (optional, (B,N,D)): for a complete-model teacher that shares this pass's prefix. Up to
// the first block a sample skips, its state is the complete model's, so it is copied to `branch`
// just before that block (its branch point); ws.first_skip records the block (L when the sample
// skips nothing; its row of `branch` is then left untouched). vit_complete_branches finishes them.
template <class T>
void vit_forward_train(ViTWorkspace<T>& ws, const ViTParams<T>& P,
                       const T* images,  // (B, C, H, W)
                       const LayerMasks& masks,
                       T* branch = nullptr) {  // (B, N, D) or nullptr
  const PrecisionScope scope(ws.precision);
  const VitConfig& cfg = ws.cfg;
  const int B = masks.batch;
  ENVIT_CHECK(B >= 1 && B <= ws.max_batch, ShapeError, "vit_forward_train: batch ", B,
              " outside 1..", ws.max_batch, " (the workspace's max batch)");
  masks.check(cfg.depth, "vit_forward_train");
  const std::ptrdiff_t row = std::ptrdiff_t(cfg.tokens()) * cfg.dim;
  ws.embed_from_train = false;
  if (branch) first_skips(masks, ws.first_skip.data());
  patch_embed_forward<T>(ws.h, ws.embed, images, P.embed(), ws.embed_shape(B));
  for (int l = 0; l < cfg.depth; ++l) {
    const auto& idx = masks.exec[l];
    const int n = static_cast<int>(idx.size());
    if (branch)
      for (int i = 0; i < B; ++i)
        if (ws.first_skip[i] == l) std::memcpy(branch + i * row, ws.h + i * row, sizeof(T) * std::size_t(row));
    if (n == 0) continue;
    gather_rows<T>(ws.xin[l], ws.h, idx.data(), n, row);
    const bool class_only = detail::last_block_class_only(ws, l);
    if (class_only)
      block_forward_first_token<T>(ws.sub_out, ws.block[l], ws.xin[l], P.block(l), ws.block_shape(n),
                                   T(cfg.ln_eps));
    else
      block_forward<T>(ws.sub_out, ws.block[l], ws.xin[l], P.block(l), ws.block_shape(n), T(cfg.ln_eps));
    int j = ws.exit_of_block[l];
    if (j >= 0 && P.exit_is_lgvit(j))  // batch statistics in the heads' BatchNorm
      lgvit_head_forward<T>(ws.logits[j], ws.lg[j], ws.sub_out, P.lgvit(j), ws.lgvit_shape(j, n), BnMode::train,
                            ws.bn_group());
    else if (j >= 0)
      exit_head_forward<T>(ws.logits[j], ws.exit[j], ws.sub_out, P.exit(j), ws.exit_shape(n), T(cfg.ln_eps));
    if (class_only)  // only the class tokens were computed; the other rows keep h_{L-1}
      for (int i = 0; i < n; ++i)
        std::memcpy(ws.h + idx[i] * row, ws.sub_out + i * row, sizeof(T) * std::size_t(cfg.dim));
    else
      scatter_rows<T>(ws.h, ws.sub_out, idx.data(), n, row);
  }
  ws.train_batch = B;
  ws.train_rows = detail::executed_rows(masks);
  ws.embed_from_train = true;
}

// vit_forward_train with its result as per-exit views: out (M) gets, for each exit, the logits of
// the rows that reached it, their batch positions and the head's feature (ExitOut<T>). The masks
// are the caller's (filled by hand, or by LayerMasks::draw / all) and are checked: one list per
// block, each strictly increasing within [0, masks.batch) (ValueError naming the block, the
// position and the sample otherwise). The gradients of a loss on these logits go to
// vit_backward_exits with the same masks.
template <class T>
void vit_forward_exits(std::span<ExitOut<T>> out,  // (M) overwritten
                       ViTWorkspace<T>& ws, const ViTParams<T>& P,
                       const T* images,  // (B, C, H, W)
                       const LayerMasks& masks, T* branch = nullptr) {
  const VitConfig& cfg = ws.cfg;
  const int M = cfg.num_exits();
  ENVIT_CHECK(static_cast<int>(out.size()) == M, ShapeError, "vit_forward_exits: room for ", out.size(),
              " exits, the model has ", M);
  vit_forward_train<T>(ws, P, images, masks, branch);
  for (int j = 0; j < M; ++j) {
    const auto& rows = masks.exec[cfg.exits[j] - 1];
    ExitOut<T>& o = out[j];
    o.logits = ws.logits[j];
    o.rows = rows.data();
    o.n = static_cast<int>(rows.size());
    if (P.exit_is_lgvit(j)) {
      o.feat = ws.lg[j].y;
      o.feat_len = static_cast<int>(ws.lgvit_shape(j, 1).feat_tokens()) * cfg.dim;
    } else {
      o.feat = ws.exit[j].x;
      o.feat_len = cfg.dim;
    }
  }
}
// The same with the views kept in the workspace (ws.exit_out, valid until the next pass).
template <class T>
std::span<const ExitOut<T>> vit_forward_exits(ViTWorkspace<T>& ws, const ViTParams<T>& P,
                                              const T* images,  // (B, C, H, W)
                                              const LayerMasks& masks, T* branch = nullptr) {
  vit_forward_exits<T>(std::span<ExitOut<T>>(ws.exit_out), ws, P, images, masks, branch);
  return std::span<const ExitOut<T>>(ws.exit_out);
}

// Completes the complete model (no block skipped) from the branch points vit_forward_train(...,
// branch) recorded: block l runs, as one compact sub-batch, for every sample that skipped some block
// <= l, on its branch state. Afterwards `branch` holds the complete model's h_L for all B samples
// (rows of samples that skipped nothing are copied from ws.h, whose class tokens are theirs of h_L). The values are
// vit_forward_full's (bitwise: the GEMM's rows do not depend on the other rows of a call; tested),
// at the cost of only the blocks where the two passes differ. Only the class-token rows of h_L are
// final for the samples that branched (the last block runs on class tokens alone): what the
// teacher reads.
// Uses ws.dsub_in, ws.sub_out and the scratch caches: call it between vit_forward_train and
// vit_backward_train (which reads none of them), with the same masks.
template <class T>
void vit_complete_branches(ViTWorkspace<T>& ws, const ViTParams<T>& P, const LayerMasks& masks,
                           T* branch) {  // (B, N, D)
  const PrecisionScope scope(ws.precision);
  const VitConfig& cfg = ws.cfg;
  const int B = masks.batch;
  const std::ptrdiff_t row = std::ptrdiff_t(cfg.tokens()) * cfg.dim;
  auto& idx = ws.branch_idx;
  for (int l = 0; l < cfg.depth; ++l) {
    idx.clear();
    for (int i = 0; i < B; ++i)
      if (ws.first_skip[i] <= l) idx.push_back(i);
    const int n = static_cast<int>(idx.size());
    if (n == 0) continue;
    gather_rows<T>(ws.dsub_in, branch, idx.data(), n, row);
    if (l == cfg.depth - 1)  // only the class token of h_L is read
      block_forward_first_token<T>(ws.sub_out, ws.scratch_block, ws.dsub_in, P.block(l), ws.block_shape(n),
                                   T(cfg.ln_eps));
    else
      block_forward<T>(ws.sub_out, ws.scratch_block, ws.dsub_in, P.block(l), ws.block_shape(n), T(cfg.ln_eps));
    scatter_rows<T>(branch, ws.sub_out, idx.data(), n, row);
  }
  for (int i = 0; i < B; ++i)
    if (ws.first_skip[i] >= cfg.depth) std::memcpy(branch + i * row, ws.h + i * row, sizeof(T) * std::size_t(row));
}

// After a vit_forward_train: LGViT heads' BatchNorm running statistics updated from the batch
// statistics of the pass (PyTorch updates them inside the train-mode forward). No-op without
// LGViT heads. With ws.batch_reduce, the unbiasing count is every process's sample count (the
// heads' statistics were taken over all of them).
template <class T>
void vit_update_running_stats(ViTWorkspace<T>& ws, ViTParams<T>& P, const LayerMasks& masks) {
  for (std::size_t j = 0; j < ws.lg_kind.size(); ++j) {
    const int n = static_cast<int>(masks.exec[ws.cfg.exits[j] - 1].size());
    double all = n;
    batch_sum(ws.batch_reduce, &all, 1);
    if (n >= 1 && all * double(ws.cfg.patches()) > 1)
      lgvit_head_update_running<T>(P.lgvit_buffers(int(j)), ws.lg[j], ws.lgvit_shape(int(j), n),
                                   std::ptrdiff_t(all));
  }
}

// Backward of vit_forward_train (or vit_forward_exits) with the same masks, the caller's gradients
// at the exits as arguments: grads (M), rows as that pass's ExitOut<T> (see there). Accumulates
// parameter gradients into P's gradient arena (+=). Gradients reach executed samples through
// their block; skipped samples' gradients flow through unchanged.
// Throws (before touching anything) when grads has the wrong size, when an exit with rows has no
// dlogits, when the masks are not the forward's (batch or executed count differ), or when
// vit_forward_full ran since the forward (it overwrites the patch-embedding cache read here).
template <class T>
void vit_backward_exits(ViTParams<T>& P, ViTWorkspace<T>& ws,
                        std::span<const ExitGrad<T>> grads,  // (M)
                        const LayerMasks& masks) {
  const PrecisionScope scope(ws.precision);
  const VitConfig& cfg = ws.cfg;
  const int B = masks.batch, M = cfg.num_exits();
  ENVIT_CHECK(static_cast<int>(grads.size()) == M, ShapeError, "vit_backward: ", grads.size(),
              " exit gradients for a model with ", M, " exits");
  ENVIT_CHECK(ws.embed_from_train, ValueError,
              "vit_backward: no training forward to differentiate (vit_forward_train/vit_forward_exits did not run, "
              "or vit_forward_full ran after it and overwrote the patch-embedding cache; run it before the forward)");
  ENVIT_CHECK(B == ws.train_batch && detail::executed_rows(masks) == ws.train_rows, ValueError,
              "vit_backward: masks differ from the forward's (batch ", B, " vs ", ws.train_batch, ", executed rows ",
              detail::executed_rows(masks), " vs ", ws.train_rows, ")");
  for (int j = 0; j < M; ++j)
    ENVIT_CHECK(grads[j].dlogits || masks.exec[cfg.exits[j] - 1].empty(), ValueError, "vit_backward: exit ", j,
                " has ", masks.exec[cfg.exits[j] - 1].size(), " rows but no dlogits");
  const std::ptrdiff_t row = std::ptrdiff_t(cfg.tokens()) * cfg.dim;
  std::memset(ws.dh, 0, sizeof(T) * ws.state_size(B));
  for (int l = cfg.depth - 1; l >= 0; --l) {
    const auto& idx = masks.exec[l];
    const int n = static_cast<int>(idx.size());
    if (n == 0) continue;
    gather_rows<T>(ws.dsub_out, ws.dh, idx.data(), n, row);
    int j = ws.exit_of_block[l];
    if (j >= 0 && P.exit_is_lgvit(j))
      lgvit_head_backward<T>(ws.dsub_out, P.lgvit_grads(j), grads[j].dlogits, grads[j].dfeat, ws.lg[j], P.lgvit(j),
                             ws.lgvit_shape(j, n), ws.lg_ws, BnMode::train, ws.bn_group());
    else if (j >= 0)
      exit_head_backward<T>(ws.dsub_out, P.exit_grads(j), grads[j].dlogits, grads[j].dfeat, ws.exit[j], P.exit(j),
                            ws.exit_shape(n), ws.exit_ws);
    std::memset(ws.dsub_in, 0, sizeof(T) * ws.state_size(n));
    if (detail::last_block_class_only(ws, l))  // dh is zero off the class tokens of h_L
      block_backward_first_token<T>(ws.dsub_in, P.block_grads(l), ws.dsub_out, ws.xin[l], ws.block[l], P.block(l),
                                    ws.block_shape(n), ws.block_ws);
    else
      block_backward<T>(ws.dsub_in, P.block_grads(l), ws.dsub_out, ws.xin[l], ws.block[l], P.block(l),
                        ws.block_shape(n), ws.block_ws);
    scatter_rows<T>(ws.dh, ws.dsub_in, idx.data(), n, row);
  }
  patch_embed_backward<T>(P.embed_grads(), ws.dh, ws.embed, P.embed(), ws.embed_shape(B), ws.embed_ws);
}

// vit_backward_exits with the gradients in the workspace: ws.dlogits[j] (rows as ws.logits[j])
// and, where ws.dfeat_used[j] (LGViT heads: ws.dlgfeat_used[j]), ws.dfeat[j] (ws.dlgfeat[j]) on
// the head's feature. What the library's objectives write.
template <class T>
void vit_backward_train(ViTWorkspace<T>& ws, ViTParams<T>& P, const LayerMasks& masks) {
  const int M = ws.cfg.num_exits();
  for (int j = 0; j < M; ++j) {
    const bool lg = P.exit_is_lgvit(j);
    ws.exit_grad[j].dlogits = ws.dlogits[j];
    ws.exit_grad[j].dfeat = lg ? (ws.dlgfeat_used[j] ? ws.dlgfeat[j] : nullptr) : (ws.dfeat_used[j] ? ws.dfeat[j] : nullptr);
  }
  vit_backward_exits<T>(P, ws, std::span<const ExitGrad<T>>(ws.exit_grad), masks);
}

// The complete model (no block skipped, every block on every token), keeping no caches for backward.
// exit_logits: M pointers, each (B, C) or nullptr for exits not wanted. Returns the final state h_L
// (B,N,D), which is ws.h2 or ws.sub_out (the two alternate block by block). Writes ws.h2,
// ws.sub_out, the patch-embedding cache ws.embed and the scratch caches; ws.h, ws.xin and the
// per-block and per-exit caches are left alone. So it can run before vit_forward_train (teacher_forward
// does) but not between vit_forward_train and vit_backward_train, whose patch-embedding backward
// reads ws.embed.
template <class T>
const T* vit_forward_full(ViTWorkspace<T>& ws, const ViTParams<T>& P,
                          const T* images,  // (B, C, H, W)
                          int B, T* const* exit_logits) {
  const PrecisionScope scope(ws.precision);
  const VitConfig& cfg = ws.cfg;
  ENVIT_CHECK(B >= 1 && B <= ws.max_batch, ShapeError, "vit_forward_full: batch ", B,
              " outside 1..", ws.max_batch);
  ws.embed_from_train = false;
  patch_embed_forward<T>(ws.h2, ws.embed, images, P.embed(), ws.embed_shape(B));
  T* cur = ws.h2;
  T* nxt = ws.sub_out;
  for (int l = 0; l < cfg.depth; ++l) {
    block_forward<T>(nxt, ws.scratch_block, cur, P.block(l), ws.block_shape(B), T(cfg.ln_eps));
    std::swap(cur, nxt);
    int j = ws.exit_of_block[l];
    if (j >= 0 && exit_logits && exit_logits[j]) detail::exit_forward_scratch<T>(ws, P, j, exit_logits[j], cur, B);
  }
  return cur;
}

}  // namespace envit
