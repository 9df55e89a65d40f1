// envit/ops/exit_head.hpp — an exit classifier C_j: LayerNorm + Linear on the class token.
// Reads token 0 of each sample of a (R, N, D) token tensor; copies those rows into its cache
// (so the token buffer may be overwritten after the forward). Letters: R rows (samples), N tokens,
// D dim, C classes.
#pragma once
#include <cstddef>
#include <cstring>

#include "envit/core/parallel.hpp"
#include "envit/ops/layernorm.hpp"
#include "envit/ops/linear.hpp"

namespace envit {

struct ExitHeadShape { std::ptrdiff_t rows, tokens, dim, classes; };
template <class T>
struct ExitHeadParams { const T *norm_w, *norm_b, *head_w, *head_b; };  // (D), (D), (C, D), (C)
template <class T>
struct ExitHeadGrads { T *dnorm_w, *dnorm_b, *dhead_w, *dhead_b; };     // the same shapes, accumulated
template <class T> struct ExitHeadCache { T *x /*(R,D) class tokens*/, *mean, *rstd /*(R)*/, *xn /*(R,D)*/; };
template <class T> struct ExitHeadWorkspace { T *dxn /*(R,D)*/, *dx /*(R,D)*/, *ln_scratch /*(2*D*threads)*/; };

template <class T, class A>
ExitHeadCache<T> exit_head_cache_take(A& a, ExitHeadShape s) {
  ExitHeadCache<T> c;
  c.x = a.take(s.rows * s.dim);
  c.mean = a.take(s.rows);
  c.rstd = a.take(s.rows);
  c.xn = a.take(s.rows * s.dim);
  return c;
}
template <class T, class A>
ExitHeadWorkspace<T> exit_head_workspace_take(A& a, ExitHeadShape s) {
  ExitHeadWorkspace<T> w;
  w.dxn = a.take(s.rows * s.dim);
  w.dx = a.take(s.rows * s.dim);
  w.ln_scratch = a.take(2 * s.dim * num_threads());
  return w;
}

template <class T>
void exit_head_forward(T* logits,              // (R, C)  overwritten
                       ExitHeadCache<T> c,     // written here
                       const T* tokens,        // (R, N, D); token 0 of each sample is read
                       ExitHeadParams<T> p, ExitHeadShape s, T eps) {
  const std::ptrdiff_t D = s.dim, N = s.tokens;
  for (std::ptrdiff_t r = 0; r < s.rows; ++r)
    std::memcpy(c.x + r * D, tokens + r * N * D, sizeof(T) * static_cast<std::size_t>(D));
  layernorm_forward<T>(c.xn, {c.mean, c.rstd}, c.x, {p.norm_w, p.norm_b}, {s.rows, D}, eps);
  linear_forward<T>(logits, c.xn, {p.head_w, p.head_b}, {s.rows, D, s.classes});
}

// Backward of logits = Linear(LayerNorm(x_cls)): dtokens[r, 0, :] += d x_cls[r]  (accumulated).
// `extra` (R, D) or nullptr: a gradient on the class-token feature itself (e.g. a feature-hint
// loss), added to the same rows.
template <class T>
void exit_head_backward(T* dtokens,             // (R, N, D)  token 0 rows accumulated (+=)
                        ExitHeadGrads<T> g,     // accumulated (+=)
                        const T* dlogits,       // (R, C)
                        const T* extra,         // (R, D) or nullptr
                        ExitHeadCache<T> c, ExitHeadParams<T> p, ExitHeadShape s,
                        ExitHeadWorkspace<T> w) {
  const std::ptrdiff_t D = s.dim, N = s.tokens, R = s.rows;
  std::memset(w.dxn, 0, sizeof(T) * static_cast<std::size_t>(R * D));
  std::memset(w.dx, 0, sizeof(T) * static_cast<std::size_t>(R * D));
  linear_backward<T>(w.dxn, {g.dhead_w, g.dhead_b}, dlogits, c.xn, {p.head_w, p.head_b}, {R, D, s.classes});
  layernorm_backward<T>(w.dx, {g.dnorm_w, g.dnorm_b}, w.dxn, c.x, {c.mean, c.rstd},
                        {p.norm_w, p.norm_b}, {R, D}, w.ln_scratch);
  for (std::ptrdiff_t r = 0; r < R; ++r) {
    T* dst = dtokens + r * N * D;
    const T* src = w.dx + r * D;
    const T* ex = extra ? extra + r * D : nullptr;
    for (std::ptrdiff_t i = 0; i < D; ++i) dst[i] += src[i] + (ex ? ex[i] : T(0));
  }
}

}  // namespace envit
