// examples/envit/train.cpp — `envit train`: train a multi-exit ViT with EnViT or a baseline scheme.
// All logic lives in the library (envit::Trainer); this file maps flags to options, prints
// progress, logs every epoch as JSON lines and writes atomic checkpoints.
#include <cstdio>
#include <fstream>
#include <iostream>

#include "common.hpp"
#include "envit/train/trainer.hpp"
#include "progress.hpp"

namespace envit::cli {

namespace {

void declare(Args& a) {
  a.flag("preset", "readme", "starting point for every flag below: readme (the ~15 min Fashion-MNIST run), "
                             "tiny28 (dim 192, depth 12, 3 heads), vit-b16", "Presets");
  a.flag("scheme", "envit", "training scheme: envit, envit-sd, envit-kd, vit-ee, sdn, byot", "Method");
  a.flag("p-max", "0.3", "p_M: structured-dropout probability at the last block (eq. 10)", "Method");
  a.flag("alpha", "0.5", "distillation weight alpha (eq. 16)", "Method");
  a.flag("tau", "4", "distillation temperature tau", "Method");
  a.flag("teacher", "full", "soft-label source: full (complete model, no skipped block) or self", "Method");
  a.flag("exits", "", "blocks after which exits sit, e.g. 2,4,6 (default: every other block)", "Model");
  a.flag("image-size", "", "input image size (default: the dataset's)", "Model");
  a.flag("patch", "", "patch size", "Model");
  a.flag("dim", "", "embedding dim D", "Model");
  a.flag("depth", "", "number of blocks L", "Model");
  a.flag("heads", "", "attention heads", "Model");
  a.flag("mlp", "", "MLP hidden size", "Model");
  a.flag("ln-eps", "1e-6", "LayerNorm epsilon", "Model");
  a.flag("epochs", "", "epochs", "Optimisation");
  a.flag("steps", "-1", "stop after this many steps in total (-1: all epochs)", "Optimisation");
  a.flag("batch", "128", "batch size", "Optimisation");
  a.flag("lr", "", "peak learning rate (AdamW)", "Optimisation");
  a.flag("min-lr", "1e-5", "final learning rate of the cosine decay", "Optimisation");
  a.flag("weight-decay", "0.05", "AdamW decoupled weight decay (weights only)", "Optimisation");
  a.flag("warmup", "", "warm-up steps (linear)", "Optimisation");
  a.flag("clip", "1.0", "global gradient-norm clipping (0: off)", "Optimisation");
  a.flag("crop-pad", "", "random-crop padding in pixels (0: off)", "Data");
  a.toggle("hflip", "random horizontal flips (off for Fashion-MNIST by default)", "Data");
  a.flag("dataset", "fashion-mnist", "fashion-mnist, mnist, cifar10, cifar100", "Data");
  a.flag("data", "", "dataset directory (default for fashion-mnist: /usr/share/datasets/fashion-mnist)", "Data");
  a.flag("val", "0", "validation samples carved from the training set (seeded)", "Data");
  a.flag("skip", "0", "drop the first N training samples (before --subset)", "Data");
  a.flag("subset", "0", "use only the first N training samples after --skip (0: all)", "Data");
  a.flag("classes", "", "train only on samples with these labels, e.g. 0,1,2,3,4 (default: all)", "Data");
  a.flag("seed", "0", "random seed (initialisation, data order, augmentation, masks)", "Run");
  a.flag("threads", "2", "OpenMP threads", "Run");
  a.flag("out", "out/run", "output directory (checkpoints, log.jsonl)", "Run");
  a.flag("resume", "", "resume from a checkpoint written by envit train (exact continuation)", "Run");
  a.flag("init", "", "initialise weights from a safetensors file (timm names)", "Run");
  a.toggle("allow-new-heads", "with --init: keep fresh exit heads when the file's are missing or mis-shaped", "Run");
  a.flag("save-every", "0", "also checkpoint every N steps (0: only at epoch ends)", "Run");
  a.flag("eval-batch", "256", "batch size for the per-epoch evaluation", "Run");
}

void apply_preset(Args& a) {
  const std::string p = a.str("preset");
  if (p == "readme") {  // small ViT sized to finish in ~15 minutes on 2 cores
    for (auto [k, v] : {std::pair{"patch", "7"}, {"dim", "96"}, {"depth", "6"}, {"heads", "3"}, {"mlp", "192"},
                        {"epochs", "18"}, {"lr", "2e-3"}, {"warmup", "400"}, {"crop-pad", "0"}})
      a.preset(k, v);
  } else if (p == "tiny28") {
    for (auto [k, v] : {std::pair{"patch", "4"}, {"dim", "192"}, {"depth", "12"}, {"heads", "3"}, {"mlp", "768"},
                        {"epochs", "30"}, {"lr", "1e-3"}, {"warmup", "1000"}, {"crop-pad", "2"}})
      a.preset(k, v);
  } else if (p == "vit-b16") {
    for (auto [k, v] : {std::pair{"image-size", "224"}, {"patch", "16"}, {"dim", "768"}, {"depth", "12"},
                        {"heads", "12"}, {"mlp", "3072"}, {"epochs", "10"}, {"lr", "5e-5"}, {"warmup", "500"},
                        {"crop-pad", "0"}})
      a.preset(k, v);
  } else {
    throw UsageError("unknown --preset '" + p + "' (readme, tiny28, vit-b16)");
  }
}

}  // namespace

int cmd_train(int argc, char** argv) {
  Args a("envit train", "Train an early-exit ViT (EnViT or a baseline) and checkpoint it.");
  declare(a);
  if (!a.parse(argc, argv, 2)) return 0;
  apply_preset(a);
  set_num_threads(int(a.integer("threads", 1, 1024)));

  const std::string out = a.str("out");
  make_dirs(out);
  Dataset train = load_dataset(a.str("dataset"), a.str("data"), true);
  Dataset test = load_dataset(a.str("dataset"), a.str("data"), false);
  const std::string classes = a.str("classes");
  if (a.integer("skip", 0, train.n) > 0 || a.integer("subset", 0, train.n) > 0 || !classes.empty()) {
    const std::vector<std::int64_t> idx = training_indices(train, a.integer("skip", 0, train.n), a.integer("subset", 0, train.n),
                                                           parse_ints(classes, "--classes"));
    train = dataset_subset(train, idx.data(), std::int64_t(idx.size()));
  }

  VitConfig cfg;
  cfg.image_size = a.given("image-size") || !a.str("image-size").empty() ? int(a.integer("image-size", 1, 4096)) : train.h;
  ENVIT_CHECK(cfg.image_size == train.h && train.h == train.w, UsageError, "--image-size ", cfg.image_size,
              " does not match the dataset's ", train.h, "x", train.w, " images (resizing is not supported)");
  cfg.channels = train.c;
  cfg.patch = int(a.integer("patch", 1, 4096));
  cfg.dim = int(a.integer("dim", 1, 65536));
  cfg.depth = int(a.integer("depth", 1, 1024));
  cfg.heads = int(a.integer("heads", 1, 4096));
  cfg.mlp_hidden = int(a.integer("mlp", 1, 1 << 20));
  cfg.classes = train.classes;
  cfg.exits = a.str("exits").empty() ? VitConfig::every_other(cfg.depth) : VitConfig::parse_exits(a.str("exits"));
  cfg.ln_eps = a.real("ln-eps", 0, 1);
  cfg.validate();

  TrainOptions o;
  o.obj.scheme = parse_scheme(a.str("scheme"));
  o.obj.p_max = a.real("p-max", 0, 0.999);
  o.obj.alpha = a.real("alpha", 0, 1);
  o.obj.tau = a.real("tau", 1e-3, 1e3);
  o.obj.teacher = parse_teacher(a.str("teacher"));
  o.epochs = int(a.integer("epochs", 1, 1 << 20));
  o.max_steps = a.integer("steps", -1, INT64_MAX);
  o.batch = int(a.integer("batch", 1, 1 << 16));
  o.lr = a.real("lr", 0, 10);
  o.min_lr = a.real("min-lr", 0, 10);
  o.adamw.weight_decay = a.real("weight-decay", 0, 10);
  o.warmup_steps = a.integer("warmup", 0, INT64_MAX);
  o.clip = a.real("clip", 0, 1e9);
  o.seed = std::uint64_t(a.integer("seed", 0, INT64_MAX));
  o.aug.crop_pad = int(a.integer("crop-pad", 0, 64));
  o.aug.hflip = a.on("hflip");

  const std::int64_t n_val = a.integer("val", 0, train.n - 1);
  Split split = split_train_val(train.n, n_val, o.seed);
  ChannelStats stats = channel_stats(train, split.train.data(), std::int64_t(split.train.size()));
  Normalizer norm(stats);
  const Dataset& eval_set = n_val > 0 ? train : test;
  std::vector<std::int64_t> eval_idx = n_val > 0 ? split.val : std::vector<std::int64_t>(std::size_t(test.n));
  if (n_val == 0) std::iota(eval_idx.begin(), eval_idx.end(), 0);
  const char* eval_name = n_val > 0 ? "val" : "test";

  Trainer tr(cfg, o, train, split.train, stats);
  if (!a.str("init").empty()) {
    StFile f = safetensors_read(a.str("init"));
    WeightMatch w = load_weights(f, tr.params(), a.on("allow-new-heads"));
    std::fprintf(stderr, "initialised from %s%s\n", a.str("init").c_str(),
                 w.clean() ? "" : (" (kept fresh exit heads:" + w.report() + ")").c_str());
  }
  std::ofstream log;
  if (!a.str("resume").empty()) {
    tr.restore(safetensors_read(a.str("resume")));
    std::fprintf(stderr, "resumed from %s at step %lld (epoch %lld)\n", a.str("resume").c_str(),
                 (long long)tr.step(), (long long)tr.epoch());
    log.open(out + "/log.jsonl", std::ios::app);
  } else {
    log.open(out + "/log.jsonl", std::ios::trunc);
  }
  ENVIT_CHECK(log.good(), IoError, "cannot write '", out, "/log.jsonl'");

  std::fprintf(stderr, "model: %s\n  %zu parameters; scheme %s, p_M %.3g, alpha %.3g, tau %.3g, teacher %s\n",
               cfg.str().c_str(), tr.params().count(), scheme_name(o.obj.scheme), o.obj.p_max, o.obj.alpha,
               o.obj.tau, teacher_name(o.obj.teacher));
  std::fprintf(stderr, "data: %s, %zu train / %zu %s samples; %lld steps of batch %d; %d threads; out %s\n",
               a.str("dataset").c_str(), split.train.size(), eval_idx.size(), eval_name,
               (long long)tr.total_steps(), o.batch, num_threads(), out.c_str());

  const std::int64_t save_every = a.integer("save-every", 0, INT64_MAX);
  const std::map<std::string, std::string> extra{{"data.dataset", a.str("dataset")},
                                                 {"data.val", std::to_string(n_val)},
                                                 {"data.subset", a.str("subset")},
                                                 {"data.skip", a.str("skip")},
                                                 {"data.classes", classes}};
  const int M = cfg.num_exits();
  const std::string last = out + "/last.safetensors";
  while (!tr.done()) {
    const std::int64_t e = tr.epoch();
    const std::int64_t end = std::min(tr.total_steps(), (e + 1) * tr.steps_per_epoch());
    ProgressBar bar("epoch " + std::to_string(e + 1) + "/" + std::to_string(o.epochs), end - e * tr.steps_per_epoch(),
                    o.batch);
    bar.start_at(tr.step() - e * tr.steps_per_epoch());
    double loss_sum = 0, exec_sum = 0;
    std::vector<double> ce_sum(std::size_t(M), 0.0);
    std::vector<std::int64_t> corr(std::size_t(M), 0), seen(std::size_t(M), 0);
    std::int64_t steps = 0;
    while (tr.step() < end) {
      const StepStats* st;
      try {
        st = &tr.step_once();
      } catch (const NonFiniteError& err) {
        std::fprintf(stderr, "\nerror: %s\nthe last good checkpoint (%s) is untouched.\n", err.what(), last.c_str());
        return 3;
      }
      loss_sum += st->loss;
      exec_sum += tr.masks().executed_fraction();
      for (int j = 0; j < M; ++j) {
        ce_sum[j] += st->ce[j];
        corr[j] += st->correct[j];
        seen[j] += st->n[j];
      }
      ++steps;
      bar.update(tr.step() - e * tr.steps_per_epoch(), loss_sum / double(steps));
      if (save_every > 0 && tr.step() % save_every == 0 && tr.step() < end) tr.save(last, extra);
    }
    bar.finish();
    const double secs = bar.seconds();
    std::int64_t n_eval = 0;
    std::vector<std::int64_t> ok = evaluate_exits(tr.params(), eval_set, eval_idx, norm,
                                                  int(a.integer("eval-batch", 1, 1 << 16)), &n_eval);
    std::fprintf(stderr, "epoch %lld: loss %.4f, %s accuracy per exit:", (long long)(e + 1), loss_sum / double(steps),
                 eval_name);
    for (int j = 0; j < M; ++j) std::fprintf(stderr, " %.2f%%", 100.0 * double(ok[j]) / double(n_eval));
    std::fprintf(stderr, "  (%.0f img/s)\n", double(steps) * o.batch / secs);
    log << "{\"epoch\":" << (e + 1) << ",\"step\":" << tr.step() << ",\"loss\":" << loss_sum / double(steps)
        << ",\"lr\":" << tr.lr() << ",\"executed_fraction\":" << exec_sum / double(steps)
        << ",\"images_per_s\":" << double(steps) * o.batch / secs << ",\"seconds\":" << secs << ",\"train_acc\":[";
    for (int j = 0; j < M; ++j) log << (j ? "," : "") << (seen[j] ? double(corr[j]) / double(seen[j]) : 0.0);
    log << "],\"" << eval_name << "_acc\":[";
    for (int j = 0; j < M; ++j) log << (j ? "," : "") << double(ok[j]) / double(n_eval);
    log << "],\"exits\":[";
    for (int j = 0; j < M; ++j) log << (j ? "," : "") << cfg.exits[j];
    log << "]}\n";
    log.flush();
    tr.save(last, extra);
  }
  std::fprintf(stderr, "done: %s\n", last.c_str());
  return 0;
}

}  // namespace envit::cli
