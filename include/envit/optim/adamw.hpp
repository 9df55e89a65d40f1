// envit/optim/adamw.hpp — AdamW with decoupled weight decay (Loshchilov & Hutter), written to match
// torch.optim.AdamW (1.13) operation for operation; plain SGD for tests; global gradient-norm
// clipping. Parameters and gradients are ViTParams arenas; decay applies only to entries whose
// ParamEntry::decay is set (weight matrices; not biases, norms, cls_token, pos_embed). Buffers
// (ParamEntry::buffer: BatchNorm running statistics) are never updated here. `trainable`, when
// given, has one flag per table entry: entries whose flag is 0 are left as they are (frozen, as
// parameters with requires_grad = False that a PyTorch optimiser never sees).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "envit/core/arena.hpp"
#include "envit/core/parallel.hpp"
#include "envit/model/params.hpp"

namespace envit {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.05;
};

// Optimiser state: first and second moments in the parameter arena's layout, and the step count.
template <class T>
struct AdamWState {
  Arena<T> m, v;
  std::int64_t step = 0;
  AdamWState() = default;
  explicit AdamWState(std::size_t n) : m(n), v(n) { m.take(n); v.take(n); }
};

// One AdamW update with learning rate lr (the schedule's value for this step):
//   p -= lr * wd * p                       (decayed entries only)
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
template <class T>
void adamw_step(ViTParams<T>& P, AdamWState<T>& s, const AdamWConfig& c, double lr,
                const std::vector<char>* trainable = nullptr) {
  s.step += 1;
  const double bc1 = 1.0 - std::pow(c.beta1, double(s.step));
  const double bc2 = 1.0 - std::pow(c.beta2, double(s.step));
  const T step_size = T(lr / bc1), bc2_sqrt = T(std::sqrt(bc2));
  const T b1 = T(c.beta1), b2 = T(c.beta2), eps = T(c.eps);
  T* pv = P.values();
  const T* g = P.grads();
  T* m = s.m.data();
  T* v = s.v.data();
  for (std::size_t k = 0; k < P.table().size(); ++k) {
    const ParamEntry& e = P.table()[k];
    if (e.buffer || (trainable && !(*trainable)[k])) continue;
    const T decay = e.decay ? T(1) - T(lr * c.weight_decay) : T(1);
    const std::size_t o = e.offset;
    parallel_for(std::ptrdiff_t(e.numel), 12.0, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
      for (std::ptrdiff_t k = i0; k < i1; ++k) {
        const std::size_t i = o + std::size_t(k);
        pv[i] *= decay;
        m[i] = b1 * m[i] + (T(1) - b1) * g[i];
        v[i] = b2 * v[i] + (T(1) - b2) * g[i] * g[i];
        const T denom = std::sqrt(v[i]) / bc2_sqrt + eps;
        pv[i] -= step_size * m[i] / denom;
      }
    });
  }
}

// Plain SGD: p -= lr * g (tests and debugging).
template <class T>
void sgd_step(ViTParams<T>& P, double lr, const std::vector<char>* trainable = nullptr) {
  T* pv = P.values();
  const T* g = P.grads();
  for (std::size_t i = 0; i < P.table().size(); ++i) {
    const ParamEntry& e = P.table()[i];
    if (e.buffer || (trainable && !(*trainable)[i])) continue;
    for (std::size_t k = 0; k < e.numel; ++k) pv[e.offset + k] -= T(lr) * g[e.offset + k];
  }
}

// Global L2 norm of all gradients, accumulated in double in a fixed order (deterministic).
template <class T>
double grad_norm(const ViTParams<T>& P) {
  double s = 0;
  const T* g = P.grads();
  for (const ParamEntry& e : P.table())
    for (std::size_t k = 0; k < e.numel; ++k) s += double(g[e.offset + k]) * double(g[e.offset + k]);
  return std::sqrt(s);
}

// Scales gradients so their global norm is at most max_norm (torch.nn.utils.clip_grad_norm_:
// factor max_norm / (norm + 1e-6), applied only when < 1). Returns the norm before clipping.
// max_norm <= 0 disables clipping.
template <class T>
double clip_grad_norm(ViTParams<T>& P, double max_norm) {
  const double norm = grad_norm(P);
  if (max_norm > 0) {
    const double f = max_norm / (norm + 1e-6);
    if (f < 1.0) {
      T* g = P.grads();
      for (const ParamEntry& e : P.table())
        for (std::size_t k = 0; k < e.numel; ++k) g[e.offset + k] *= T(f);
    }
  }
  return norm;
}

}  // namespace envit
