// envit/ops/attention.hpp — multi-head self-attention in timm's layout (fused qkv projection,
// output projection), forward and backward. No masking, no dropout, no fused flash-style kernel:
// the (B,H,N,N) probabilities are materialised in the cache because backward needs them.
// Letters: B = batch, N = tokens, D = dim, H = heads, E = head dim = D / H, R = B*N rows.
//
// qkv = x Wqkv^T + bqkv is (R, 3D) with columns [q | k | v], each D wide and heads contiguous
// inside each (timm: qkv.reshape(B, N, 3, H, E)). Per (b, h) the head's q, k, v are strided views
// (row stride 3D) into qkv, and the head's context is written at columns h*E of ctx (row stride D):
// no transposes or per-head copies are materialised. The row softmax and its backward are
// softmax.hpp's row kernels (for float the kernel set's, kernels/dispatch.hpp). The qkv bias and
// the output projection's bias (plus the block's residual, when block.hpp passes one) are added as
// GEMM epilogues (GemmEpilogue: on each block of the output as soon as it is final, while it is in
// cache).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/kernels/gemm.hpp"
#include "envit/ops/linear.hpp"
#include "envit/ops/softmax.hpp"

namespace envit {

struct AttentionShape { std::ptrdiff_t batch, tokens, dim, heads; };  // E = dim / heads
template <class T> struct AttentionParams {
  const T* qkv_w;   // (3D, D)
  const T* qkv_b;   // (3D)
  const T* proj_w;  // (D, D)
  const T* proj_b;  // (D)
  // Optional pre-packed qkv_w / proj_w for the forward GEMMs (inference; see PackedWeight).
  const PackedWeight<T>* qkv_wp = nullptr;
  const PackedWeight<T>* proj_wp = nullptr;
};
template <class T> struct AttentionGrads { T *dqkv_w, *dqkv_b, *dproj_w, *dproj_b; };  // accumulated (+=)
template <class T> struct AttentionCache {
  T* qkv;  // (R, 3D)   [q | k | v]
  T* att;  // (B, H, N, N) softmax probabilities
  T* ctx;  // (R, D)    per-head contexts before the output projection
};
template <class T> struct AttentionWorkspace {  // backward temporaries, overwritten on every call
  T* dctx;  // (R, D)
  T* dqkv;  // (R, 3D)
  T* datt;  // (B, H, N, N)  dP, then dS in place
};

inline void attention_check(const AttentionShape& s) {
  ENVIT_CHECK(s.batch >= 0 && s.tokens > 0 && s.dim > 0 && s.heads > 0, ShapeError,
              "attention: invalid shape batch=", s.batch, " tokens=", s.tokens, " dim=", s.dim,
              " heads=", s.heads);
  ENVIT_CHECK(s.dim % s.heads == 0, ShapeError, "attention: dim ", s.dim,
              " is not a multiple of heads ", s.heads);
}

// Cache for `s.batch` (the largest batch it will serve); smaller batches use its prefix.
template <class T, class A>
AttentionCache<T> attention_cache_take(A& arena, AttentionShape s) {
  attention_check(s);
  const auto R = std::size_t(s.batch * s.tokens), D = std::size_t(s.dim);
  AttentionCache<T> c;
  c.qkv = arena.take(R * 3 * D);
  c.att = arena.take(std::size_t(s.batch * s.heads * s.tokens * s.tokens));
  c.ctx = arena.take(R * D);
  return c;
}

template <class T, class A>
AttentionWorkspace<T> attention_workspace_take(A& arena, AttentionShape s) {
  attention_check(s);
  const auto R = std::size_t(s.batch * s.tokens), D = std::size_t(s.dim);
  AttentionWorkspace<T> w;
  w.dctx = arena.take(R * D);
  w.dqkv = arena.take(R * 3 * D);
  w.datt = arena.take(std::size_t(s.batch * s.heads * s.tokens * s.tokens));
  return w;
}

namespace detail {

// attention_forward with an optional residual folded into the output pass (block.hpp):
//   y = (ctx Wproj^T + bproj) + residual      residual or nullptr, must not alias y.
// queries: how many leading tokens of each sample get an output (0: all N). q, k, v are computed
// for every token (keys and values are needed), the score rows, softmax, context and projection
// only for the first `queries` tokens of each sample; y and residual are then (B*queries, D)
// compact rows, c.att holds B*H*queries score rows of N and c.ctx B*queries rows. queries = 1 is
// the class token alone, all a model's last block needs when only the final exit head reads it.
// A query row goes through the same GEMM, softmax and epilogue calls either way, and the GEMM is
// row-invariant (kernels/gemm.hpp), so its output is bitwise the full forward's.
template <class T>
void attention_forward_impl(T* y, AttentionCache<T> c, const T* x, AttentionParams<T> p, AttentionShape s,
                            const T* residual, std::ptrdiff_t queries = 0) {
  attention_check(s);
  const std::ptrdiff_t N = s.tokens, D = s.dim, H = s.heads, E = D / H, R = s.batch * N;
  const std::ptrdiff_t Q = queries > 0 ? std::min(queries, N) : N;
  const T scale = T(1) / std::sqrt(T(E));
  // bias adds fused into the GEMMs (applied per block of C while it is in cache)
  const auto qkv_bias = [&](std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t c0, std::ptrdiff_t c1) {
    bias_residual_rect<T>(c.qkv, p.qkv_b, static_cast<const T*>(nullptr), 3 * D, r0, r1, c0, c1);
  };
  const GemmEpilogue qkv_epi = make_epilogue(qkv_bias);
  gemm_weight_t<T>(R, 3 * D, D, T(1), x, D, p.qkv_w, p.qkv_wp, T(0), c.qkv, 3 * D, &qkv_epi);
  // Each (b, h) owns disjoint slices of att and ctx; GEMMs inside a parallel region stay serial.
  if constexpr (std::is_same_v<T, float>) kernels::select();
  parallel_for(s.batch * H, 4.0 * double(Q * N * E) + 8.0 * double(Q * N),
               [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i) {
      const std::ptrdiff_t b = i / H, h = i % H;
      const T* q = c.qkv + b * N * 3 * D + h * E;  // (Q, E) of the (N, E) head slice, row stride 3D
      const T* k = q + D;
      const T* v = q + 2 * D;
      T* P = c.att + i * Q * N;                    // (Q, N)
      gemm<T>(Trans::N, Trans::T, Q, N, E, scale, q, 3 * D, k, 3 * D, T(0), P, N);
      softmax_rows<T>(P, P, Q, N, T(1));
      gemm<T>(Trans::N, Trans::N, Q, E, N, T(1), P, N, v, 3 * D, T(0), c.ctx + b * Q * D + h * E, D);
    }
  });
  const auto proj_bias = [&](std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t c0, std::ptrdiff_t c1) {
    bias_residual_rect<T>(y, p.proj_b, residual, D, r0, r1, c0, c1);
  };
  const GemmEpilogue proj_epi = make_epilogue(proj_bias);
  gemm_weight_t<T>(s.batch * Q, D, D, T(1), c.ctx, D, p.proj_w, p.proj_wp, T(0), y, D, &proj_epi);
}

// attention_backward whose input gradient is overwritten (dx = ...) when overwrite_dx, instead of
// accumulated: saves the caller a zero fill.
// queries: the backward of attention_forward_impl(..., queries) (0: all N tokens). dy is then
// (B*queries, D) compact rows and c holds the query rows' att and ctx as that forward wrote them;
// the gradient reaches every token's keys and values and the query tokens' q (the other tokens'
// q rows of w.dqkv are set to zero: those tokens had no output). The result equals the full
// backward's with dy zero on the rows that are not queries.
template <class T>
void attention_backward_impl(T* dx, bool overwrite_dx, AttentionGrads<T> g, const T* dy, const T* x,
                             AttentionCache<T> c, AttentionParams<T> p, AttentionShape s,
                             AttentionWorkspace<T> w, std::ptrdiff_t queries = 0) {
  attention_check(s);
  const std::ptrdiff_t N = s.tokens, D = s.dim, H = s.heads, E = D / H, R = s.batch * N;
  const std::ptrdiff_t Q = queries > 0 ? std::min(queries, N) : N, RQ = s.batch * Q;
  const T scale = T(1) / std::sqrt(T(E));
  gemm<T>(Trans::N, Trans::N, RQ, D, D, T(1), dy, D, p.proj_w, D, T(0), w.dctx, D);
  linear_backward<T>(nullptr, {g.dproj_w, g.dproj_b}, dy, c.ctx, {p.proj_w, p.proj_b}, {RQ, D, D});
  if constexpr (std::is_same_v<T, float>) kernels::select();
  parallel_for(s.batch * H, 8.0 * double(Q * N * E) + 6.0 * double(Q * N),
               [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i) {
      const std::ptrdiff_t b = i / H, h = i % H;
      const std::ptrdiff_t off = b * N * 3 * D + h * E;
      const T* q = c.qkv + off;          // (N, E), row stride 3D; its first Q rows are the queries
      const T* k = q + D;
      const T* v = q + 2 * D;
      T* dq = w.dqkv + off;
      T* dk = dq + D;
      T* dv = dq + 2 * D;
      const T* P = c.att + i * Q * N;    // (Q, N)
      T* dS = w.datt + i * Q * N;        // (Q, N)
      const T* dc = w.dctx + b * Q * D + h * E;  // (Q, E), row stride D
      gemm<T>(Trans::N, Trans::T, Q, N, E, T(1), dc, D, v, 3 * D, T(0), dS, N);   // dP
      gemm<T>(Trans::T, Trans::N, N, E, Q, T(1), P, N, dc, D, T(0), dv, 3 * D);   // dv
      softmax_rows_backward<T>(dS, dS, P, Q, N, scale, false);                     // dS in place
      gemm<T>(Trans::N, Trans::N, Q, E, N, T(1), dS, N, k, 3 * D, T(0), dq, 3 * D);  // dq
      gemm<T>(Trans::T, Trans::N, N, E, Q, T(1), dS, N, q, 3 * D, T(0), dk, 3 * D);  // dk
      for (std::ptrdiff_t r = Q; r < N; ++r) std::fill(dq + r * 3 * D, dq + r * 3 * D + E, T(0));
    }
  });
  if (dx && overwrite_dx)
    gemm<T>(Trans::N, Trans::N, R, D, 3 * D, T(1), w.dqkv, 3 * D, p.qkv_w, D, T(0), dx, D);
  linear_backward<T>(overwrite_dx ? nullptr : dx, {g.dqkv_w, g.dqkv_b}, w.dqkv, x, {p.qkv_w, p.qkv_b},
                     {R, D, 3 * D});
}

}  // namespace detail

// Forward, per (b, h) with q, k, v the (N, E) head slices:
//   S = q k^T * E^-0.5,  P = softmax_rows(S),  ctx[:, h*E:(h+1)*E] = P v
// then y = ctx Wproj^T + bproj.
template <class T>
void attention_forward(T* y,                   // (R, D)  overwritten
                       AttentionCache<T> c,    // written here, read by backward
                       const T* x,             // (R, D)
                       AttentionParams<T> p, AttentionShape s) {
  detail::attention_forward_impl<T>(y, c, x, p, s, nullptr);
}

// Backward. From y = ctx Wproj^T + bproj:
//   dctx = dy Wproj,  dWproj += dy^T ctx,  dbproj += sum_r dy
// per (b, h), with P the cached probabilities and s = E^-0.5:
//   dP = dctx_h v^T        dv = P^T dctx_h
//   dS = s * P .* (dP - rowsum(dP .* P))      (softmax backward, scale folded in)
//   dq = dS k              dk = dS^T q
// and from qkv = x Wqkv^T + bqkv:
//   dx += dqkv Wqkv,  dWqkv += dqkv^T x,  dbqkv += sum_r dqkv
// Every (b, h) writes disjoint slices of dqkv and datt; parameter sums go through linear_backward
// (GEMM tiles and column-split bias sums), so results are bitwise-reproducible for a fixed thread count.
template <class T>
void attention_backward(T* dx,                   // (R, D)  accumulated (+=), or nullptr
                        AttentionGrads<T> g,     // accumulated (+=); members may be nullptr
                        const T* dy,             // (R, D)
                        const T* x,              // (R, D)  the forward input
                        AttentionCache<T> c, AttentionParams<T> p, AttentionShape s,
                        AttentionWorkspace<T> w) {
  detail::attention_backward_impl<T>(dx, false, g, dy, x, c, p, s, w);
}

}  // namespace envit
