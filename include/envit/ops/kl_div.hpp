// envit/ops/kl_div.hpp — distillation loss KL(p || q) between a fixed teacher distribution p and
// the student q = softmax(logits / tau), fused with the student's softmax.
// PyTorch equivalent (what EnViT's Eq. 13 means in code; "KL(softmax(z/tau), y_soft)" there is
// PyTorch's argument order, input first):
//   scale * F.kl_div(F.log_softmax(z / tau, -1), teacher_logp, reduction='sum', log_target=True)
// i.e. sum_r sum_c p (log p - log q), p = exp(teacher_logp), with 0 * log 0 = 0 (a teacher entry of
// -inf contributes nothing), like torch's xlogy. reduction='batchmean' is scale = 1/B.
// Deliberately absent: the tau^2 factor (the caller multiplies it into scale) and any gradient
// for the teacher (it is a detached target). Letters: R = rows, C = classes.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/ops/softmax.hpp"

namespace envit {

namespace detail {
template <class T>
void kl_div_check(std::ptrdiff_t rows, std::ptrdiff_t classes, T tau, const char* op) {
  ENVIT_CHECK(rows >= 0 && classes > 0, ShapeError, op, ": invalid shape rows=", rows,
              " classes=", classes);
  ENVIT_CHECK(tau > T(0) && std::isfinite(tau), ValueError, op,
              ": temperature tau must be finite and > 0, got ", tau);
}
}  // namespace detail

// Per row, with z_c = x_c / tau, m = max_c z_c, s = sum_c exp(z_c - m), log q_c = z_c - m - log s:
//   q[r][c] = exp(z_c - m) / s                                    (the cache read by the backward)
//   loss_r  = sum_{c: p_c > 0} p_c (log p_c - log q_c)
//           = sum_{c: p_c > 0} p_c (log p_c - (z_c - m)) + log s * sum_c p_c   (one pass)
// Returns scale * sum_r loss_r; terms and row sums in double, per-thread partials added in thread
// order (deterministic for a fixed thread count). q may alias logits; teacher_logp must not alias q.
template <class T>
T kl_div_forward(T* q,                   // (R, C)  overwritten: softmax(logits / tau)
                 const T* logits,        // (R, C)  student logits (before the temperature)
                 const T* teacher_logp,  // (R, C)  teacher log-probabilities, already at tau
                 std::ptrdiff_t rows, std::ptrdiff_t classes, T tau, T scale) {
  detail::kl_div_check(rows, classes, tau, "kl_div_forward");
  using Acc = decltype(T() + double());
  const std::ptrdiff_t C = classes;
  const T inv_tau = T(1) / tau;
  Acc total = parallel_row_sum<Acc>(rows, 30.0 * double(C), [&](std::ptrdiff_t r) -> Acc {
    const T* xr = logits + r * C;
    const T* tr = teacher_logp + r * C;
    T* qr = q + r * C;
    T m = xr[0] * inv_tau;
    for (std::ptrdiff_t c = 1; c < C; ++c) m = std::max(m, xr[c] * inv_tau);
    Acc a = 0, ps = 0;
    for (std::ptrdiff_t c = 0; c < C; ++c) {  // the teacher terms first: q may alias x
      const T zc = xr[c] * inv_tau - m;  // <= 0
      const T p = std::exp(tr[c]);
      if (p > T(0)) {
        a += Acc(p) * (Acc(tr[c]) - Acc(zc));
        ps += Acc(p);
      }
    }
    const T s = detail::softmax_row_scalar(qr, xr, C, inv_tau);
    return a + Acc(std::log(s)) * ps;
  });
  return static_cast<T>(Acc(scale) * total);
}

// With loss = scale * sum_r sum_c p_c (log p_c - log q_c) and log q = log_softmax(x / tau):
//   dloss/dx[r][c] = scale / tau * (q_c * sum_c' p_c' - p_c) = scale * (q - p) / tau
// when the teacher rows sum to one (they do when teacher_logp comes from a log-softmax); the
// sum_c' p_c' factor keeps the gradient exact for any teacher. dlogits is accumulated (+=).
// Pass scale = forward scale * tau^2 * upstream dloss (e.g. alpha * tau^2 / B).
template <class T>
void kl_div_backward(T* dlogits,             // (R, C)  accumulated (+=)
                     const T* q,             // (R, C)  the forward's cache
                     const T* teacher_logp,  // (R, C)
                     std::ptrdiff_t rows, std::ptrdiff_t classes, T tau, T scale) {
  detail::kl_div_check(rows, classes, tau, "kl_div_backward");
  const std::ptrdiff_t C = classes;
  const T k = scale / tau;
  parallel_for(rows, 40.0 * double(C), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const T* qr = q + r * C;
      const T* tr = teacher_logp + r * C;
      T* dr = dlogits + r * C;
      T ps = 0;
      for (std::ptrdiff_t c = 0; c < C; ++c) ps += std::exp(tr[c]);
      for (std::ptrdiff_t c = 0; c < C; ++c) dr[c] += k * (qr[c] * ps - std::exp(tr[c]));
    }
  });
}

}  // namespace envit
