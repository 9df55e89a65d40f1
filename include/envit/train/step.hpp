// envit/train/step.hpp — one optimisation step, the sequence every training loop runs:
//   draw the layer masks for (seed, step), zero the gradients, forward + objective + backward
//   (train_step_grads), clip the global gradient norm, AdamW at the given learning rate.
//   LGViT (scheme lgvit): stage 1 alternates by step parity (ObjectiveConfig::lgvit_odd_step);
//   stage 2 (StepSettings::lgvit_stage2) runs lgvit_distill_step_grads and updates only the
//   entries flagged in StepSettings::trainable.
// The Trainer, the no-allocation test and the benchmarks all call train_step, so they time and
// check the same arithmetic. Allocates nothing once the workspaces are warmed up.
// Precision: the step's matrix products run in w.ws.precision (StepWorkspace's constructor; fp32
// or bf16, core/precision.hpp), set for the step's duration; the parameters, gradients, clipping
// and AdamW state stay FP32 whatever it is.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "envit/core/batch_reduce.hpp"
#include "envit/core/error.hpp"
#include "envit/model/dropout.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/train/lgvit.hpp"
#include "envit/train/finite.hpp"
#include "envit/train/objective.hpp"

namespace envit {

// The loss or the gradient norm of a step was not finite; parameters and optimiser are untouched.
struct NonFiniteError : Error { using Error::Error; };

// What varies from step to step besides the batch.
// How the global clipping threshold `clip` applies: `absolute` clips the objective's gradient at
// `clip`; `weight-sum` at clip * sum_j w_j (the sum of the exits' combination weights that step),
// i.e. it clips the gradient of the weight-normalised objective L / sum_j w_j at `clip`, so schemes
// that sum their exit losses (vit-ee, sdn, byot: sum_j w_j = M) and those that average them
// (envit*, beem: ~1) meet the same threshold per unit of exit weight (docs/method.md).
enum class ClipMode { absolute, weight_sum };
inline const char* clip_mode_name(ClipMode m) { return m == ClipMode::absolute ? "absolute" : "weight-sum"; }
inline ClipMode parse_clip_mode(const std::string& s) {
  if (s == "absolute") return ClipMode::absolute;
  if (s == "weight-sum") return ClipMode::weight_sum;
  throw ValueError("unknown clip mode '" + s + "' (expected absolute or weight-sum)");
}

struct StepSettings {
  std::uint64_t seed = 0;   // mask generator key (with `step`)
  std::uint64_t step = 0;   // step index: masks are a function of (seed, step)
  double progress = 0;      // step / total steps in [0, 1] (SDN's weight ramp)
  double lr = 1e-3;         // learning rate of this step
  double clip = 1.0;        // global gradient-norm clip (<= 0: off)
  ClipMode clip_mode = ClipMode::absolute;
  AdamWConfig adamw;
  bool lgvit_stage2 = false;                    // LGViT's second stage (heads only, distilled)
  const std::vector<char>* trainable = nullptr; // per table entry, or nullptr: every entry trains
  // Data parallelism: this process holds positions first .. first+batch-1 of a global batch of
  // global_batch samples (0: the whole batch is here); batch_reduce sums the batch statistics over
  // the processes (core/batch_reduce.hpp; nullptr: one process).
  std::int64_t first = 0;
  int global_batch = 0;
  const BatchReduce* batch_reduce = nullptr;
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
  LgvitDistillWorkspace<T> lw;  // planned only for models with LGViT heads
  StepWorkspace(const VitConfig& cfg, int max_batch, Precision precision = Precision::fp32)
      : ws(cfg, max_batch), ow(cfg, max_batch), masks(cfg.depth, max_batch) {
    ws.precision = precision;
    if (cfg.lgvit()) lw = LgvitDistillWorkspace<T>(cfg, max_batch);
  }
};

// One step on `batch` samples. p = o.block_probs(config). Returns the gradient norm before
// clipping; throws NonFiniteError (P and opt unchanged) when the loss or that norm is not finite.
template <class T>
double train_step(StepWorkspace<T>& w, ViTParams<T>& P, AdamWState<T>& opt,
                  const T* images,             // (B, C, H, W)
                  const std::int32_t* labels,  // (B)
                  int batch, const ObjectiveConfig& o, const std::vector<double>& p, const StepSettings& s,
                  const GradReduce<T>& reduce = {}) {
  const PrecisionScope scope(w.ws.precision);
  w.masks.draw(s.seed, s.step, p, batch, s.first, s.global_batch);
  w.ws.batch_reduce = s.batch_reduce;
  P.zero_grads();
  if (s.lgvit_stage2) {
    w.ws.last_block_all_tokens = true;  // H reads every token of h_L
    lgvit_distill_step_grads<T>(w.stats, w.ws, w.lw, P, images, labels, w.masks, o);
  } else if (o.scheme == Scheme::lgvit) {
    ObjectiveConfig oo = o;  // no heap members: a copy allocates nothing
    oo.lgvit_odd_step = s.step % 2 == 1;
    train_step_grads<T>(w.stats, w.ws, w.ow, P, images, labels, w.masks, oo, p, s.progress);
  } else {
    train_step_grads<T>(w.stats, w.ws, w.ow, P, images, labels, w.masks, o, p, s.progress);
  }
  if (reduce) reduce(P, w.stats);
  if (!std::isfinite(w.stats.loss))
    throw NonFiniteError(detail::cat("non-finite loss (", w.stats.loss, ") at step ", s.step, ": ",
                                     non_finite_terms(w.stats, P.config()),
                                     "; try a lower learning rate or stronger clipping"));
  const double norm = clip_grad_norm(P, s.clip_mode == ClipMode::weight_sum ? s.clip * w.stats.weight_sum : s.clip);
  if (!std::isfinite(norm))
    throw NonFiniteError(detail::cat("non-finite gradient norm (", norm, ") at step ", s.step, ": ",
                                     non_finite_in(P, static_cast<const T*>(P.grads()), "gradient of")));
  adamw_step(P, opt, s.adamw, s.lr, s.trainable);
  return norm;
}

}  // namespace envit
