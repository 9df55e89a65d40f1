// envit/infer/early_exit.hpp — real early-exit inference of the multi-exit ViT: samples that
// satisfy the exit criterion leave, and the blocks after their exit never run on them.
//
//   early_exit_batch   batch mode with compaction: after exit j is evaluated, the rows of samples
//                      that leave are dropped and the remaining rows are moved up in order (the
//                      state stays contiguous), so block s_j + 1 runs on fewer rows; the pass stops
//                      as soon as no row is left.
//   early_exit_one     streaming: one sample (batch 1), stopping at the first exit that fires.
//   infer_all_exits    the complete model (every block on every sample) writing every exit's
//                      logits, (M, B, C) — the input of the simulation in infer/simulate.hpp.
// The *_dataset wrappers run a whole dataset in chunks of at most max_batch samples.
// In all three, only the class token is read after the last block (by the final exit head), so the
// last block runs on the class tokens alone (block_forward_first_token: ~20% of a block's work at
// tiny28); its other token rows are left stale.
//
// Memory: InferenceWorkspace plans everything once from the config and the largest batch (two
// state buffers, one patch-embedding cache, one scratch block cache and one scratch exit-head cache
// shared by all blocks/exits, the current exit's logits, the row index list and the per-row
// patience state); the passes only view it and never allocate. No backward caches are kept.
// The block scratch (qkv, attention probabilities, MLP hidden: ~(6D + 2F) floats per token plus
// H*N per token) is sized for `block_batch` samples, not the whole batch: a block runs on a larger
// batch in consecutive sample chunks of at most that many (balanced). Attention never mixes samples
// and the GEMM is row-invariant (kernels/gemm.hpp), so every row is bitwise what one call over the
// whole batch gives (tested). Default: chunks of >= 4096 token rows, so the GEMMs stay long while
// the scratch stays small (ViT-B/16 at batch 128 plans block scratch for 21 samples; the pass then
// peaks at about 1.2 GB, against 2.3 GB with scratch for the whole batch; docs/performance.md).
//
// Agreement with the simulation: the decision for a row is exit_score + ExitCriterion::fires on
// that row's logits (infer/criteria.hpp), exactly as exit_decide applies them to the complete
// model's logits. The decisions therefore agree exactly whenever every row's logits are bitwise
// independent of the batch the row was computed in:
//   - blocks run on all live rows at once (GEMMs with M = rows * tokens); that relies on the GEMM
//     being row-invariant, which every backend is (kernels/gemm.hpp; tested there and here, natively
//     and under qemu-aarch64).
//   - exit heads run one sample at a time (a GEMM with M = 1, always from the same scratch rows).
//     A head is D*C MACs against a block's N*(4D^2 + 2DF), so this costs nothing measurable.
// Precision: every pass runs its matrix products in ws.precision (core/precision.hpp: FP32, or BF16
// operands with FP32 accumulation), set for the pass's duration; prepack() packs the weights for
// that precision once (BF16 panels under bf16), so inference converts no weight per call. The
// agreement above holds in both precisions (tested).
// Letters: B batch, N tokens, D dim, C classes, L depth, M exits.
#pragma once
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "envit/core/arena.hpp"
#include "envit/core/precision.hpp"
#include "envit/infer/criteria.hpp"
#include "envit/model/lgvit_head.hpp"
#include "envit/ops/exit_head.hpp"
#include "envit/model/params.hpp"
#include "envit/ops/block.hpp"
#include "envit/ops/patch_embed.hpp"

namespace envit {

// Per-sample outputs, in the caller's sample order.
template <class T>
struct ExitOutput {
  int* exit;  // (B) exit index 0..M-1 the sample left at
  int* pred;  // (B) argmax of its logits there
  T* logits;  // (B, C) the logits of that exit, or nullptr
};

struct ExitResult {
  int exit;
  int pred;
};

template <class T>
struct InferenceWorkspace {
  VitConfig cfg;
  int max_batch = 0;
  Arena<T> arena;

  PatchEmbedCache<T> embed;
  T* h = nullptr;    // (B, N, D) state
  T* h2 = nullptr;   // (B, N, D) second state (a block's output must not alias its input)
  BlockCache<T> block;          // scratch, shared by every block
  ExitHeadCache<T> exit;        // scratch for ONE row, shared by every exit (heads run per sample)
  ExitHeadCache<T> final_exit;  // scratch for a whole batch (infer_final)
  // LGViT heads (cfg.lgvit()): one-row scratch caches per family (eval-mode BatchNorm, per sample)
  std::vector<LgvitKind> lg_kind;
  LgvitHeadCache<T> lg_conv{}, lg_attn{};
  T* head_out = nullptr;        // (C) one head's logits
  T* logits = nullptr;          // (B, C) the current exit's logits, live rows only
  std::vector<int> rows;        // (B) live row r holds sample rows[r] of the batch
  std::vector<ExitTrack> track; // (B) patience state of live row r
  std::vector<int> exit_of_block;  // (L) exit index after block l (0-based), or -1
  std::vector<int> block_rows;     // (L) rows block l ran on in the last early_exit_batch (0: none)
  // The arithmetic of every pass's matrix products: fp32, or bf16 (BF16 operands, FP32 accumulation).
  Precision precision = Precision::fp32;
  // Pre-packed block weights (prepack): 4 per block (qkv, proj, fc1, fc2, each recording the
  // precision it was packed for), and the parameters they were packed from. Empty until prepack().
  std::vector<PackedWeight<T>> packed;
  const ViTParams<T>* packed_from = nullptr;

  int block_batch = 0;           // samples per block call: the block scratch's batch (<= max_batch)

  // Default token rows per block call (see the file comment): block_batch = ceil(4096 / tokens).
  static constexpr std::ptrdiff_t default_block_rows = 4096;

  InferenceWorkspace() = default;
  // max_block_rows: token rows the block scratch is planned for (rounded up to whole samples, at
  // least one, at most max_b): smaller saves memory, larger makes fewer, longer GEMM calls.
  InferenceWorkspace(const VitConfig& c, int max_b, std::ptrdiff_t max_block_rows = default_block_rows)
      : cfg(c), max_batch(max_b) {
    cfg.validate();
    ENVIT_CHECK(max_b > 0, ValueError, "InferenceWorkspace: max batch must be positive, got ", max_b);
    ENVIT_CHECK(max_block_rows > 0, ValueError, "InferenceWorkspace: max_block_rows must be positive, got ",
                max_block_rows);
    block_batch = block_batch_for(cfg, max_b, max_block_rows);
    if (cfg.lgvit()) lg_kind = lgvit_head_kinds(cfg.num_exits() - 1);
    ArenaPlan<T> plan;
    carve(plan);
    arena = Arena<T>(plan.total);
    carve(arena);
    rows.assign(std::size_t(max_b), 0);
    track.assign(std::size_t(max_b), ExitTrack{});
    exit_of_block.assign(std::size_t(cfg.depth), -1);
    for (int j = 0; j < cfg.num_exits(); ++j) exit_of_block[std::size_t(cfg.exits[j] - 1)] = j;
    block_rows.assign(std::size_t(cfg.depth), 0);
  }
  // Samples per block call: max_block_rows token rows rounded up to whole samples, in [1, max_b].
  static int block_batch_for(const VitConfig& c, int max_b, std::ptrdiff_t max_block_rows) {
    const std::ptrdiff_t N = c.tokens();
    return int(std::min<std::ptrdiff_t>(max_b, std::max<std::ptrdiff_t>(1, (max_block_rows + N - 1) / N)));
  }
  // Elements of the arena InferenceWorkspace(c, max_b, max_block_rows) allocates, without allocating it.
  static std::size_t planned_elements(const VitConfig& c, int max_b, std::ptrdiff_t max_block_rows = default_block_rows) {
    InferenceWorkspace w;
    w.cfg = c, w.max_batch = max_b;
    w.cfg.validate();
    w.block_batch = block_batch_for(c, max_b, max_block_rows);
    if (c.lgvit()) w.lg_kind = lgvit_head_kinds(c.num_exits() - 1);
    ArenaPlan<T> plan;
    w.carve(plan);
    return plan.total;
  }
  InferenceWorkspace(const InferenceWorkspace&) = delete;
  InferenceWorkspace& operator=(const InferenceWorkspace&) = delete;
  InferenceWorkspace(InferenceWorkspace&&) = default;
  InferenceWorkspace& operator=(InferenceWorkspace&&) = default;

  PatchEmbedShape embed_shape(int b) const {
    return {b, cfg.channels, cfg.image_size, cfg.image_size, cfg.patch, cfg.dim};
  }
  BlockShape block_shape(int b) const { return {b, cfg.tokens(), cfg.dim, cfg.heads, cfg.mlp_hidden}; }
  ExitHeadShape exit_shape(int b) const { return {b, cfg.tokens(), cfg.dim, cfg.classes}; }
  std::size_t image_size() const { return std::size_t(cfg.channels) * cfg.image_size * cfg.image_size; }
  std::size_t bytes() const { return arena.capacity() * sizeof(T); }

  // Packs P's block weights once for the float GEMM in `precision` (BF16 panels under bf16), so
  // that every later inference pass with P skips packing (and converting) them per call (batch-1
  // latency: packing W is as costly as the product). Results are bitwise identical with and
  // without. A snapshot: call again after P's values change or after `precision` changes (passes
  // in another precision than the packed one, or with other parameters than P, ignore it).
  // Allocates.
  void prepack(const ViTParams<T>& P) {
    const VitConfig& c = P.config();
    ENVIT_CHECK(c.dim == cfg.dim && c.depth == cfg.depth && c.mlp_hidden == cfg.mlp_hidden, ShapeError,
                "InferenceWorkspace::prepack: workspace planned for (", cfg.str(), ") but the parameters are for (",
                c.str(), ")");
    packed.resize(std::size_t(4) * cfg.depth);
    const std::ptrdiff_t D = cfg.dim, F = cfg.mlp_hidden;
    for (int l = 0; l < cfg.depth; ++l) {
      const BlockParams<T> b = P.block(l);
      packed[4 * l + 0].pack(b.qkv_w, 3 * D, D, precision);
      packed[4 * l + 1].pack(b.proj_w, D, D, precision);
      packed[4 * l + 2].pack(b.fc1_w, F, D, precision);
      packed[4 * l + 3].pack(b.fc2_w, D, F, precision);
    }
    packed_from = &P;
  }
  // Forgets the packed weights (frees them).
  void unpack() {
    packed.clear();
    packed_from = nullptr;
  }
  // Block l's parameters, with the packed weights attached when they were packed from P in this
  // precision.
  BlockParams<T> block_params(const ViTParams<T>& P, int l) const {
    BlockParams<T> b = P.block(l);
    if (packed_from == &P && !packed.empty() && packed.front().precision == precision) {
      b.qkv_wp = &packed[std::size_t(4 * l + 0)];
      b.proj_wp = &packed[std::size_t(4 * l + 1)];
      b.fc1_wp = &packed[std::size_t(4 * l + 2)];
      b.fc2_wp = &packed[std::size_t(4 * l + 3)];
    }
    return b;
  }

 private:
  template <class A>
  void carve(A& a) {
    const std::size_t S = std::size_t(max_batch) * cfg.tokens() * cfg.dim;
    embed = patch_embed_cache_take<T>(a, embed_shape(max_batch));
    h = a.take(S);
    h2 = a.take(S);
    block = block_cache_take<T>(a, block_shape(block_batch));
    exit = exit_head_cache_take<T>(a, exit_shape(1));
    final_exit = exit_head_cache_take<T>(a, exit_shape(max_batch));
    head_out = a.take(std::size_t(cfg.classes));
    logits = a.take(std::size_t(max_batch) * cfg.classes);
    if (lg_kind.empty()) return;
    lg_conv = lgvit_head_cache_take<T>(a, LgvitHeadShape{1, cfg.grid(), cfg.dim, cfg.classes, LgvitKind::conv1_1});
    lg_attn = lgvit_head_cache_take<T>(a, LgvitHeadShape{1, cfg.grid(), cfg.dim, cfg.classes, LgvitKind::attn_r2});
  }
};

namespace detail {
template <class T>
void infer_check(const InferenceWorkspace<T>& ws, const ViTParams<T>& P, int B, const char* who) {
  const VitConfig& a = ws.cfg;
  const VitConfig& b = P.config();
  ENVIT_CHECK(a.image_size == b.image_size && a.channels == b.channels && a.patch == b.patch &&
                  a.dim == b.dim && a.depth == b.depth && a.heads == b.heads &&
                  a.mlp_hidden == b.mlp_hidden && a.classes == b.classes && a.exits == b.exits &&
                  a.exit_head == b.exit_head,
              ShapeError, who, ": workspace planned for (", a.str(), ") but the parameters are for (",
              b.str(), ")");
  ENVIT_CHECK(B >= 1 && B <= ws.max_batch, ShapeError, who, ": batch ", B, " outside 1..", ws.max_batch,
              " (the workspace's max batch)");
}

// Block l of a pass that reads only the class token after the last block, on B samples in balanced
// chunks of at most ws.block_batch (the block scratch's batch; see the file comment).
template <class T>
void infer_block(InferenceWorkspace<T>& ws, const ViTParams<T>& P, int l, T* y, const T* x, int B) {
  const BlockParams<T> bp = ws.block_params(P, l);
  const T eps = T(ws.cfg.ln_eps);
  const std::ptrdiff_t row = std::ptrdiff_t(ws.cfg.tokens()) * ws.cfg.dim;
  const int chunks = (B + ws.block_batch - 1) / ws.block_batch;
  for (int i = 0; i < chunks; ++i) {
    const auto [b0, b1] = partition(B, chunks, i);
    const int n = int(b1 - b0);
    T* yc = y + b0 * row;
    const T* xc = x + b0 * row;
    if (l == ws.cfg.depth - 1) block_forward_first_token<T>(yc, ws.block, xc, bp, ws.block_shape(n), eps);
    else block_forward<T>(yc, ws.block, xc, bp, ws.block_shape(n), eps);
  }
}

// Exit head j on n samples, one at a time (see the file comment): logits row r = head(tokens row r).
template <class T>
void infer_exit_heads(InferenceWorkspace<T>& ws, const ViTParams<T>& P, int j,
                      T* logits,        // (n, C) overwritten
                      const T* tokens,  // (n, N, D)
                      int n) {
  const std::size_t C = std::size_t(ws.cfg.classes), row = std::size_t(ws.cfg.tokens()) * ws.cfg.dim;
  const bool lg = P.exit_is_lgvit(j);
  const LgvitHeadShape hs = lg ? LgvitHeadShape{1, ws.cfg.grid(), ws.cfg.dim, ws.cfg.classes, ws.lg_kind[std::size_t(j)]}
                               : LgvitHeadShape{};
  for (int r = 0; r < n; ++r) {
    if (lg)  // eval-mode BatchNorm (running statistics): a row's logits do not depend on the others
      lgvit_head_forward<T>(ws.head_out, lgvit_is_conv(hs.kind) ? ws.lg_conv : ws.lg_attn, tokens + r * row, P.lgvit(j),
                            hs, BnMode::eval);
    else
      exit_head_forward<T>(ws.head_out, ws.exit, tokens + r * row, P.exit(j), ws.exit_shape(1), T(ws.cfg.ln_eps));
    std::memcpy(logits + r * C, ws.head_out, sizeof(T) * C);
  }
}
}  // namespace detail

// The complete model on B samples: exit j's logits (B, C) at logits + j * exit_stride
// (exit_stride >= B * C; B * C gives a dense (M, B, C) array).
template <class T>
void infer_all_exits(InferenceWorkspace<T>& ws, const ViTParams<T>& P,
                     const T* images,  // (B, C, H, W)
                     int B,
                     T* logits,        // (M, ., C) see exit_stride; overwritten
                     std::ptrdiff_t exit_stride) {
  detail::infer_check(ws, P, B, "infer_all_exits");
  const PrecisionScope scope(ws.precision);
  const VitConfig& cfg = ws.cfg;
  ENVIT_CHECK(exit_stride >= std::ptrdiff_t(B) * cfg.classes, ShapeError, "infer_all_exits: exit stride ",
              exit_stride, " < batch x classes = ", std::ptrdiff_t(B) * cfg.classes);
  patch_embed_forward<T>(ws.h, ws.embed, images, P.embed(), ws.embed_shape(B));
  T* cur = ws.h;
  T* nxt = ws.h2;
  for (int l = 0; l < cfg.depth; ++l) {
    detail::infer_block<T>(ws, P, l, nxt, cur, B);
    std::swap(cur, nxt);
    const int j = ws.exit_of_block[std::size_t(l)];
    if (j >= 0) detail::infer_exit_heads<T>(ws, P, j, logits + j * exit_stride, cur, B);
  }
}

// The model without early exits, as eq. 19's baseline runs it: every block on the whole batch and
// only the final head (batched). logits: (B, C) overwritten. The wall-clock reference for speed-ups.
template <class T>
void infer_final(InferenceWorkspace<T>& ws, const ViTParams<T>& P,
                 const T* images,  // (B, C, H, W)
                 int B, T* logits) {
  detail::infer_check(ws, P, B, "infer_final");
  const PrecisionScope scope(ws.precision);
  const VitConfig& cfg = ws.cfg;
  const T eps = T(cfg.ln_eps);
  patch_embed_forward<T>(ws.h, ws.embed, images, P.embed(), ws.embed_shape(B));
  T* cur = ws.h;
  T* nxt = ws.h2;
  for (int l = 0; l < cfg.depth; ++l) {
    detail::infer_block<T>(ws, P, l, nxt, cur, B);
    std::swap(cur, nxt);
  }
  const int M = cfg.num_exits();
  exit_head_forward<T>(logits, ws.final_exit, cur, P.exit(M - 1), ws.exit_shape(B), eps);
}

// Batch early exit with compaction (see the file comment). `out` is indexed by the batch's sample
// order. Afterwards ws.block_rows[l] is the number of samples block l ran on.
template <class T>
void early_exit_batch(InferenceWorkspace<T>& ws, const ViTParams<T>& P,
                      const T* images,  // (B, C, H, W)
                      int B, const ExitCriterion& crit, ExitOutput<T> out) {
  detail::infer_check(ws, P, B, "early_exit_batch");
  const PrecisionScope scope(ws.precision);
  const VitConfig& cfg = ws.cfg;
  const int M = cfg.num_exits(), C = cfg.classes;
  crit.validate(M);
  ENVIT_CHECK(out.exit != nullptr && out.pred != nullptr, ValueError,
              "early_exit_batch: out.exit and out.pred are required");
  const std::size_t row = std::size_t(cfg.tokens()) * cfg.dim;  // one sample's state

  patch_embed_forward<T>(ws.h, ws.embed, images, P.embed(), ws.embed_shape(B));
  for (int r = 0; r < B; ++r) {
    ws.rows[std::size_t(r)] = r;
    ws.track[std::size_t(r)] = ExitTrack{};
  }
  std::fill(ws.block_rows.begin(), ws.block_rows.end(), 0);
  T* cur = ws.h;
  T* nxt = ws.h2;
  int n = B;  // live rows, packed at the front of cur
  for (int l = 0; l < cfg.depth && n > 0; ++l) {
    detail::infer_block<T>(ws, P, l, nxt, cur, n);
    ws.block_rows[std::size_t(l)] = n;
    std::swap(cur, nxt);
    const int j = ws.exit_of_block[std::size_t(l)];
    if (j < 0) continue;
    detail::infer_exit_heads<T>(ws, P, j, ws.logits, cur, n);
    int keep = 0;
    for (int r = 0; r < n; ++r) {
      const T* z = ws.logits + std::size_t(r) * C;
      const ExitScore s = exit_score(crit, z, C, ws.track[std::size_t(r)]);
      if (crit.fires(j, M, s.score)) {
        const int i = ws.rows[std::size_t(r)];
        out.exit[i] = j;
        out.pred[i] = s.pred;
        if (out.logits) std::memcpy(out.logits + std::size_t(i) * C, z, sizeof(T) * std::size_t(C));
        continue;
      }
      if (keep != r) {  // keep < r: the rows do not overlap
        std::memcpy(cur + keep * row, cur + r * row, sizeof(T) * row);
        ws.rows[std::size_t(keep)] = ws.rows[std::size_t(r)];
        ws.track[std::size_t(keep)] = ws.track[std::size_t(r)];
      }
      ++keep;
    }
    n = keep;
  }
}

// Streaming: one sample, stopping at the first exit that fires. logits: (C) or nullptr.
template <class T>
ExitResult early_exit_one(InferenceWorkspace<T>& ws, const ViTParams<T>& P,
                          const T* image,  // (C, H, W)
                          const ExitCriterion& crit, T* logits) {
  ExitResult r{-1, -1};
  early_exit_batch<T>(ws, P, image, 1, crit, ExitOutput<T>{&r.exit, &r.pred, logits});
  return r;
}

// A dataset of N samples in chunks of `batch` (1..max_batch; 1 = streaming, one sample at a time).
template <class T>
void early_exit_dataset(InferenceWorkspace<T>& ws, const ViTParams<T>& P,
                        const T* images,  // (N, C, H, W)
                        int N, int batch, const ExitCriterion& crit, ExitOutput<T> out) {
  ENVIT_CHECK(batch >= 1 && batch <= ws.max_batch, ValueError, "early_exit_dataset: batch ", batch,
              " outside 1..", ws.max_batch);
  const int C = ws.cfg.classes;
  for (int s = 0; s < N; s += batch) {
    const int b = std::min(batch, N - s);
    ExitOutput<T> o{out.exit + s, out.pred + s, out.logits ? out.logits + std::size_t(s) * C : nullptr};
    early_exit_batch<T>(ws, P, images + std::size_t(s) * ws.image_size(), b, crit, o);
  }
}

// Every exit's logits for a dataset of N samples, (M, N, C), in chunks of `batch` (0: max_batch).
template <class T>
void infer_all_exits_dataset(InferenceWorkspace<T>& ws, const ViTParams<T>& P,
                             const T* images,  // (N, C, H, W)
                             int N, T* logits,  // (M, N, C) overwritten
                             int batch = 0) {
  if (batch == 0) batch = ws.max_batch;
  ENVIT_CHECK(batch >= 1 && batch <= ws.max_batch, ValueError, "infer_all_exits_dataset: batch ",
              batch, " outside 1..", ws.max_batch);
  const std::size_t C = std::size_t(ws.cfg.classes);
  for (int s = 0; s < N; s += batch) {
    const int b = std::min(batch, N - s);
    infer_all_exits<T>(ws, P, images + std::size_t(s) * ws.image_size(), b, logits + std::size_t(s) * C,
                       std::ptrdiff_t(N) * std::ptrdiff_t(C));
  }
}

}  // namespace envit
