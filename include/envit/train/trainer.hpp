// envit/train/trainer.hpp — the training loop as a library object: data order, augmentation,
// dropout masks, objective, clipping, AdamW and the learning-rate schedule, driven one step at a
// time, with exact checkpoint/resume and per-exit evaluation. The `envit train` program is a thin
// command line over this; tests drive it directly.
//
// Determinism: batch k of epoch e holds samples perm_e[k*B .. k*B+B) with perm_e a Philox
// permutation keyed by (seed, e); augmentation is keyed by (seed, e, sample); masks by
// (seed, step). So (seed, step) is the whole generator state and a resumed run repeats the
// uninterrupted one bit for bit (same thread count and kernel set, in either precision). The last
// partial batch of an epoch is dropped.
//
// Precision (TrainOptions::precision): the matrix products of every step in FP32 or BF16
// (core/precision.hpp; `envit train` evaluates in it too, evaluate_exits(..., precision));
// parameters, gradients and AdamW moments stay FP32, so checkpoints are the same FP32 files in
// both. It is not a resume key: a run may continue in the other precision. The metadata records it
// (train.precision: the precision of the latest steps; train.precision_history:
// "<precision>:<first step>,..." once a run has changed precision).
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "envit/data/dataset.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/optim/schedule.hpp"
#include "envit/train/checkpoint.hpp"
#include "envit/train/objective.hpp"
#include "envit/train/step.hpp"

namespace envit {

// COSEE's threshold range: [lo, hi] is used this epoch, [acc_lo, acc_hi] collects this epoch's
// signals for the next one. Saved in checkpoints (metadata cosee.*) so a resume is exact.
struct CoseeRange {
  double lo = 0, hi = 1;
  double acc_lo = 1, acc_hi = 0;  // empty while acc_lo > acc_hi
  std::int64_t epoch = -1;        // the epoch acc_* belongs to
};

struct TrainOptions {
  ObjectiveConfig obj;
  AdamWConfig adamw;
  double lr = 1e-3, min_lr = 1e-5;
  std::int64_t warmup_steps = 0;
  int epochs = 1;
  std::int64_t max_steps = -1;  // stop after this many steps in total (-1: epochs * steps/epoch)
  int batch = 128;
  double clip = 1.0;            // global gradient-norm clip (<= 0: off)
  ClipMode clip_mode = ClipMode::absolute;
  std::uint64_t seed = 0;
  Augment aug;
  Precision precision = Precision::fp32;  // of the matrix products (not part of to_map: see above)

  // Everything that must match for a resume to reproduce the run, as strings.
  // Keys of non-default method options appear only when set, so checkpoints written without them
  // still resume.
  std::map<std::string, std::string> to_map() const {
    auto d = [](double v) { std::ostringstream os; os.precision(17); os << v; return os.str(); };
    auto m = base_map(d);
    if (obj.scheme == Scheme::byot) m["train.byot_variant"] = byot_variant_name(obj.byot);
    if (obj.reduction != LossReduction::batch) m["train.reduction"] = reduction_name(obj.reduction);
    if (clip_mode != ClipMode::absolute) m["train.clip_mode"] = clip_mode_name(clip_mode);
    if (obj.scheme == Scheme::lgvit) {  // LGViT's settings, for the lgvit scheme only
      m["train.lgvit_stage1_frac"] = d(obj.lgvit_stage1_frac);
      m["train.lgvit_alpha"] = d(obj.lgvit_alpha);
      m["train.lgvit_tau"] = d(obj.lgvit_tau);
      m["train.lgvit_het"] = d(obj.lgvit_het);
      m["train.lgvit_hom"] = d(obj.lgvit_hom);
      m["train.lgvit_kd_per_class"] = obj.lgvit_kd_per_class ? "1" : "0";
      m["train.lgvit_teacher_ln"] = obj.lgvit_teacher_ln ? "1" : "0";
      m["train.lgvit_detach_hom"] = obj.lgvit_detach_hom ? "1" : "0";
    }
    return m;
  }

 private:
  template <class F>
  std::map<std::string, std::string> base_map(F d) const {
    return {{"train.scheme", scheme_name(obj.scheme)}, {"train.p_max", d(obj.p_max)},
            {"train.alpha", d(obj.alpha)}, {"train.tau", d(obj.tau)},
            {"train.teacher", teacher_name(obj.teacher)}, {"train.lr", d(lr)}, {"train.min_lr", d(min_lr)},
            {"train.warmup_steps", std::to_string(warmup_steps)}, {"train.epochs", std::to_string(epochs)},
            {"train.max_steps", std::to_string(max_steps)}, {"train.batch", std::to_string(batch)},
            {"train.clip", d(clip)}, {"train.seed", std::to_string(seed)},
            {"train.weight_decay", d(adamw.weight_decay)}, {"train.beta1", d(adamw.beta1)},
            {"train.beta2", d(adamw.beta2)}, {"train.crop_pad", std::to_string(aug.crop_pad)},
            {"train.hflip", aug.hflip ? "1" : "0"}};
  }
};

class Trainer {
 public:
  Trainer(const VitConfig& cfg, const TrainOptions& opt, const Dataset& train,
          std::vector<std::int64_t> train_idx, const ChannelStats& stats)
      : opt_(opt), data_(train), idx_(std::move(train_idx)), stats_in_(stats), norm_(stats), P_(cfg),
        adam_(P_.size()), sw_(cfg, opt.batch, opt.precision),
        images_(std::size_t(opt.batch) * cfg.channels * cfg.image_size * cfg.image_size),
        labels_(std::size_t(opt.batch)), perm_(idx_.size()) {
    opt_.obj.validate();
    ENVIT_CHECK(opt.batch >= 1, ValueError, "trainer: batch size must be >= 1, got ", opt.batch);
    train.check_fits(cfg.channels, cfg.image_size, cfg.image_size, cfg.classes, "the model");
    steps_per_epoch_ = std::int64_t(idx_.size()) / opt.batch;
    ENVIT_CHECK(steps_per_epoch_ >= 1, ValueError, "trainer: ", idx_.size(),
                " training samples are fewer than one batch of ", opt.batch);
    total_steps_ = opt.max_steps >= 0 ? std::min<std::int64_t>(opt.max_steps, steps_per_epoch_ * opt.epochs)
                                      : steps_per_epoch_ * opt.epochs;
    sched_ = {opt.lr, opt.min_lr, opt.warmup_steps, std::max<std::int64_t>(1, total_steps_)};
    probs_ = opt_.obj.block_probs(cfg);
    P_.init(opt.seed);
    if (opt_.obj.scheme == Scheme::lgvit) {
      ENVIT_CHECK(cfg.lgvit(), ValueError, "trainer: scheme lgvit needs a model with LGViT exit heads (",
                  cfg.str(), ")");
      // Stage 1 for the first round(frac * total) steps, stage 2 for the rest, each with its own
      // learning-rate schedule (the authors run the stages as two trainings) and, at the switch,
      // fresh AdamW moments for the heads that stage 2 trains.
      stage1_steps_ = std::int64_t(std::llround(opt_.obj.lgvit_stage1_frac * double(total_steps_)));
      sched_.total = std::max<std::int64_t>(1, stage1_steps_);
      sched2_ = {opt.lr, opt.min_lr, opt.warmup_steps, std::max<std::int64_t>(1, total_steps_ - stage1_steps_)};
      trainable2_ = lgvit_stage2_trainable(P_);
    }
  }
  bool lgvit_stage2() const { return opt_.obj.scheme == Scheme::lgvit && step_ >= stage1_steps_; }
  std::int64_t lgvit_stage1_steps() const { return stage1_steps_; }

  ViTParams<float>& params() { return P_; }
  const ViTParams<float>& params() const { return P_; }
  AdamWState<float>& optimizer() { return adam_; }
  const TrainOptions& options() const { return opt_; }
  std::int64_t step() const { return step_; }
  std::int64_t epoch() const { return step_ / steps_per_epoch_; }
  std::int64_t steps_per_epoch() const { return steps_per_epoch_; }
  std::int64_t total_steps() const { return total_steps_; }
  bool done() const { return step_ >= total_steps_; }
  double lr() const { return lgvit_stage2() ? sched2_.at(step_ - stage1_steps_) : sched_.at(step_); }
  const LayerMasks& masks() const { return sw_.masks; }
  double last_grad_norm() const { return grad_norm_; }
  // A caller running the low-level step itself on params() and optimizer() (forward, its own loss,
  // backward, clipping, AdamW) counts each optimiser step here, so the step-keyed mask draws, the
  // learning rate and the checkpoint's train.step follow it as they follow step_once.
  void count_step(double grad_norm) {
    grad_norm_ = grad_norm;
    ++step_;
  }

  // Data parallelism over `world` processes: this one (`rank`) takes the contiguous shard
  // [rank*B/world, (rank+1)*B/world) of every global batch of B = options().batch samples;
  // `reduce` sums gradients and statistics over the processes (see GradReduce) and `batch` the
  // batch statistics inside the step (core/batch_reduce.hpp: LGViT heads' BatchNorm, COSEE's signal
  // range and calibration, the `remaining` reduction's counts, BYOT mmrazor's hint norm), so every
  // process computes with the whole batch's values. The samples, their augmentation and masks in a
  // step do not depend on `world`. Options that need batch statistics are refused for world > 1
  // without `batch`; LGViT heads with block dropout are refused for world > 1 (a head whose block
  // no sample of a shard ran would leave that process out of the heads' reductions).
  void set_shard(int rank, int world, GradReduce<float> reduce, BatchReduce batch = {}) {
    ENVIT_CHECK(world >= 1 && rank >= 0 && rank < world && world <= opt_.batch, ValueError, "trainer: shard ", rank,
                " of ", world, " processes needs 0 <= rank < processes <= batch (", opt_.batch, ")");
    const ObjectiveConfig& o = opt_.obj;
    const bool stats = P_.config().lgvit() || o.scheme == Scheme::cosee || o.reduction == LossReduction::remaining ||
                       (o.scheme == Scheme::byot && o.byot == ByotVariant::mmrazor);
    ENVIT_CHECK(world == 1 || !stats || (batch.sum_fn && batch.max_fn), ValueError,
                "trainer: data parallelism with scheme ", scheme_name(o.scheme), ", reduction ",
                reduction_name(o.reduction), " and exit heads '", P_.config().exit_head,
                "' needs batch statistics over the processes (a BatchReduce with sum and max)");
    ENVIT_CHECK(world == 1 || !P_.config().lgvit() || !o.uses_dropout(), ValueError,
                "trainer: data parallelism does not support LGViT exit heads with block dropout (scheme ",
                scheme_name(o.scheme), ")");
    rank_ = rank;
    world_ = world;
    reduce_ = std::move(reduce);
    batch_reduce_ = std::move(batch);
  }
  std::int64_t shard_begin() const { return std::int64_t(rank_) * opt_.batch / world_; }
  std::int64_t shard_end() const { return std::int64_t(rank_ + 1) * opt_.batch / world_; }
  const CoseeRange& cosee_range() const { return cosee_; }
  // The thresholds the last cosee step used.
  const std::vector<double>& cosee_thresholds() const { return sw_.ow.cosee.thresholds; }

  // One optimisation step on the next batch. Throws NonFiniteError (parameters untouched) when the
  // loss or gradient norm is not finite.
  const StepStats& step_once(double* grad_norm_out = nullptr) {
    const std::int64_t e = epoch(), k = step_ - e * steps_per_epoch_;
    if (perm_epoch_ != e) {  // the epoch's sample order
      epoch_permutation(perm_.data(), std::int64_t(perm_.size()), opt_.seed, std::uint32_t(e));
      for (auto& p : perm_) p = idx_[std::size_t(p)];
      perm_epoch_ = e;
    }
    const int B = opt_.batch;
    const std::int64_t lo = shard_begin();
    const int b = int(shard_end() - lo);
    make_batch(images_.data(), labels_.data(), data_, perm_.data() + k * B + lo, b, norm_, opt_.aug, opt_.seed,
               std::uint32_t(e));
    if (opt_.obj.scheme == Scheme::cosee) cosee_draw(e);
    StepSettings ss;
    ss.seed = opt_.seed;
    ss.step = std::uint64_t(step_);
    ss.progress = double(step_) / double(std::max<std::int64_t>(1, total_steps_));
    ss.lr = lr();
    if (lgvit_stage2()) {
      if (step_ == stage1_steps_) {  // the switch: fresh moments (a resumed stage-2 run has its own)
        adam_.m.zero();
        adam_.v.zero();
        adam_.step = 0;
      }
      ss.lgvit_stage2 = true;
      ss.trainable = &trainable2_;
    }
    ss.clip = opt_.clip;
    ss.clip_mode = opt_.clip_mode;
    ss.adamw = opt_.adamw;
    ss.first = lo;
    ss.global_batch = world_ > 1 ? B : 0;
    ss.batch_reduce = world_ > 1 && batch_reduce_.active() ? &batch_reduce_ : nullptr;
    grad_norm_ = train_step<float>(sw_, P_, adam_, images_.data(), labels_.data(), b, opt_.obj, probs_, ss, reduce_);
    if (opt_.obj.scheme == Scheme::cosee) {  // this step's signals join the epoch's range
      cosee_.acc_lo = std::min(cosee_.acc_lo, sw_.stats.cosee.signal_min);
      cosee_.acc_hi = std::max(cosee_.acc_hi, sw_.stats.cosee.signal_max);
    }
    ++step_;
    if (grad_norm_out) *grad_norm_out = grad_norm_;
    return sw_.stats;
  }

  // Checkpoint metadata: options, progress, normalisation, plus `extra`.
  std::map<std::string, std::string> metadata(const std::map<std::string, std::string>& extra = {}) const {
    auto m = opt_.to_map();
    m["train.step"] = std::to_string(step_);
    m["train.epoch"] = std::to_string(epoch());
    m["train.total_steps"] = std::to_string(total_steps_);
    m["train.n_train"] = std::to_string(idx_.size());
    for (auto& [k, v] : stats_in_.to_map()) m[k] = v;
    m["train.precision"] = precision_name(opt_.precision);
    if (!precision_history_.empty()) m["train.precision_history"] = precision_history_;
    if (opt_.obj.scheme == Scheme::cosee)
      m["cosee.range"] = ChannelStats::join({cosee_.lo, cosee_.hi, cosee_.acc_lo, cosee_.acc_hi, double(cosee_.epoch)});
    for (auto& [k, v] : extra) m[k] = v;
    return m;
  }
  void save(const std::string& path, const std::map<std::string, std::string>& extra = {}) const {
    checkpoint_save<float>(path, P_, &adam_, metadata(extra));
  }
  // Restores parameters, optimiser and step from a checkpoint written by save() with the same
  // options (anything else is refused with the differing keys named).
  void restore(const StFile& f) {
    for (auto& [k, v] : opt_.to_map()) {
      if (k == "train.epochs" || k == "train.max_steps") continue;  // may be extended on resume
      ENVIT_CHECK(f.meta_or(k, "(missing)") == v, IoError, f.where(), ": cannot resume: ", k, " is '",
                  f.meta_or(k, "(missing)"), "' in the checkpoint but '", v, "' in this run");
    }
    ENVIT_CHECK(f.meta_or("train.n_train", "") == std::to_string(idx_.size()), IoError, f.where(),
                ": cannot resume: the checkpoint was trained on ", f.meta_or("train.n_train", "?"),
                " samples, this run has ", idx_.size());
    // Options present only when not at their defaults (TrainOptions::to_map).
    for (auto [k, def] : {std::pair<const char*, const char*>{"train.reduction", "batch"}, {"train.clip_mode", "absolute"}}) {
      const auto m = opt_.to_map();
      const std::string want = m.count(k) ? m.at(k) : def;
      ENVIT_CHECK(f.meta_or(k, def) == want, IoError, f.where(), ": cannot resume: ", k, " is '", f.meta_or(k, def),
                  "' in the checkpoint but '", want, "' in this run");
    }
    checkpoint_restore<float>(f, P_, adam_);
    step_ = f.meta_int("train.step");
    // The checkpoint's precision (fp32 when it records none); a change starts a new history segment.
    const Precision was = parse_precision(f.meta_or("train.precision", "fp32"), f.where() + ": train.precision");
    precision_history_ = f.meta_or("train.precision_history", "");
    if (was != opt_.precision) {
      if (precision_history_.empty()) precision_history_ = std::string(precision_name(was)) + ":0";
      precision_history_ += "," + std::string(precision_name(opt_.precision)) + ":" + std::to_string(step_);
    }
    if (opt_.obj.scheme == Scheme::cosee) {
      const std::string r = f.meta_or("cosee.range", "");
      std::vector<double> v;
      std::istringstream is(r);
      for (std::string t; std::getline(is, t, ',');) v.push_back(std::stod(t));
      ENVIT_CHECK(v.size() == 5, IoError, f.where(), ": cannot resume a cosee run: metadata cosee.range must hold 5 "
                  "values (lo, hi, acc_lo, acc_hi, epoch), got '", r, "'");
      cosee_ = {v[0], v[1], v[2], v[3], std::int64_t(v[4])};
    }
    ENVIT_CHECK(step_ >= 0, IoError, f.where(), ": negative train.step");
  }

 private:
  // COSEE: at an epoch's first step the previous epoch's signal range becomes the threshold range
  // ([0, 1] in the first epoch); then R thresholds uniform in it, keyed by (seed, step).
  void cosee_draw(std::int64_t e) {
    if (cosee_.epoch != e) {
      if (cosee_.epoch >= 0 && cosee_.acc_lo <= cosee_.acc_hi) {
        cosee_.lo = cosee_.acc_lo;
        cosee_.hi = cosee_.acc_hi;
      }
      cosee_.acc_lo = 1;
      cosee_.acc_hi = 0;
      cosee_.epoch = e;
    }
    auto& t = sw_.ow.cosee.thresholds;
    t.resize(std::size_t(opt_.obj.cosee.thresholds));
    const auto s = std::uint64_t(step_);
    for (std::size_t r = 0; r < t.size(); ++r)
      t[r] = cosee_.lo + (cosee_.hi - cosee_.lo) * uniform_at(opt_.seed, RngStream::thresholds, std::uint32_t(s),
                                                                std::uint32_t(s >> 32), std::uint32_t(r));
  }

  TrainOptions opt_;
  const Dataset& data_;
  std::vector<std::int64_t> idx_;
  ChannelStats stats_in_;
  Normalizer norm_;
  ViTParams<float> P_;
  AdamWState<float> adam_;
  StepWorkspace<float> sw_;
  std::vector<float> images_;
  std::vector<std::int32_t> labels_;
  std::vector<std::int64_t> perm_;
  std::int64_t perm_epoch_ = -1;
  std::vector<double> probs_;
  CoseeRange cosee_;
  LrSchedule sched_;
  std::int64_t steps_per_epoch_ = 0, total_steps_ = 0, step_ = 0;
  LrSchedule sched2_;                 // lgvit: stage 2's schedule
  std::int64_t stage1_steps_ = 0;     // lgvit: steps of stage 1
  std::vector<char> trainable2_;      // lgvit: entries stage 2 trains
  double grad_norm_ = 0;
  std::string precision_history_;     // train.precision_history (empty: one precision throughout)
  int rank_ = 0, world_ = 1;
  GradReduce<float> reduce_;
  BatchReduce batch_reduce_;
};

// Per-exit top-1 accuracy of the complete model on samples idx of d (no augmentation), through
// the inference path (infer_all_exits: no training caches) in chunks of `batch` samples, with the
// matrix products in `precision`. Returns correct counts per exit (size M) and n in *n_out.
// Prediction: the first maximal logit.
inline std::vector<std::int64_t> evaluate_exits(const ViTParams<float>& P, const Dataset& d,
                                                const std::vector<std::int64_t>& idx,
                                                const Normalizer& norm, int batch, std::int64_t* n_out,
                                                Precision precision = Precision::fp32) {
  const VitConfig& cfg = P.config();
  const int M = cfg.num_exits(), C = cfg.classes;
  d.check_fits(cfg.channels, cfg.image_size, cfg.image_size, C, "the model");
  InferenceWorkspace<float> ws(cfg, batch);
  ws.precision = precision;
  std::vector<float> images(std::size_t(batch) * ws.image_size());
  std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
  const std::ptrdiff_t stride = std::ptrdiff_t(batch) * C;
  std::vector<float> logits(std::size_t(M) * std::size_t(stride));
  std::vector<std::int64_t> correct(static_cast<std::size_t>(M), 0);
  for (std::size_t s = 0; s < idx.size(); s += std::size_t(batch)) {
    const int b = int(std::min<std::size_t>(std::size_t(batch), idx.size() - s));
    make_batch(images.data(), labels.data(), d, idx.data() + s, b, norm, Augment{}, 0, 0);
    infer_all_exits<float>(ws, P, images.data(), b, logits.data(), stride);
    for (int j = 0; j < M; ++j)
      for (int i = 0; i < b; ++i) {
        const float* z = logits.data() + j * stride + std::ptrdiff_t(i) * C;
        correct[j] += int(std::max_element(z, z + C) - z) == labels[i];
      }
  }
  if (n_out) *n_out = std::int64_t(idx.size());
  return correct;
}

}  // namespace envit
