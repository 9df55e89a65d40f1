// envit/ops/cross_entropy.hpp — softmax + cross-entropy with integer labels, fused (PyTorch's
// F.cross_entropy(logits, labels, reduction='sum') times `scale`; scale = 1/B gives 'mean').
// Deliberately absent: label smoothing, class weights, ignore_index (validate labels instead).
// Letters: R = rows (samples at one exit), C = classes.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"
#include "envit/ops/softmax.hpp"

namespace envit {

namespace detail {
inline void cross_entropy_check(const std::int32_t* labels, std::ptrdiff_t rows,
                                std::ptrdiff_t classes, const char* op) {
  ENVIT_CHECK(rows >= 0 && classes > 0, ShapeError, op, ": invalid shape rows=", rows,
              " classes=", classes);
  for (std::ptrdiff_t r = 0; r < rows; ++r)
    ENVIT_CHECK(labels[r] >= 0 && labels[r] < classes, ValueError, op, ": label out of range at row ",
                r, ": label ", labels[r], " not in [0, ", classes, ")");
}
}  // namespace detail

// For each row r, with m = max_c x[r][c] and lse = m + log sum_c exp(x[r][c] - m):
//   probs[r][c] = exp(x[r][c] - lse)            (the cache read by the backward)
//   loss_r      = lse - x[r][label_r] = log sum_c exp(x[r][c] - m) - (x[r][label_r] - m)
// Returns scale * sum_r loss_r. loss_r never goes through log(p): a probability that underflows
// (logits 200 apart) still gives a finite loss. Row losses are summed in double, per-thread
// partials in thread order (deterministic for a fixed thread count). probs may alias logits.
// Labels outside [0, C) throw ValueError naming the row and the label.
template <class T>
T cross_entropy_forward(T* probs,                     // (R, C)  overwritten: softmax(logits)
                        const T* logits,              // (R, C)
                        const std::int32_t* labels,   // (R)
                        std::ptrdiff_t rows, std::ptrdiff_t classes,
                        T scale) {                    // e.g. 1/B
  detail::cross_entropy_check(labels, rows, classes, "cross_entropy_forward");
  using Acc = decltype(T() + double());
  const std::ptrdiff_t C = classes;
  Acc total = parallel_row_sum<Acc>(rows, 12.0 * double(C), [&](std::ptrdiff_t r) -> Acc {
    const T* xr = logits + r * C;
    T* pr = probs + r * C;
    const T xl = xr[labels[r]];  // read before pr (which may alias xr) is written
    T m;
    const T sum = detail::softmax_row_scalar(pr, xr, C, T(1), &m);
    return Acc(std::log(sum)) - Acc(xl - m);
  });
  return static_cast<T>(Acc(scale) * total);
}

// With loss = scale * sum_r (lse_r - x[r][label_r]):
//   dloss/dx[r][c] = scale * (p[r][c] - [c == label_r])
// dlogits is accumulated (+=). Pass scale = forward scale * upstream dloss (e.g. (1 - alpha)/B).
template <class T>
void cross_entropy_backward(T* dlogits,                  // (R, C)  accumulated (+=)
                            const T* probs,              // (R, C)  the forward's cache
                            const std::int32_t* labels,  // (R)
                            std::ptrdiff_t rows, std::ptrdiff_t classes,
                            T scale) {
  detail::cross_entropy_check(labels, rows, classes, "cross_entropy_backward");
  const std::ptrdiff_t C = classes;
  parallel_for(rows, 2.0 * double(C), [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const T* pr = probs + r * C;
      T* dr = dlogits + r * C;
      for (std::ptrdiff_t c = 0; c < C; ++c) dr[c] += scale * pr[c];
      dr[labels[r]] -= scale;
    }
  });
}

}  // namespace envit
