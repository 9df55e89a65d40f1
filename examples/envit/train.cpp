// examples/envit/train.cpp — `envit train`: train a multi-exit ViT with EnViT or a baseline scheme.
// All logic lives in the library (envit::Trainer); this file maps flags to options, prints
// progress, logs every epoch as JSON lines and writes atomic checkpoints.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>

#include "commands.hpp"
#include "common.hpp"
#include "envit/data/normalize.hpp"
#include "envit/weights/pretrained_load.hpp"
#include "envit/io/dir_lock.hpp"
#include "envit/train/interrupt.hpp"
#include "dist.hpp"
#include "envit/train/memory_plan.hpp"
#include "envit/train/trainer.hpp"
#include "progress.hpp"
#include "report.hpp"
#include "train_setup.hpp"

namespace envit::cli {

namespace {

// Keeps only the lines of an existing log.jsonl up to epoch `last_epoch` (a resumed run rewrites
// what follows).
std::string read_log(const std::string& path, std::int64_t last_epoch) {
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    long long e = -1;
    if (std::sscanf(line.c_str(), "{\"epoch\":%lld", &e) == 1 && e <= last_epoch) kept += line + "\n";
  }
  return kept;
}

}  // namespace

CLI::App* add_train_command(CLI::App& app, TrainArgs& a) {
  CLI::App* c = app.add_subcommand("train", "train an early-exit ViT (EnViT or a baseline) and write checkpoints");
  c->footer(std::string(kExitCodesHelp) + "; 3 a non-finite loss or gradient stopped training (the last "
                                          "checkpoint is kept).\n");
  c->add_option("--preset", a.preset,
                "starting point for the model and schedule flags (envit/model/config.hpp): readme (the README job, "
                "5-12 minutes on 2 cores), tiny28 (dim 192, depth 12, 3 heads), vit-b16")
      ->capture_default_str()->check(CLI::IsMember(vit_preset_names()))->group("Presets");
  const std::string g_method = "Method";
  c->add_option("--scheme", a.scheme, "training scheme")
      ->capture_default_str()
      ->check(CLI::IsMember({"envit", "envit-sd", "envit-kd", "vit-ee", "sdn", "byot", "lgvit", "beem", "cosee"}))
      ->group(g_method);
  c->add_option("--byot-variant", a.byot_variant, "BYOT settings: released (Zhang et al.'s code), envit-legacy, mmrazor")
      ->capture_default_str()->check(CLI::IsMember({"released", "envit-legacy", "mmrazor"}))->group(g_method);
  c->add_option("--reduction", a.reduction,
                "per-exit loss reduction: batch (sum / B) or remaining (mean over the exit's samples)")
      ->capture_default_str()->check(CLI::IsMember({"batch", "remaining"}))->group(g_method);
  add_real(*c, "--p-max", a.p_max, "p_M: structured-dropout probability at the last block (eq. 10)", 0, 0.999)
      ->group(g_method);
  add_real(*c, "--alpha", a.alpha, "distillation weight alpha (eq. 16)", 0, 1)->group(g_method);
  add_real(*c, "--tau", a.tau, "distillation temperature tau", 1e-3, 1e3)->group(g_method);
  c->add_option("--teacher", a.teacher, "soft-label source: full (complete model, no skipped block) or self")
      ->capture_default_str()->check(CLI::IsMember({"full", "self"}))->group(g_method);
  add_real(*c, "--lgvit-stage1-frac", a.lgvit_stage1_frac, "lgvit: fraction of the steps in stage 1 (backbone + heads)",
           0, 1)->group(g_method);
  c->add_flag("--lgvit-kd-per-batch", a.lgvit_kd_per_batch,
              "lgvit: divide the KD term by B (default: by B*K as the authors' code)")->group(g_method);
  c->add_flag("--lgvit-teacher-ln", a.lgvit_teacher_ln,
              "lgvit: teacher logits through the final LayerNorm (default: without, as the code)")->group(g_method);
  c->add_flag("--lgvit-detach-hom", a.lgvit_detach_hom,
              "lgvit: detach the homogeneous-loss targets (default: not, as the code)")->group(g_method);

  const std::string g_model = "Model (defaults from --preset)";
  c->add_option("--exits", a.exits, "blocks after which exits sit, e.g. 2,4,6 (default: every other block)")
      ->delimiter(',')->check(CLI::Range(1, 1024))->group(g_model);
  c->add_option("--image-size", a.image_size, "input image size (default: the dataset's; a folder's when its images "
                                              "share one size)")
      ->check(CLI::Range(1, 4096))->group(g_model);
  c->add_option("--channels", a.channels, "input channels, 1 or 3 (default: the dataset's; a folder: 1 when every "
                                          "image is grey-scale)")
      ->check(CLI::IsMember({1, 3}))->group(g_model);
  c->add_option("--patch", a.patch, "patch size (default: the preset's, adapted to another image size)")
      ->check(CLI::Range(1, 4096))->group(g_model);
  c->add_option("--dim", a.dim, "embedding dim D")->check(CLI::Range(1, 65536))->group(g_model);
  c->add_option("--depth", a.depth, "number of blocks L")->check(CLI::Range(1, 1024))->group(g_model);
  c->add_option("--heads", a.heads, "attention heads")->check(CLI::Range(1, 4096))->group(g_model);
  c->add_option("--mlp", a.mlp, "MLP hidden size")->check(CLI::Range(1, 1 << 20))->group(g_model);
  add_real(*c, "--ln-eps", a.ln_eps, "LayerNorm epsilon", 0, 1)->group(g_model);

  const std::string g_opt = "Optimisation";
  c->add_option("--epochs", a.epochs, "epochs (default from --preset)")->check(CLI::Range(1, 1 << 20))->group(g_opt);
  c->add_option("--steps", a.steps, "stop after this many steps in total (-1: all epochs)")
      ->capture_default_str()->check(at_least(-1))->group(g_opt);
  c->add_option("--batch", a.batch, "batch size")->capture_default_str()->check(CLI::Range(1, 1 << 16))->group(g_opt);
  add_real(*c, "--lr", a.lr, "peak learning rate (AdamW; default from --preset)", 0, 10, false)->group(g_opt);
  add_real(*c, "--min-lr", a.min_lr, "final learning rate of the cosine decay", 0, 10)->group(g_opt);
  add_real(*c, "--weight-decay", a.weight_decay, "AdamW decoupled weight decay (weights only)", 0, 10)->group(g_opt);
  c->add_option("--warmup-steps,--warmup", a.warmup_steps,
                "linear warm-up steps; overrides --warmup-frac and the preset's warm-up")
      ->check(at_least(0))->group(g_opt);
  add_real(*c, "--warmup-frac", a.warmup_frac,
           "warm-up as a fraction of the run's steps, used when the preset's warm-up is longer than 20% of the "
           "run or when given (the preset's own warm-up otherwise)", 0, 1)->group(g_opt);
  add_real(*c, "--clip", a.clip, "global gradient-norm clipping (0: off)", 0, 1e9)->group(g_opt);
  c->add_option("--clip-mode", a.clip_mode,
                "absolute, or weight-sum (threshold clip x the sum of the exits' loss weights; docs/method.md)")
      ->capture_default_str()->check(CLI::IsMember({"absolute", "weight-sum"}))->group(g_opt);

  const std::string g_data = "Data";
  c->add_option("--crop-pad", a.crop_pad, "random-crop padding in pixels (0: off; default from --preset)")
      ->check(CLI::Range(0, 64))->group(g_data);
  c->add_flag("--hflip", a.hflip, "random horizontal flips (off for Fashion-MNIST by default)")->group(g_data);
  c->add_option("--dataset", a.dataset, "dataset (idx: --data DIR of IDX files; folder: --data DIR of class folders; "
                                        "default: fashion-mnist, or with --data, what DIR holds)")
      ->capture_default_str()->check(CLI::IsMember({"fashion-mnist", "mnist", "idx", "cifar10", "cifar100", "folder"}))
      ->group(g_data);
  c->add_option("--norm", a.norm, "input normalisation: auto (--init's recorded one, else dataset), dataset, imagenet, "
                                  "inception, MEAN,STD or C means then C stds")
      ->capture_default_str()->group(g_data);
  add_real(*c, "--rrc-scale", a.rrc_scale, "random resized crop: smallest area share (0: off; default 0.08 for "
                                           "--dataset folder, else 0)", 0, 1, false)->group(g_data);
  add_real(*c, "--folder-val", a.folder_val, "--dataset folder without val/ or test/: share held out for evaluation "
                                             "(seeded)", 1e-6, 1 - 1e-6)->group(g_data);
  add_real(*c, "--crop-fraction", a.crop_fraction, "--dataset folder evaluation: centre crop of this share of the "
                                                   "resized image", 1e-3, 1)->group(g_data);
  c->add_option("--data", a.data, "dataset directory (default for fashion-mnist: /usr/share/datasets/fashion-mnist)")
      ->group(g_data);
  c->add_option("--val", a.val, "validation samples carved from the training set (seeded)")
      ->capture_default_str()->check(at_least(0))->group(g_data);
  c->add_option("--skip", a.skip, "drop the first N training samples (before --subset)")
      ->capture_default_str()->check(at_least(0))->group(g_data);
  c->add_option("--subset", a.subset, "use only the first N training samples after --skip (0: all)")
      ->capture_default_str()->check(at_least(0))->group(g_data);
  c->add_option("--classes", a.classes, "train only on samples with these labels, e.g. 0,1,2,3,4 (default: all)")
      ->delimiter(',')->check(CLI::Range(0, 1 << 20))->group(g_data);

  const std::string g_run = "Run";
  c->add_option("--seed", a.seed, "random seed (initialisation, data order, augmentation, masks)")
      ->capture_default_str()->check(at_least(0))->group(g_run);
  add_threads_option(*c, a.threads)->group(g_run);
  add_precision_option(*c, a.precision,
                       "matrix products in fp32, or bf16 (BF16 operands, FP32 accumulation; weights, gradients and "
                       "optimizer stay FP32; docs/method.md). Default fp32, or with --resume the checkpoint's")
      ->group(g_run);
  c->add_option("--out", a.out, "output directory (checkpoints, log.jsonl)")->capture_default_str()->group(g_run);
  c->add_option("--resume", a.resume, "resume from a checkpoint written by envit train (exact continuation)")
      ->group(g_run);
  c->add_option("--init", a.init, "initialise from pretrained weights: an envit checkpoint, a timm or torchvision "
                                  "safetensors file, or a Hugging Face directory; the architecture comes from it")
      ->group(g_run);
  c->add_option("--init-format", a.init_format, "format of --init")
      ->capture_default_str()->check(CLI::IsMember({"detect", "envit", "timm", "hf", "torchvision"}))->group(g_run);
  c->add_flag("--allow-new-heads", a.allow_new_heads,
              "with --init: replace a classifier whose class count differs with a fresh one")->group(g_run);
  c->add_option("--save-every", a.save_every, "also checkpoint every N steps (0: only at epoch ends)")
      ->capture_default_str()->check(at_least(0))->group(g_run);
  c->add_option("--step-log", a.step_log,
                "also write one JSON line per step (step, loss, grad_norm, lr) to this file")->group(g_run);
  c->add_option("--memory-limit", a.memory_limit,
                "refuse a run whose planned memory exceeds this (e.g. 2G, 512M; default: ENVIT_MEMORY_LIMIT, else "
                "MemAvailable or the cgroup limit)")->group(g_run);
  c->add_option("--eval-batch", a.eval_batch, "batch size for the per-epoch evaluation")
      ->capture_default_str()->check(CLI::Range(1, 1 << 16))->group(g_run);
  c->add_flag("--print-config", a.print_config,
              "print the resolved settings (model, options, warm-up, threads) as key=value lines and exit")
      ->group(g_run);
  return c;
}

int run_train(const TrainArgs& a, const CLI::App& c) {
  auto given = [&](const char* flag) { return c.count(flag) > 0; };
  set_num_threads(a.threads);
  TrainSetup s = train_setup(a, given);
  const std::optional<Pretrained>& src = s.src;
  const Dataset& train = s.train;
  const VitConfig& cfg = s.cfg;
  const TrainOptions& o = s.o;
  const Split& split = s.split;
  const std::string& norm_spec = s.norm_spec;
  const ChannelStats& stats = s.stats;
  const StFile& resume_file = s.resume_file;
  const Normalizer& norm = s.norm;
  const Dataset& eval_set = s.eval_set();
  const std::vector<std::int64_t> eval_idx = s.eval_idx();
  const char* eval_name = s.eval_name();
  const std::int64_t total_steps = s.total_steps;
  const Precision resumed_precision = s.resumed_precision;
  const DataSource& source = s.source;
  const MemoryPlan& mem = s.mem;
  const MemoryBudget& budget = s.budget;
  const std::string& mem_text = s.mem_text;

  Dist& mp = dist();
  Trainer tr(cfg, o, train, split.train, stats);
  if (mp.world > 1) tr.set_shard(mp.rank, mp.world, mp.grad_reduce(), mp.batch_reduce());
  const bool root = mp.root();  // rank 0 alone prints, logs and writes checkpoints
  ENVIT_CHECK(tr.total_steps() == total_steps, std::logic_error, "envit train: the run has ", tr.total_steps(),
              " steps, the warm-up was sized for ", total_steps);
  const std::map<std::string, std::string>& extra = s.extra;
  if (a.print_config && root) {
    for (auto& [k, v] : cfg.to_map()) std::printf("config.%s=%s\n", k.c_str(), v.c_str());
    for (auto& [k, v] : tr.metadata(extra)) std::printf("%s=%s\n", k.c_str(), v.c_str());
    std::printf("threads=%d\n", num_threads());
    std::printf("ranks=%d\n", mp.world);
  }
  if (a.print_config) return kExitOk;

  const std::string out = a.out;
  make_dirs(out);
  std::optional<io::DirLock> lock;  // rank 0 writes: a second trainer on this directory refuses here
  if (root) {
    lock.emplace(out);
    for (const std::string& n : lock->remove_stale_temporaries())
      std::fprintf(stderr, "removed '%s/%s' (left by an interrupted write)\n", out.c_str(), n.c_str());
  }
  if (src) {  // every rank: same file, same weights
    const std::string report = pretrained_load(*src, tr.params(), {a.allow_new_heads}).str();
    if (root) std::fprintf(stderr, "%s\n", report.c_str());
  }
  const std::string log_path = out + "/log.jsonl";
  std::string log;
  if (!a.resume.empty()) {
    tr.restore(resume_file);
    if (root) std::fprintf(stderr, "resumed from %s at step %lld (epoch %lld)\n", a.resume.c_str(), (long long)tr.step(),
                 (long long)tr.epoch());
    log = read_log(log_path, tr.epoch());
  }

  if (root) std::fprintf(stderr, "model: %s\n  %zu parameters; scheme %s, p_M %.3g, alpha %.3g, tau %.3g, teacher %s\n",
               cfg.str().c_str(), tr.params().count(), scheme_name(o.obj.scheme), o.obj.p_max, o.obj.alpha,
               o.obj.tau, teacher_name(o.obj.teacher));
  if (root) {
    std::string how = a.resume.empty() ? "" : o.precision == resumed_precision ? " (as the checkpoint)"
                      : std::string(" (resuming a checkpoint trained in ") + precision_name(resumed_precision) +
                            ": the steps from here run in " + precision_name(o.precision) + ")";
    std::fprintf(stderr, "precision: %s%s; %s\n", precision_name(o.precision), how.c_str(), kernel_set_info().c_str());
  }
  if (root) std::fprintf(stderr, "normalisation: %s (mean %s, std %s)\n", norm_spec.c_str(), ChannelStats::join(stats.mean).c_str(),
               ChannelStats::join(stats.std).c_str());
  if (root) std::fprintf(stderr,
               "data: %s, %zu train / %zu %s samples; %lld steps of batch %d, %lld warm-up; %d threads; out %s\n",
               source.name.c_str(), split.train.size(), eval_idx.size(), eval_name, (long long)tr.total_steps(),
               o.batch, (long long)o.warmup_steps, num_threads(), out.c_str());
  if (root) std::fprintf(stderr, "memory: %s; %s available (%s)\n", mem_text.c_str(),
                         budget.bytes ? format_bytes(budget.bytes).c_str() : "unknown", budget.source.c_str());
  if (root && mp.world > 1)
    std::fprintf(stderr, "data parallel: %d ranks x %d threads, %lld..%lld samples of each batch per rank\n",
                 mp.world, num_threads(), (long long)(o.batch / mp.world), (long long)((o.batch + mp.world - 1) / mp.world));
  // Evaluation: each rank takes a contiguous share of the evaluation samples; counts are summed.
  const std::size_t ev_lo = eval_idx.size() * std::size_t(mp.rank) / std::size_t(mp.world),
                    ev_hi = eval_idx.size() * std::size_t(mp.rank + 1) / std::size_t(mp.world);
  const std::vector<std::int64_t> eval_mine(eval_idx.begin() + std::ptrdiff_t(ev_lo), eval_idx.begin() + std::ptrdiff_t(ev_hi));

  const int M = cfg.num_exits();
  const std::int64_t start_step = tr.step();
  const std::string last = out + "/last.safetensors";
  std::FILE* step_log = nullptr;  // appended to, so a resumed run continues it
  if (root && !a.step_log.empty()) {
    step_log = std::fopen(a.step_log.c_str(), "a");
    ENVIT_CHECK(step_log, IoError, "cannot open --step-log file '", a.step_log, "' for appending");
  }
  struct CloseLog { std::FILE* f; ~CloseLog() { if (f) std::fclose(f); } } close_log{step_log};
  // A failed write (disk full, file-size limit) throws IoError; the previous checkpoint stays intact.
  auto save = [&] {
    if (!root) return;
    try {
      tr.save(last, extra);
    } catch (const IoError& err) {
      throw IoError(std::string(err.what()) + "\nthe previous checkpoint '" + last + "' (if any) is intact");
    }
  };
  StopSignals stop;  // first SIGINT/SIGTERM: finish the step, checkpoint, exit; second: exit at once
  while (!tr.done()) {
    const std::int64_t e = tr.epoch();
    const std::int64_t end = std::min(tr.total_steps(), (e + 1) * tr.steps_per_epoch());
    ProgressBar bar("epoch " + std::to_string(e + 1) + "/" + std::to_string(o.epochs), end - e * tr.steps_per_epoch(),
                    o.batch);
    bar.start_at(tr.step() - e * tr.steps_per_epoch());
    double loss_sum = 0, exec_sum = 0;
    std::vector<std::int64_t> corr(std::size_t(M), 0), seen(std::size_t(M), 0);
    std::int64_t steps = 0;
    while (tr.step() < end) {
      const StepStats* st;
      try {
        st = &tr.step_once();
      } catch (const NonFiniteError& err) {  // the loss is summed first: every rank stops at the same step
        if (root) std::fprintf(stderr, "\nerror: %s\nthe last good checkpoint (%s) is untouched.\n", err.what(), last.c_str());
        return kExitNonFinite;
      }
      loss_sum += st->loss;
      if (step_log)
        std::fprintf(step_log, "{\"step\":%lld,\"loss\":%.17g,\"grad_norm\":%.17g,\"lr\":%.17g}\n",
                     (long long)tr.step(), st->loss, tr.last_grad_norm(), tr.lr());
      exec_sum += tr.masks().executed_fraction();
      for (int j = 0; j < M; ++j) {
        corr[j] += st->correct[j];
        seen[j] += st->n[j];
      }
      ++steps;
      if (root) bar.update(tr.step() - e * tr.steps_per_epoch(), loss_sum / double(steps));
      double stop_now = stop.requested() ? 1 : 0;
      mp.sum(&stop_now, 1);  // a signal on any rank stops every rank after the same step
      if (stop_now > 0) {
        save();
        if (root) bar.finish();
        if (root) std::fprintf(stderr, "\nstopped by %s after step %lld: checkpoint '%s' written; continue with --resume %s\n",
                     stop.received() == SIGINT ? "SIGINT" : "SIGTERM", (long long)tr.step(), last.c_str(), last.c_str());
        return 128 + (stop.received() ? stop.received() : SIGTERM);
      }
      if (a.save_every > 0 && tr.step() % a.save_every == 0 && tr.step() < end) save();
    }
    if (root) bar.finish();
    const double secs = bar.seconds();
    std::int64_t n_eval = 0;
    std::vector<std::int64_t> ok =
        evaluate_exits(tr.params(), eval_set, eval_mine, norm, a.eval_batch, &n_eval, o.precision);
    mp.sum(ok.data(), M);
    mp.sum(&n_eval, 1);
    if (!root) continue;
    std::fprintf(stderr, "epoch %lld: loss %.4f, %s accuracy per exit:", (long long)(e + 1), loss_sum / double(steps),
                 eval_name);
    for (int j = 0; j < M; ++j) std::fprintf(stderr, " %.2f%%", 100.0 * double(ok[j]) / double(n_eval));
    std::fprintf(stderr, "  (%.0f img/s)\n", double(steps) * o.batch / secs);
    std::ostringstream line;
    line << "{\"epoch\":" << (e + 1) << ",\"step\":" << tr.step() << ",\"loss\":" << json_number(loss_sum / double(steps))
         << ",\"lr\":" << json_number(tr.lr()) << ",\"executed_fraction\":" << json_number(exec_sum / double(steps))
         << ",\"images_per_s\":" << json_number(double(steps) * o.batch / secs) << ",\"seconds\":" << json_number(secs)
         << ",\"memory_planned\":" << mem.total()
         << ",\"train_acc\":[";
    for (int j = 0; j < M; ++j)
      line << (j ? "," : "") << json_number(seen[j] ? double(corr[j]) / double(seen[j]) : 0.0);
    line << "],\"" << eval_name << "_acc\":[";
    for (int j = 0; j < M; ++j) line << (j ? "," : "") << json_number(double(ok[j]) / double(n_eval));
    line << "],\"exits\":[";
    for (int j = 0; j < M; ++j) line << (j ? "," : "") << cfg.exits[j];
    line << "],\"precision\":\"" << precision_name(o.precision) << "\"}\n";
    log += line.str();
    write_text_atomic(log_path, log);
    save();
  }
  if (root && mp.world > 1 && tr.step() > start_step)
    std::fprintf(stderr, "allreduce: %.3f ms per step (rank 0, gradient MPI_Allreduce of %zu floats)\n",
                 1e3 * mp.allreduce_seconds / double(tr.step() - start_step), tr.params().size());
  if (root) std::fprintf(stderr, "done: %s\n", last.c_str());
  return kExitOk;
}

}  // namespace envit::cli
