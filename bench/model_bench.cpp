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
//            logits, with no backward caches: infer_all_exits on an InferenceWorkspace when
//            envit/infer/early_exit.hpp is present, otherwise vit_forward_full (whose workspace
//            also plans the training caches, so its peak RSS is larger).
//   latency  infer at batch 1.
// Output keys: impl, mode, median_s (median over the timed iterations of one iteration's wall
// time), images_per_s (= batch / median_s), peak_rss_mb (getrusage ru_maxrss at exit),
// executed_fraction (fraction of (sample, block) pairs run, mean over timed train steps; 1 for
// inference), plus the settings and a few sanity values (loss of the last step, parameter count).
//
// Usage: envit_model_bench [--mode train|infer|latency] [--dim 192] [--depth 12] [--heads 3]
//        [--mlp 768] [--image 28] [--channels 1] [--patch 4] [--classes 10]
//        [--exits every-other|2,4,...] [--batch 128] [--threads 2] [--scheme envit] [--p-max 0]
//        [--iters 10] [--warmup 2] [--prepack 1|0] [--last-block class|all]
// --prepack 0: inference without pre-packed weights (the GEMM packs each weight on every call).
// --last-block all: training runs the last block on every token (ViTWorkspace::last_block_all_tokens)
//   instead of on class tokens only, the default; for A/B timing of that choice.
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

#include "envit/core/parallel.hpp"
#include "envit/core/rng.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/train/objective.hpp"

#if __has_include("envit/infer/early_exit.hpp")
#include "envit/infer/early_exit.hpp"
#define ENVIT_BENCH_HAVE_INFER 1
#else
#define ENVIT_BENCH_HAVE_INFER 0
#endif

namespace {

using namespace envit;
using Clock = std::chrono::steady_clock;

struct Options {
  VitConfig cfg;
  std::string exits = "every-other";
  std::string mode = "train";
  std::string scheme = "envit";
  int batch = 128, threads = 2, iters = 10, warmup = 2;
  double p_max = 0.0;
  bool prepack = true;  // inference: weights packed once (InferenceWorkspace::prepack)
  std::string last_block = "class";  // train: the last block on class tokens only, or "all" tokens
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "envit_model_bench: %s\n"
               "usage: envit_model_bench [--mode train|infer|latency] [--dim D] [--depth L] [--heads H]\n"
               "       [--mlp F] [--image S] [--channels C] [--patch P] [--classes K]\n"
               "       [--exits every-other|s1,s2,...] [--batch B] [--threads T] [--scheme NAME]\n"
               "       [--p-max P] [--iters N] [--warmup N] [--prepack 1|0] [--last-block class|all]\n",
               why.c_str());
  std::exit(2);
}

int to_int(const std::string& flag, const std::string& v) {
  try {
    std::size_t pos = 0;
    int x = std::stoi(v, &pos);
    if (pos == v.size()) return x;
  } catch (const std::exception&) {
  }
  usage(flag + " expects an integer, got '" + v + "'");
}
double to_double(const std::string& flag, const std::string& v) {
  try {
    std::size_t pos = 0;
    double x = std::stod(v, &pos);
    if (pos == v.size()) return x;
  } catch (const std::exception&) {
  }
  usage(flag + " expects a number, got '" + v + "'");
}

Options parse(int argc, char** argv) {
  Options o;
  o.cfg = VitConfig::tiny28();
  std::map<std::string, std::string> kv;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") usage("help");
    if (a.rfind("--", 0) != 0) usage("unexpected argument '" + a + "'");
    std::string key = a.substr(2), val;
    if (auto eq = key.find('='); eq != std::string::npos) {
      val = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else {
      if (i + 1 >= argc) usage("--" + key + " needs a value");
      val = argv[++i];
    }
    kv[key] = val;
  }
  for (auto& [k, v] : kv) {
    const std::string f = "--" + k;
    if (k == "dim") o.cfg.dim = to_int(f, v);
    else if (k == "depth") o.cfg.depth = to_int(f, v);
    else if (k == "heads") o.cfg.heads = to_int(f, v);
    else if (k == "mlp") o.cfg.mlp_hidden = to_int(f, v);
    else if (k == "image") o.cfg.image_size = to_int(f, v);
    else if (k == "channels") o.cfg.channels = to_int(f, v);
    else if (k == "patch") o.cfg.patch = to_int(f, v);
    else if (k == "classes") o.cfg.classes = to_int(f, v);
    else if (k == "exits") o.exits = v;
    else if (k == "batch") o.batch = to_int(f, v);
    else if (k == "threads") o.threads = to_int(f, v);
    else if (k == "iters") o.iters = to_int(f, v);
    else if (k == "warmup") o.warmup = to_int(f, v);
    else if (k == "scheme") o.scheme = v;
    else if (k == "p-max") o.p_max = to_double(f, v);
    else if (k == "mode") o.mode = v;
    else if (k == "prepack") o.prepack = to_int(f, v) != 0;
    else if (k == "last-block") o.last_block = v;
    else usage("unknown flag " + f);
  }
  o.cfg.exits = o.exits == "every-other" ? VitConfig::every_other(o.cfg.depth) : VitConfig::parse_exits(o.exits);
  if (o.mode != "train" && o.mode != "infer" && o.mode != "latency")
    usage("--mode must be train, infer or latency, got '" + o.mode + "'");
  if (o.mode == "latency") o.batch = 1;
  if (o.last_block != "class" && o.last_block != "all")
    usage("--last-block must be class or all, got '" + o.last_block + "'");
  if (o.batch < 1) usage("--batch must be >= 1");
  if (o.threads < 1) usage("--threads must be >= 1");
  if (o.iters < 1) usage("--iters must be >= 1");
  if (o.warmup < 0) usage("--warmup must be >= 0");
  o.cfg.validate();
  return o;
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

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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
    ViTWorkspace<float> ws(cfg, B);
    ws.last_block_all_tokens = o.last_block == "all";
    ObjectiveWorkspace<float> ow(cfg, B);
    ObjectiveConfig oc;
    oc.scheme = parse_scheme(o.scheme);
    oc.p_max = o.p_max;
    oc.validate();
    const std::vector<double> p = oc.block_probs(cfg);
    LayerMasks masks(cfg.depth, B);
    StepStats st;
    std::vector<std::int32_t> labels(B);
    for (int b = 0; b < B; ++b) labels[b] = b % cfg.classes;
    std::uint64_t k = 0;
    double exec_sum = 0;
    bool timed = false;
    auto step = [&] {
      masks.draw(/*seed=*/1234, k++, p, B);
      P.zero_grads();
      train_step_grads<float>(st, ws, ow, P, images.data(), labels.data(), masks, oc, p, 0.5);
      clip_grad_norm(P, 1.0);
      adamw_step(P, opt, ac, 1e-4);
      if (timed) exec_sum += masks.executed_fraction();
    };
    for (int i = 0; i < o.warmup; ++i) step();
    timed = true;
    times = time_iters(0, o.iters, step);
    executed = exec_sum / o.iters;
    loss = st.loss;
    g_sink = P.values()[0];
    forward = "train_step_grads";
  } else {
    const int M = cfg.num_exits();
    std::vector<float> logits(std::size_t(M) * B * cfg.classes);
#if ENVIT_BENCH_HAVE_INFER
    InferenceWorkspace<float> ws(cfg, B);
    if (o.prepack) ws.prepack(P);
    auto fwd = [&] {
      infer_all_exits<float>(ws, P, images.data(), B, logits.data(), std::ptrdiff_t(B) * cfg.classes);
      g_sink = logits.back();
    };
    forward = "infer_all_exits";
#else
    ViTWorkspace<float> ws(cfg, B);
    std::vector<float*> out;
    for (int j = 0; j < M; ++j) out.push_back(logits.data() + std::size_t(j) * B * cfg.classes);
    auto fwd = [&] {
      vit_forward_full<float>(ws, P, images.data(), B, out.data());
      g_sink = logits.back();
    };
    forward = "vit_forward_full";
#endif
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
      "\"base_rss_mb\":%.1f,\"forward\":\"%s\",\"last_block\":\"%s\",\"config\":\"%s\"}\n",
      o.mode.c_str(), med, double(B) / med, peak_rss_mb(), executed, B, envit::num_threads(), o.iters, o.warmup,
      *std::min_element(times.begin(), times.end()), *std::max_element(times.begin(), times.end()),
      o.scheme.c_str(), o.p_max, loss_str.c_str(), P.count(), rss_base, forward.c_str(),
      o.mode == "train" ? o.last_block.c_str() : "n/a", cfg.str().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = [&] {
    try {
      return parse(argc, argv);
    } catch (const std::exception& e) {
      usage(e.what());
    }
  }();
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "envit_model_bench: %s\n", e.what());
    return 1;
  }
}
