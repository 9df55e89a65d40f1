// envit/ops/block.hpp — the pre-LN ViT block (timm's Block without drop-path, layer scale or
// dropout):  x1 = x + attn(norm1(x));  y = x1 + mlp(norm2(x1)).
// The block's own input x is not kept in its cache: the caller owns it (it is the previous block's
// output) and passes it again to backward. One workspace serves every block of a model.
// Letters: B = batch, N = tokens, D = dim, H = heads, F = MLP hidden, R = B*N rows.
#pragma once
#include <cstddef>
#include <cstring>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/ops/attention.hpp"
#include "envit/ops/layernorm.hpp"
#include "envit/ops/mlp.hpp"

namespace envit {

struct BlockShape { std::ptrdiff_t batch, tokens, dim, heads, hidden; };
template <class T> struct BlockParams {
  const T *norm1_w, *norm1_b;  // (D) each
  const T *qkv_w, *qkv_b;      // (3D, D), (3D)
  const T *proj_w, *proj_b;    // (D, D), (D)
  const T *norm2_w, *norm2_b;  // (D) each
  const T *fc1_w, *fc1_b;      // (F, D), (F)
  const T *fc2_w, *fc2_b;      // (D, F), (D)
  // Optional pre-packed qkv_w, proj_w, fc1_w, fc2_w for the forward GEMMs (inference: see
  // PackedWeight and InferenceWorkspace::prepack); nullptr: packed on every call.
  const PackedWeight<T> *qkv_wp = nullptr, *proj_wp = nullptr, *fc1_wp = nullptr, *fc2_wp = nullptr;
};
template <class T> struct BlockGrads {  // same shapes as BlockParams, accumulated (+=)
  T *dnorm1_w, *dnorm1_b, *dqkv_w, *dqkv_b, *dproj_w, *dproj_b;
  T *dnorm2_w, *dnorm2_b, *dfc1_w, *dfc1_b, *dfc2_w, *dfc2_b;
};
template <class T> struct BlockCache {
  T* ln1;                   // (R, D)  norm1(x), the attention input
  LayerNormCache<T> norm1;  // (R) mean, rstd
  AttentionCache<T> attn;   // qkv (R, 3D), att (B, H, N, N), ctx (R, D)
  T* x1;                    // (R, D)  x + attn(ln1)
  T* ln2;                   // (R, D)  norm2(x1), the MLP input
  LayerNormCache<T> norm2;  // (R) mean, rstd
  MlpCache<T> mlp;          // h, a (R, F)
};
template <class T> struct BlockWorkspace {  // backward temporaries, overwritten on every call
  T* dx1;                   // (R, D)  dL/dx1
  T* dln;                   // (R, D)  dL/dln2, then dL/dln1
  AttentionWorkspace<T> attn;
  MlpWorkspace<T> mlp;
  T* ln_scratch;            // (2 * D * ln_threads)  LayerNorm parameter-gradient partials
  int ln_threads;           // OpenMP threads the scratch was planned for
};

inline AttentionShape block_attention_shape(const BlockShape& s) {
  return {s.batch, s.tokens, s.dim, s.heads};
}
inline MlpShape block_mlp_shape(const BlockShape& s) {
  return {s.batch * s.tokens, s.dim, s.hidden};
}
inline void block_check(const BlockShape& s) {
  ENVIT_CHECK(s.batch >= 0 && s.tokens > 0 && s.dim > 0 && s.heads > 0 && s.hidden > 0,
              ShapeError, "block: invalid shape batch=", s.batch, " tokens=", s.tokens,
              " dim=", s.dim, " heads=", s.heads, " hidden=", s.hidden);
  attention_check(block_attention_shape(s));
}

// Cache for `s.batch` (the largest batch it will serve); smaller batches use its prefix.
template <class T, class A>
BlockCache<T> block_cache_take(A& arena, BlockShape s) {
  block_check(s);
  const auto R = std::size_t(s.batch * s.tokens), D = std::size_t(s.dim);
  BlockCache<T> c;
  c.ln1 = arena.take(R * D);
  c.norm1.mean = arena.take(R);
  c.norm1.rstd = arena.take(R);
  c.attn = attention_cache_take<T>(arena, block_attention_shape(s));
  c.x1 = arena.take(R * D);
  c.ln2 = arena.take(R * D);
  c.norm2.mean = arena.take(R);
  c.norm2.rstd = arena.take(R);
  c.mlp = mlp_cache_take<T>(arena, block_mlp_shape(s));
  return c;
}

// Sized for `s.batch` rows and for the current OpenMP thread count (num_threads()); backward
// throws ValueError if more threads are in use when it runs.
template <class T, class A>
BlockWorkspace<T> block_workspace_take(A& arena, BlockShape s) {
  block_check(s);
  const auto R = std::size_t(s.batch * s.tokens), D = std::size_t(s.dim);
  BlockWorkspace<T> w;
  w.dx1 = arena.take(R * D);
  w.dln = arena.take(R * D);
  w.attn = attention_workspace_take<T>(arena, block_attention_shape(s));
  w.mlp = mlp_workspace_take<T>(arena, block_mlp_shape(s));
  w.ln_threads = num_threads();
  w.ln_scratch = arena.take(2 * D * std::size_t(w.ln_threads));
  return w;
}

template <class T>
void block_forward(T* y,               // (B, N, D)  overwritten; must not alias x
                   BlockCache<T> c,    // written here, read by backward
                   const T* x,         // (B, N, D)
                   BlockParams<T> p, BlockShape s, T eps) {
  block_check(s);
  const std::ptrdiff_t R = s.batch * s.tokens, D = s.dim;
  ENVIT_CHECK(y != x || R == 0, ValueError, "block_forward: y must not alias x");
  // The residual adds ride on the bias epilogue of each output projection: x1 = (attn + b) + x.
  layernorm_forward<T>(c.ln1, c.norm1, x, {p.norm1_w, p.norm1_b}, {R, D}, eps);
  detail::attention_forward_impl<T>(c.x1, c.attn, c.ln1, {p.qkv_w, p.qkv_b, p.proj_w, p.proj_b, p.qkv_wp, p.proj_wp},
                                    block_attention_shape(s), /*residual=*/x);
  layernorm_forward<T>(c.ln2, c.norm2, c.x1, {p.norm2_w, p.norm2_b}, {R, D}, eps);
  detail::mlp_forward_impl<T>(y, c.mlp, c.ln2, {p.fc1_w, p.fc1_b, p.fc2_w, p.fc2_b, p.fc1_wp, p.fc2_wp}, block_mlp_shape(s),
                              /*residual=*/static_cast<const T*>(c.x1));
}

// block_forward for the first token of each sample only: y's rows b*N (b < B) are written, every
// other row of y is left as it was. For a model's last block when only the class token is read
// afterwards (the final exit head): keys and values still need LayerNorm 1 and the qkv product on
// all B*N rows, but the class token's attention row, the projection, LayerNorm 2 and the MLP run on
// B rows instead of B*N (at N = 50, D = 192, F = 768: ~20% of the block's multiply-adds). The
// rows written are bitwise block_forward's, since every GEMM backend is row-invariant (gemm.hpp;
// tested). The cache then holds what block_backward_first_token needs (c.x1, c.ln2, the
// MLP cache and the attention's att/ctx as B compact rows; c.ln1 and the qkv on all rows).
// Needs N >= 2 (the cache's rows B..2B-1 of x1 serve as scratch), which every ViT has (patches + 1).
template <class T>
void block_forward_first_token(T* y,             // (B, N, D)  rows b*N overwritten, others untouched
                               BlockCache<T> c,  // scratch
                               const T* x,       // (B, N, D)
                               BlockParams<T> p, BlockShape s, T eps) {
  block_check(s);
  const std::ptrdiff_t B = s.batch, N = s.tokens, R = B * N, D = s.dim;
  ENVIT_CHECK(y != x || R == 0, ValueError, "block_forward_first_token: y must not alias x");
  ENVIT_CHECK(N >= 2, ShapeError, "block_forward_first_token: needs at least 2 tokens, got ", N);
  T* xc = c.x1 + B * D;  // (B, D) the class tokens of x, then the block's output rows
  for (std::ptrdiff_t b = 0; b < B; ++b) std::memcpy(xc + b * D, x + b * N * D, sizeof(T) * std::size_t(D));
  layernorm_forward<T>(c.ln1, c.norm1, x, {p.norm1_w, p.norm1_b}, {R, D}, eps);
  detail::attention_forward_impl<T>(c.x1, c.attn, c.ln1, {p.qkv_w, p.qkv_b, p.proj_w, p.proj_b, p.qkv_wp, p.proj_wp},
                                    block_attention_shape(s), /*residual=*/xc, /*queries=*/1);
  layernorm_forward<T>(c.ln2, c.norm2, c.x1, {p.norm2_w, p.norm2_b}, {B, D}, eps);
  detail::mlp_forward_impl<T>(xc, c.mlp, c.ln2, {p.fc1_w, p.fc1_b, p.fc2_w, p.fc2_b, p.fc1_wp, p.fc2_wp},
                              {B, D, s.hidden}, /*residual=*/static_cast<const T*>(c.x1));
  for (std::ptrdiff_t b = 0; b < B; ++b) std::memcpy(y + b * N * D, xc + b * D, sizeof(T) * std::size_t(D));
}

// Backward of block_forward_first_token (same cache): the block's output gradient on the first
// token of each sample only, dy's other rows are not read (their gradient is zero: nothing read
// those rows). Keys and values of every token still receive gradient, so dx reaches all rows.
// The values are block_backward's with dy zero on the non-first rows, up to the rounding of sums
// that no longer add those zeros (tested in double); the MLP, the projection and the attention
// rows cost B instead of B*N rows. For a model's last block in training (vit_backward_train).
// Parameter gradients accumulate (+=); dx accumulated (+=), or nullptr.
template <class T>
void block_backward_first_token(T* dx,            // (B, N, D)  accumulated (+=), or nullptr
                                BlockGrads<T> g,  // accumulated (+=); members may be nullptr
                                const T* dy,      // (B, N, D)  only rows b*N are read
                                const T* x,       // (B, N, D)  the forward input
                                BlockCache<T> c, BlockParams<T> p, BlockShape s, BlockWorkspace<T> w) {
  block_check(s);
  const std::ptrdiff_t B = s.batch, N = s.tokens, R = B * N, D = s.dim;
  ENVIT_CHECK(N >= 2, ShapeError, "block_backward_first_token: needs at least 2 tokens, got ", N);
  ENVIT_CHECK(in_parallel() || num_threads() <= w.ln_threads, ValueError,
              "block_backward_first_token: workspace planned for ", w.ln_threads, " threads, ", num_threads(),
              " in use (take the workspace after set_num_threads)");
  T* dx1 = w.dx1;          // (B, D)  dL/dx1 on the class tokens
  T* dyc = w.dx1 + B * D;  // (B, D)  dy's class-token rows, compact
  for (std::ptrdiff_t b = 0; b < B; ++b) std::memcpy(dyc + b * D, dy + b * N * D, sizeof(T) * std::size_t(D));
  detail::mlp_backward_impl<T>(w.dln, /*overwrite_dx=*/true, {g.dfc1_w, g.dfc1_b, g.dfc2_w, g.dfc2_b}, dyc,
                               c.ln2, c.mlp, {p.fc1_w, p.fc1_b, p.fc2_w, p.fc2_b}, {B, D, s.hidden}, w.mlp);
  detail::layernorm_backward_impl<T>(dx1, /*base=*/dyc, /*extra=*/nullptr, {g.dnorm2_w, g.dnorm2_b}, w.dln,
                                     c.x1, c.norm2, {p.norm2_w, p.norm2_b}, {B, D}, w.ln_scratch);
  // d ln1 on all rows (keys and values of every token), overwritten.
  detail::attention_backward_impl<T>(w.dln, /*overwrite_dx=*/true, {g.dqkv_w, g.dqkv_b, g.dproj_w, g.dproj_b},
                                     dx1, c.ln1, c.attn, {p.qkv_w, p.qkv_b, p.proj_w, p.proj_b},
                                     block_attention_shape(s), w.attn, /*queries=*/1);
  // dx = (dx + dx1) + LayerNorm1 backward, dx1 being zero off the class tokens.
  if (dx)
    for (std::ptrdiff_t b = 0; b < B; ++b) {
      T* d = dx + b * N * D;
      const T* e = dx1 + b * D;
      for (std::ptrdiff_t k = 0; k < D; ++k) d[k] += e[k];
    }
  detail::layernorm_backward_impl<T>(dx, /*base=*/static_cast<const T*>(dx), /*extra=*/nullptr,
                                     {g.dnorm1_w, g.dnorm1_b}, w.dln, x, c.norm1, {p.norm1_w, p.norm1_b}, {R, D},
                                     w.ln_scratch);
}

// With x1 = x + attn(ln1(x)) and y = x1 + mlp(ln2(x1)):
//   dx1 = dy + ln2_backward(mlp_backward(dy))        (residual plus MLP branch)
//   dx += dx1 + ln1_backward(attn_backward(dx1))     (residual plus attention branch)
// Parameter gradients of all six sub-layers accumulate (+=).
template <class T>
void block_backward(T* dx,              // (B, N, D)  accumulated (+=), or nullptr
                    BlockGrads<T> g,    // accumulated (+=); members may be nullptr
                    const T* dy,        // (B, N, D)
                    const T* x,         // (B, N, D)  the forward input
                    BlockCache<T> c, BlockParams<T> p, BlockShape s, BlockWorkspace<T> w) {
  block_check(s);
  const std::ptrdiff_t R = s.batch * s.tokens, D = s.dim;
  ENVIT_CHECK(in_parallel() || num_threads() <= w.ln_threads, ValueError,
              "block_backward: workspace planned for ", w.ln_threads, " threads, ", num_threads(),
              " in use (take the workspace after set_num_threads)");
  // No zero fills or copies: the branch backwards overwrite w.dln, and the residual terms are
  // folded into the LayerNorm backward's dx pass (dx1 = dy + LN2', dx = (dx + dx1) + LN1').
  // MLP branch: dln = d ln2 (overwritten), then dx1 = dy + LayerNorm2 backward.
  detail::mlp_backward_impl<T>(w.dln, /*overwrite_dx=*/true, {g.dfc1_w, g.dfc1_b, g.dfc2_w, g.dfc2_b}, dy,
                               c.ln2, c.mlp, {p.fc1_w, p.fc1_b, p.fc2_w, p.fc2_b}, block_mlp_shape(s), w.mlp);
  detail::layernorm_backward_impl<T>(w.dx1, /*base=*/dy, /*extra=*/nullptr, {g.dnorm2_w, g.dnorm2_b}, w.dln,
                                     c.x1, c.norm2, {p.norm2_w, p.norm2_b}, {R, D}, w.ln_scratch);
  // Attention branch: dln = d ln1 (overwritten), then dx = (dx + dx1) + LayerNorm1 backward.
  detail::attention_backward_impl<T>(w.dln, /*overwrite_dx=*/true, {g.dqkv_w, g.dqkv_b, g.dproj_w, g.dproj_b},
                                     w.dx1, c.ln1, c.attn, {p.qkv_w, p.qkv_b, p.proj_w, p.proj_b},
                                     block_attention_shape(s), w.attn);
  detail::layernorm_backward_impl<T>(dx, /*base=*/static_cast<const T*>(dx), /*extra=*/static_cast<const T*>(w.dx1),
                                     {g.dnorm1_w, g.dnorm1_b}, w.dln, x, c.norm1, {p.norm1_w, p.norm1_b}, {R, D},
                                     w.ln_scratch);
}

}  // namespace envit
