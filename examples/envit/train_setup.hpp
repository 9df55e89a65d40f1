// examples/envit/train_setup.hpp — how `envit train`'s flags become a training run: the datasets
// (named, a folder of images, or given in memory), the model configuration from the preset, the
// flags and --init, the trainer's options, the validation split, the normalisation, the warm-up and
// the metadata every checkpoint carries. Shared by `envit train` (train.cpp) and the Python module
// (python/envit_module.cpp), so both configure a run identically.
// Not here: the training loop, output directories, locks, logs, signals (each caller has its own).
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "common.hpp"
#include "envit/data/normalize.hpp"
#include "envit/weights/pretrained.hpp"
#include "envit/train/memory_plan.hpp"
#include "envit/train/trainer.hpp"
#include "schedule.hpp"
#include "warmup.hpp"

namespace envit::cli {

// A folder's own geometry for what the flags and --init leave open (0): the size its images share
// and 1 channel when every one is grey-scale. Images of several sizes, or one non-square size, are
// refused naming the files and the flag that resizes them.
inline void follow_folder(const std::string& dir, int& image_size, int& channels) {
  const ImageFolderProbe p = image_folder_probe(dir);
  if (!image_size) {
    ENVIT_CHECK(p.same_size(), UsageError, "the images of '", dir, "' differ in size: '", p.first, "' is ", p.w, "x",
                p.h, ", '", p.other, "' is ", p.other_w, "x", p.other_h,
                " (W x H); set --image-size N to resize every image (shorter side to N, centre crop N x N)");
    ENVIT_CHECK(p.h == p.w, UsageError, "the images of '", dir, "' are ", p.w, "x", p.h,
                " (W x H), not square; set --image-size N to resize them (shorter side to N, centre crop N x N)");
    image_size = p.h;
  }
  if (!channels) channels = p.grey ? 1 : 3;
  std::fprintf(stderr, "data: folder:%s: %lld images, %s; training at %dx%dx%d (--image-size, --channels change it)\n",
               dir.c_str(), (long long)p.files,
               p.same_size() ? (std::to_string(p.w) + "x" + std::to_string(p.h) + (p.grey ? " grey-scale" : "")).c_str()
                             : "of several sizes",
               channels, image_size, image_size);
}

// The patch for an image size other than the preset's: the preset's own when it divides the size
// with a grid within a factor of 2 of the preset's grid; else the divisor of the size whose grid is
// nearest (in ratio) to the preset's grid, the larger patch on a tie; refused when no divisor comes
// within a factor of 2 of it (too many or too few tokens).
inline int adapt_patch(const VitPreset& preset, int image_size) {
  const int g0 = preset.config.image_size / preset.config.patch, p0 = preset.config.patch;
  if (image_size % p0 == 0 && 2 * (image_size / p0) >= g0 && image_size / p0 <= 2 * g0) return p0;  // suits: kept
  int best = 0;
  double best_d = 0;
  for (int p = image_size; p >= 1; --p) {
    if (image_size % p) continue;
    const double d = std::abs(std::log(double(image_size / p) / g0));
    if (!best || d < best_d - 1e-12) best = p, best_d = d;
  }
  const int g = image_size / best;
  ENVIT_CHECK(2 * g >= g0 && g <= 2 * g0, UsageError, "image size ", image_size, ": no patch size gives a grid near "
              "preset ", preset.name, "'s ", g0, "x", g0, " patches (the nearest, patch ", best, ", gives ", g, "x", g,
              "); set --patch P (a divisor of the image size) or --image-size N");
  return best;
}

// Datasets given in memory instead of by --dataset/--data (the Python module's arrays).
struct GivenData {
  Dataset train, test;
};

struct TrainSetup {
  const VitPreset* preset = nullptr;
  std::optional<Pretrained> src;  // --init
  bool folder = false;
  Dataset train, test;            // train: after --skip/--subset/--classes; both fitted to the model
  std::string test_name = "test";
  SplitSpec spec;
  VitConfig cfg;
  TrainOptions o;
  Split split;                    // of `train`: the trainer's samples and the validation samples
  std::string norm_spec;
  ChannelStats stats;
  Normalizer norm;                // of `stats`
  StFile resume_file;             // --resume, read
  Precision resumed_precision = Precision::fp32;  // the checkpoint's (fp32 when it records none or without --resume)
  std::int64_t total_steps = 0;   // the run's steps as the warm-up was sized (the Trainer's count)
  std::map<std::string, std::string> extra;  // checkpoint metadata beyond the trainer's own
  DataSource source;              // what --dataset/--data name (kind "arrays" for arrays given in memory)
  MemoryPlan mem;                 // the run's planned memory (train/memory_plan.hpp)
  MemoryBudget budget;            // what it was checked against
  std::string mem_text;           // the plan in words, for the run header
  const Dataset& eval_set() const { return spec.n_val > 0 ? train : test; }
  std::vector<std::int64_t> eval_idx() const {
    if (spec.n_val > 0) return split.val;
    std::vector<std::int64_t> v(std::size_t(test.n));
    std::iota(v.begin(), v.end(), 0);
    return v;
  }
  const char* eval_name() const { return spec.n_val > 0 ? "val" : test_name.c_str(); }
};

// Resolves `a` (with `given(flag)`: was the flag given, so that presets fill the rest) into a run.
// `data` replaces --dataset/--data when set. Prints what `envit train` prints before it builds the
// trainer (dataset resizing, a warm-up note) on stderr.
inline TrainSetup train_setup(const TrainArgs& a, const std::function<bool(const char*)>& given,
                              std::optional<GivenData> data = std::nullopt) {
  TrainSetup s;
  s.preset = &vit_preset(a.preset);
  const VitPreset& preset = *s.preset;
  if (!a.init.empty())
    s.src = pretrained_read(a.init, parse_weight_format(a.init_format),
                            {given("--heads") ? a.heads : 0, given("--ln-eps") ? a.ln_eps : -1.0});
  const std::optional<Pretrained>& src = s.src;
  if (data) s.source = {"arrays", "", "arrays"};
  else s.source = data_source(a.dataset, a.data, given("--dataset"));
  const DataSource& source = s.source;
  s.folder = !data && source.kind == "folder";
  const bool folder = s.folder;
  int image_size = given("--image-size") ? a.image_size : src ? src->cfg.image_size : 0;
  int channels = given("--channels") ? a.channels : src ? src->cfg.channels : 0;
  Dataset& train = s.train;
  Dataset& test = s.test;
  if (data) {
    train = std::move(data->train);
    test = std::move(data->test);
  } else if (folder) {
    if (!image_size || !channels) follow_folder(source.dir, image_size, channels);
    ImageFolderData fd = image_folder_load(
        source.dir, folder_options(source.dir, image_size, channels, std::uint64_t(a.seed), a.folder_val, a.crop_fraction));
    train = std::move(fd.train);
    test = std::move(fd.eval);
    s.test_name = fd.eval_name;
  } else {
    train = load_dataset(source.kind, source.dir, true);
    test = load_dataset(source.kind, source.dir, false);
    if (source.kind == "idx") train.classes = test.classes = std::max(train.classes, test.classes);
  }
  SplitSpec& spec = s.spec;
  spec.skip = a.skip, spec.subset = a.subset, spec.classes = a.classes;
  ENVIT_CHECK(a.skip + a.subset <= train.n && a.skip < train.n, UsageError, "--skip ", a.skip, " and --subset ",
              a.subset, " do not fit in the training set (", train.n, " samples)");
  for (int cl : a.classes)
    ENVIT_CHECK(cl < train.classes, UsageError, "--classes: label ", cl, " is outside [0, ", train.classes, ") of '",
                train.name, "'");
  if (a.skip > 0 || a.subset > 0 || !a.classes.empty()) {
    const std::vector<std::int64_t> used = spec.samples(train);
    train = dataset_subset(train, used.data(), std::int64_t(used.size()));
  }

  // The splits of one dataset share a geometry; a mismatch is a broken dataset, not something to resize away.
  ENVIT_CHECK(test.c == train.c && test.h == train.h && test.w == train.w, ValueError, "'", test.file, "' (",
              test.name, ") has ", test.c, "x", test.h, "x", test.w, " images (C x H x W), the training split '",
              train.file, "' has ", train.c, "x", train.h, "x", train.w);
  if (image_size == 0) image_size = train.h;
  fit_dataset(train, image_size, channels ? channels : train.c);
  fit_dataset(test, image_size, channels ? channels : train.c);

  // The preset's model with the dataset's image size, channels and classes, and the flags given;
  // with --init, the source's architecture.
  VitConfig& cfg = s.cfg;
  cfg = preset.config;
  cfg.image_size = image_size;
  cfg.channels = train.c;
  if (given("--patch")) cfg.patch = a.patch;
  else if (!src && image_size != preset.config.image_size) {
    cfg.patch = adapt_patch(preset, image_size);
    if (cfg.patch != preset.config.patch)
      std::fprintf(stderr, "note: patch %d for %dx%d images (%dx%d patches); preset %s has patch %d for %dx%d; --patch "
                   "sets it\n", cfg.patch, image_size, image_size, cfg.grid(), cfg.grid(), preset.name,
                   preset.config.patch, preset.config.image_size, preset.config.image_size);
  }
  if (given("--dim")) cfg.dim = a.dim;
  if (given("--depth")) cfg.depth = a.depth;
  if (given("--heads")) cfg.heads = a.heads;
  if (given("--mlp")) cfg.mlp_hidden = a.mlp;
  cfg.classes = train.classes;
  cfg.exits = !a.exits.empty() ? a.exits : given("--depth") ? VitConfig::every_other(cfg.depth) : preset.config.exits;
  cfg.ln_eps = a.ln_eps;
  if (src) cfg = pretrained_run_config(*src, image_size, train.classes, a.exits);
  cfg.exit_head = a.scheme == "lgvit" ? "lgvit" : "linear";  // the scheme decides, not an --init checkpoint
  as_usage_error([&] { cfg.validate(); });
  for (const Dataset* d : {&train, &test}) d->check_fits(cfg.channels, cfg.image_size, cfg.image_size, cfg.classes, "the model");

  TrainOptions& o = s.o;
  o.obj.scheme = parse_scheme(a.scheme);
  o.obj.lgvit_stage1_frac = a.lgvit_stage1_frac;
  o.obj.lgvit_kd_per_class = !a.lgvit_kd_per_batch;
  o.obj.lgvit_teacher_ln = a.lgvit_teacher_ln;
  o.obj.lgvit_detach_hom = a.lgvit_detach_hom;
  o.obj.p_max = a.p_max;
  o.obj.alpha = a.alpha;
  o.obj.tau = a.tau;
  o.obj.teacher = parse_teacher(a.teacher);
  o.obj.set_byot(parse_byot_variant(a.byot_variant));
  o.obj.reduction = parse_reduction(a.reduction);
  o.clip_mode = parse_clip_mode(a.clip_mode);
  o.epochs = given("--epochs") ? a.epochs : preset.epochs;
  o.max_steps = a.steps;
  o.batch = a.batch;
  o.lr = given("--lr") ? a.lr : preset.lr;
  o.min_lr = a.min_lr;
  o.adamw.weight_decay = a.weight_decay;
  o.clip = a.clip;
  o.seed = std::uint64_t(a.seed);
  o.aug.crop_pad = given("--crop-pad") ? a.crop_pad : preset.crop_pad;
  o.aug.hflip = a.hflip;
  o.aug.rrc_min_scale = given("--rrc-scale") ? a.rrc_scale : folder ? 0.08 : 0.0;

  ENVIT_CHECK(a.val < train.n, UsageError, "--val ", a.val, " leaves no training samples (the set has ", train.n, ")");
  spec.n_val = a.val, spec.seed = o.seed;
  s.split = split_train_val(train.n, spec.n_val, o.seed);  // of the subset: SplitSpec{subset, n_val, seed}
  s.norm_spec = a.norm;
  if (s.norm_spec == "auto" && src && int(src->mean.size()) == train.c) {
    s.stats = {src->mean, src->std};
    s.norm_spec = "recorded in " + src->norm_origin;
  } else {
    if (s.norm_spec == "auto") s.norm_spec = "dataset";
    as_usage_error([&] {
      s.stats = norm_stats(s.norm_spec, train.c, [&] {
        return channel_stats(train, s.split.train.data(), std::int64_t(s.split.train.size()));
      });
    });
  }
  s.norm = Normalizer(s.stats);

  std::optional<std::int64_t> resumed_warmup;
  if (!a.resume.empty()) {
    s.resume_file = safetensors_read(a.resume);
    resumed_warmup = s.resume_file.meta_int("train.warmup_steps");
    s.resumed_precision = parse_precision(s.resume_file.meta_or("train.precision", "fp32"),
                                          s.resume_file.where() + ": train.precision");
  }
  o.precision = precision_flag(given("--precision"), a.precision, s.resumed_precision);
  // The warm-up depends on the run's length: the Trainer's step count (the last partial batch of
  // each epoch is dropped; --steps caps the total), checked against the Trainer's by the caller.
  const std::int64_t per_epoch = std::int64_t(s.split.train.size()) / o.batch;
  const bool length_given = given("--epochs") || given("--steps");
  const Schedule sched = resolve_epochs(
      preset, per_epoch, length_given || src.has_value(),
      s.resume_file.metadata.count("train.epochs") ? std::optional<std::int64_t>(s.resume_file.meta_int("train.epochs"))
                                                   : std::nullopt,
      std::stoll(s.resume_file.meta_or("train.min_steps", "0")));
  if (!length_given) o.epochs = int(sched.epochs);
  if (!sched.note.empty()) std::fprintf(stderr, "%s\n", sched.note.c_str());
  const std::int64_t total_steps = s.total_steps =
      o.max_steps >= 0 ? std::min<std::int64_t>(o.max_steps, per_epoch * o.epochs) : per_epoch * o.epochs;
  const Warmup warm = resolve_warmup(
      total_steps, given("--warmup-steps") ? std::optional<std::int64_t>(a.warmup_steps) : std::nullopt,
      given("--warmup-frac") ? std::optional<double>(a.warmup_frac) : std::nullopt, resumed_warmup,
      std::int64_t(preset.warmup_steps), preset.name);
  o.warmup_steps = warm.steps;
  if (!warm.note.empty()) std::fprintf(stderr, "note: %s\n", warm.note.c_str());

  s.extra = spec.to_map();
  s.extra.erase("train.seed");  // the trainer records its own
  s.extra["data.dataset"] = source.kind;
  s.extra["data.source"] = source.name;
  if (!source.dir.empty()) s.extra["data.dir"] = source.dir;
  if (sched.min_steps > 0) s.extra["train.min_steps"] = std::to_string(sched.min_steps);
  s.extra["data.norm"] = s.norm_spec;
  if (folder) {
    s.extra["data.folder_val"] = std::to_string(a.folder_val);
    s.extra["data.crop_fraction"] = std::to_string(a.crop_fraction);
  }

  // Memory: the plan against the budget, before the Trainer allocates its arenas.
  const std::uint64_t data_bytes = train.images.size() + 4 * train.labels.size() +
                                   (spec.n_val > 0 ? 0 : test.images.size() + 4 * test.labels.size());
  s.mem = plan_training_memory(cfg, o.batch, a.eval_batch, data_bytes);
  const char* env_limit = std::getenv("ENVIT_MEMORY_LIMIT");
  std::uint64_t limit = 0;
  as_usage_error([&] {
    if (!a.memory_limit.empty()) limit = parse_bytes(a.memory_limit, "--memory-limit");
    else if (env_limit && *env_limit) limit = parse_bytes(env_limit, "ENVIT_MEMORY_LIMIT");
  });
  s.budget = memory_budget(limit, !a.memory_limit.empty() ? "--memory-limit" : "ENVIT_MEMORY_LIMIT");
  const MemoryPlan& mem = s.mem;
  s.mem_text = "planned " + format_bytes(mem.total()) + " (parameters, gradients and AdamW " +
               format_bytes(mem.params + mem.grads + mem.optimizer) + ", activations at batch " +
               std::to_string(o.batch) + " " + format_bytes(mem.activations) + ", evaluation " +
               format_bytes(mem.eval) + ", data " + format_bytes(mem.data) + ")";
  ENVIT_CHECK(a.print_config || !s.budget.bytes || mem.total() <= s.budget.bytes, std::runtime_error, "memory: ",
              s.mem_text, " is more than the ", format_bytes(s.budget.bytes), " available (", s.budget.source,
              "); reduce --batch (activations grow with it), --image-size or the tokens ((image size / --patch)^2, a "
              "larger --patch), or --eval-batch");
  s.extra["train.memory_planned"] = std::to_string(mem.total());
  return s;
}

}  // namespace envit::cli
