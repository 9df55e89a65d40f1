// envit_model_bench — one whole-model measurement of envit, printed as ONE JSON line, so that
// bench/side_by_side.py can put it next to the same model in PyTorch (bench/torch_model_bench.py,
// same flags, same JSON keys). A plain program, not Google Benchmark: each run is a fresh process
// (peak RSS is the process's), with a fixed number of timed iterations after a warm-up.
//
// Modes (float throughout):
//   train    one complete training step per iteration, as bench/bench_train_step.cpp: layer masks
//            redrawn for step k (counter-based, seed 1234), zero gradients, the complete-model
//            teacher forward when the scheme distils and some sample skips a block, the training
//            forward with skipping, the objective, backward, clip_grad_norm (1.0), AdamW (lr 1e-4,
//            betas 0.9/0.999, eps 1e-8, wd 0.05 on weight matrices). Weights change every step;
//            the data batch is fixed.
//   infer    the complete model (every block on every sample) at --batch, writing every exit's
//            logits, with no backward caches: infer_all_exits on an InferenceWorkspace with
//            pre-packed weights.
//   latency  infer at batch 1.
// --precision bf16 runs every matrix product with BF16 operands and FP32 accumulation
// (core/precision.hpp): the training step through StepWorkspace's precision (weights converted in
// the GEMM packing, every step), inference through InferenceWorkspace's (weights packed to BF16
// once, before the timed passes). --precision int8 (infer and latency only) runs the blocks' Linear
// layers in INT8 (weights quantized per output channel and packed once before the timed passes,
// activations quantized per token as they run; weights/quantize.hpp's dynamic scaling), the rest FP32.
// Output keys: impl, mode, median_s (median over the timed iterations of one iteration's wall
// time), images_per_s (= batch / median_s), peak_rss_mb (getrusage ru_maxrss at exit),
// executed_fraction (fraction of (sample, block) pairs run, mean over timed train steps; 1 for
// inference), precision and kernels (the kernel set in use, kernel_set_info()), plus the settings and
// a few sanity values (loss of the last step, parameter count).
//
// Usage: envit_model_bench [--mode train|infer|latency] [--dim 192] [--depth 12] [--heads 3]
//        [--mlp 768] [--image 28] [--channels 1] [--patch 4] [--classes 10]
//        [--exits every-other|2,4,...] [--batch 128] [--threads N] [--scheme envit] [--p-max 0]
//        [--iters 10] [--warmup 2] [--precision fp32|bf16|int8] (--help lists them with their ranges)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "cli.hpp"
#include "envit/core/parallel.hpp"
#include "envit/core/rng.hpp"
#include "envit/core/stats.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/train/objective.hpp"
#include "envit/train/step.hpp"

namespace {

using namespace envit;
using Clock = std::chrono::steady_clock;

struct Options {
  VitConfig cfg = VitConfig::tiny28();
  std::string exits = "every-other";
  std::string mode = "train";
  std::string scheme = "envit";
  std::string precision_text = "fp32";
  Precision precision = Precision::fp32;
  int batch = 128, threads = 1, iters = 10, warmup = 2;
  double p_max = 0.0;
};

void declare(CLI::App& app, Options& o) {
  app.add_option("--mode", o.mode, "train (one training step per iteration), infer (complete model at --batch), "
                                   "latency (infer at batch 1)")
      ->capture_default_str()->check(CLI::IsMember({"train", "infer", "latency"}));
  app.add_option("--dim", o.cfg.dim, "embedding dim D")->capture_default_str()->check(CLI::Range(1, 65536));
  app.add_option("--depth", o.cfg.depth, "blocks L")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--heads", o.cfg.heads, "attention heads")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--mlp", o.cfg.mlp_hidden, "MLP hidden size")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--image", o.cfg.image_size, "image size")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--channels", o.cfg.channels, "image channels")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--patch", o.cfg.patch, "patch size")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--classes", o.cfg.classes, "classes")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  app.add_option("--exits", o.exits, "every-other, or the blocks after which exits sit (e.g. 2,4,6)")
      ->capture_default_str();
  app.add_option("--batch", o.batch, "batch size (latency: 1)")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  envit::cli::add_threads_option(app, o.threads);
  app.add_option("--scheme", o.scheme, "training scheme")
      ->capture_default_str()
      ->check(CLI::IsMember({"envit", "envit-sd", "envit-kd", "vit-ee", "sdn", "byot"}));
  envit::cli::add_real(app, "--p-max", o.p_max, "p_M of the structured dropout (train)", 0, 0.999);
  app.add_option("--iters", o.iters, "timed iterations")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--warmup", o.warmup, "untimed iterations first")->capture_default_str()->check(CLI::Range(0, 1 << 20));
  envit::cli::add_precision_option(app, o.precision_text,
                                   "matrix products in fp32, bf16 (BF16 operands, FP32 accumulation) or int8 "
                                   "(inference only: the blocks' Linear layers, dynamic activation scales)",
                                   /*inference=*/true)
      ->capture_default_str();
}

// The settings after parsing: exits, batch 1 for latency, the precision, a validated model.
void finish(const CLI::App& app, Options& o) {
  o.precision =
      envit::cli::precision_flag(app.count("--precision") > 0, o.precision_text, Precision::fp32, /*inference=*/true);
  if (o.precision == Precision::int8 && o.mode == "train")
    throw envit::cli::UsageError("--precision int8 is for --mode infer or latency (training runs in fp32 or bf16)");
  envit::cli::as_usage_error([&] {
    o.cfg.exits = o.exits == "every-other" ? VitConfig::every_other(o.cfg.depth) : VitConfig::parse_exits(o.exits);
    o.cfg.validate();
  });
  if (o.mode == "latency") o.batch = 1;
}

std::vector<float> random_images(const VitConfig& cfg, int B, std::uint64_t seed) {
  CounterRng r(seed, RngStream::init, 0xB1);
  std::vector<float> v(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
  for (auto& e : v) e = float(2.0 * r.uniform() - 1.0);
  return v;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

// Times `iters` calls of f after `warmup` untimed ones; returns per-iteration seconds.
template <class F>
std::vector<double> time_iters(int warmup, int iters, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  t.reserve(static_cast<std::size_t>(iters));
  for (int i = 0; i < iters; ++i) {
    auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return t;
}

// Keeps a result observable so the work cannot be dropped.
volatile float g_sink = 0;

int run(const Options& o) {
  const double rss_base = peak_rss_mb();
  envit::set_num_threads(o.threads);
  const VitConfig& cfg = o.cfg;
  const int B = o.batch;
  ViTParams<float> P(cfg, /*with_grads=*/o.mode == "train");
  P.init(1);
  const std::vector<float> images = random_images(cfg, B, 7);

  std::vector<double> times;
  double executed = 1.0, loss = 0.0;
  std::string forward = "";
  if (o.mode == "train") {
    AdamWState<float> opt(P.size());
    const AdamWConfig ac;
    StepWorkspace<float> w(cfg, B, o.precision);
    ObjectiveConfig oc;
    oc.scheme = parse_scheme(o.scheme);
    oc.p_max = o.p_max;
    oc.validate();
    const std::vector<double> p = oc.block_probs(cfg);
    std::vector<std::int32_t> labels(B);
    for (int b = 0; b < B; ++b) labels[b] = b % cfg.classes;
    std::uint64_t k = 0;
    double exec_sum = 0;
    bool timed = false;
    auto step = [&] {
      train_step(w, P, opt, images.data(), labels.data(), B, oc, p, StepSettings{/*seed=*/1234, k++, 0.5, 1e-4, 1.0, ClipMode::absolute, ac});
      if (timed) exec_sum += w.masks.executed_fraction();
    };
    for (int i = 0; i < o.warmup; ++i) step();
    timed = true;
    times = time_iters(0, o.iters, step);
    executed = exec_sum / o.iters;
    loss = w.stats.loss;
    g_sink = P.values()[0];
    forward = "train_step";
  } else {
    const int M = cfg.num_exits();
    std::vector<float> logits(std::size_t(M) * B * cfg.classes);
    InferenceWorkspace<float> ws(cfg, B);
    ws.precision = o.precision;
    ws.prepack(P);
    auto fwd = [&] {
      infer_all_exits<float>(ws, P, images.data(), B, logits.data(), std::ptrdiff_t(B) * cfg.classes);
      g_sink = logits.back();
    };
    forward = "infer_all_exits";
    times = time_iters(o.warmup, o.iters, fwd);
  }
  const double med = median(times);
  char buf[64] = "null";
  if (o.mode == "train") std::snprintf(buf, sizeof buf, "%.9g", loss);
  const std::string loss_str = buf;
  std::printf(
      "{\"impl\":\"envit\",\"mode\":\"%s\",\"median_s\":%.9g,\"images_per_s\":%.6g,\"peak_rss_mb\":%.1f,"
      "\"executed_fraction\":%.6g,\"batch\":%d,\"threads\":%d,\"iters\":%d,\"warmup\":%d,"
      "\"min_s\":%.9g,\"max_s\":%.9g,\"scheme\":\"%s\",\"p_max\":%g,\"loss\":%s,\"params\":%zu,"
      "\"base_rss_mb\":%.1f,\"forward\":\"%s\",\"precision\":\"%s\",\"kernels\":\"%s\",\"config\":\"%s\"}\n",
      o.mode.c_str(), med, double(B) / med, peak_rss_mb(), executed, B, envit::num_threads(), o.iters, o.warmup,
      *std::min_element(times.begin(), times.end()), *std::max_element(times.begin(), times.end()),
      o.scheme.c_str(), o.p_max, loss_str.c_str(), P.count(), rss_base, forward.c_str(), precision_name(o.precision),
      kernel_set_info().c_str(), cfg.str().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("envit_model_bench: one whole-model measurement of envit, printed as one JSON line.",
               "envit_model_bench");
  envit::cli::setup_app(app);
  Options o;
  declare(app, o);
  return envit::cli::run(app, argc, argv, [&] {
    finish(app, o);
    return run(o);
  });
}
