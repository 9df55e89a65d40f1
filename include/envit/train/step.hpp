// envit/train/step.hpp — one optimisation step, the sequence every training loop runs:
//   draw the layer masks for (seed, step), zero the gradients, forward + objective + backward
//   (train_step_grads), clip the global gradient norm, AdamW at the given learning rate.
// The Trainer, the no-allocation test and the benchmarks all call train_step, so they time and
// check the same arithmetic. Allocates nothing once the workspaces are warmed up.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/model/dropout.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/train/objective.hpp"

namespace envit {

// The loss or the gradient norm of a step was not finite; parameters and optimiser are untouched.
struct NonFiniteError : Error { using Error::Error; };

// What varies from step to step besides the batch.
struct StepSettings {
  std::uint64_t seed = 0;   // mask generator key (with `step`)
  std::uint64_t step = 0;   // step index: masks are a function of (seed, step)
  double progress = 0;      // step / total steps in [0, 1] (SDN's weight ramp)
  double lr = 1e-3;         // learning rate of this step
  double clip = 1.0;        // global gradient-norm clip (<= 0: off)
  AdamWConfig adamw;
  // Data parallelism: this process holds positions first .. first+batch-1 of a global batch of
  // global_batch samples (0: the whole batch is here).
  std::int64_t first = 0;
  int global_batch = 0;
};

// Sums parameter gradients and step statistics over the processes of a data-parallel job
// (e.g. an MPI_Allreduce); called between backward and clipping, so all processes clip and step
// on the summed gradient. Empty: single process.
template <class T>
using GradReduce = std::function<void(ViTParams<T>&, StepStats&)>;

// The buffers a step writes: model and objective workspaces, masks and the step's statistics.
// Sized once for the largest batch.
template <class T>
struct StepWorkspace {
  ViTWorkspace<T> ws;
  ObjectiveWorkspace<T> ow;
  LayerMasks masks;
  StepStats stats;
  StepWorkspace(const VitConfig& cfg, int max_batch) : ws(cfg, max_batch), ow(cfg, max_batch), masks(cfg.depth, max_batch) {}
};

// One step on `batch` samples. p = o.block_probs(config). Returns the gradient norm before
// clipping; throws NonFiniteError (P and opt unchanged) when the loss or that norm is not finite.
template <class T>
double train_step(StepWorkspace<T>& w, ViTParams<T>& P, AdamWState<T>& opt,
                  const T* images,             // (B, C, H, W)
                  const std::int32_t* labels,  // (B)
                  int batch, const ObjectiveConfig& o, const std::vector<double>& p, const StepSettings& s,
                  const GradReduce<T>& reduce = {}) {
  w.masks.draw(s.seed, s.step, p, batch, s.first, s.global_batch);
  P.zero_grads();
  train_step_grads<T>(w.stats, w.ws, w.ow, P, images, labels, w.masks, o, p, s.progress);
  if (reduce) reduce(P, w.stats);
  if (!std::isfinite(w.stats.loss))
    throw NonFiniteError(detail::cat("non-finite loss (", w.stats.loss, ") at step ", s.step,
                                     "; try a lower learning rate or stronger clipping"));
  const double norm = clip_grad_norm(P, s.clip);
  if (!std::isfinite(norm)) throw NonFiniteError(detail::cat("non-finite gradient norm at step ", s.step));
  adamw_step(P, opt, s.adamw, s.lr);
  return norm;
}

}  // namespace envit
