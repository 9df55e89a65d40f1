// bench/dropout_ratio.cpp — what EnViT's structured dropout saves per training step, measured as a
// ratio inside ONE process: two complete training setups of the same model (p_M = 0 and p_M = P),
// stepped alternately (0, P, 0, P, ...), so machine-wide slowdowns (2-thread timings on a shared VM
// swing 10-40% between processes) hit both alike. Prints, per scheme/teacher, the median step time
// of each setup and the median over pairs of t(P) / t(0), plus the executed (sample, block) fraction.
//
// A step is bench_train_step's (train_step_grads): masks for step k, zero grads, the training
// forward with skipping, the complete-model teacher when the scheme distils from the `full`
// teacher and some sample skips a block (only the blocks after each sample's first skip: it shares
// the training pass's prefix), objective, backward, clip_grad_norm (1.0), AdamW.
//
// --compare last-block: the same pairing for another choice, the training step with its last block
// on every token (ViTWorkspace::last_block_all_tokens) against class tokens only (the default), at
// p_M = 0, scheme envit: prints t(all), t(class) and the median of t(class) / t(all).
//
// Usage: envit_dropout_ratio [--threads 2] [--pairs 12] [--p-max 0.3] [--batch 128]
//                            [--compare p-max|last-block]
// Model: VitConfig::tiny28() (28x28x1, patch 4, dim 192, depth 12, 3 heads, MLP 768, 6 exits).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "envit/core/parallel.hpp"
#include "envit/core/rng.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/train/objective.hpp"

namespace {

using namespace envit;
using Clock = std::chrono::steady_clock;

struct Setup {
  VitConfig cfg;
  int B;
  ViTParams<float> P;
  AdamWState<float> opt;
  ViTWorkspace<float> ws;
  ObjectiveWorkspace<float> ow;
  ObjectiveConfig o;
  std::vector<double> p;
  LayerMasks masks;
  StepStats st;
  std::uint64_t k = 0;
  double exec = 0;
  std::vector<double> times;

  Setup(const VitConfig& c, int b, Scheme scheme, TeacherSource teacher, double p_max, bool all_tokens = false)
      : cfg(c), B(b), P(c), opt(P.size()), ws(c, b), ow(c, b), masks(c.depth, b) {
    ws.last_block_all_tokens = all_tokens;
    P.init(1);
    o.scheme = scheme;
    o.teacher = teacher;
    o.p_max = p_max;
    o.validate();
    p = o.block_probs(cfg);
  }
  double step(const float* images, const std::int32_t* labels, bool timed) {
    const auto t0 = Clock::now();
    masks.draw(/*seed=*/1234, k++, p, B);
    P.zero_grads();
    train_step_grads<float>(st, ws, ow, P, images, labels, masks, o, p, 0.5);
    clip_grad_norm(P, 1.0);
    adamw_step(P, opt, AdamWConfig{}, 1e-4);
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    if (timed) {
      times.push_back(t);
      exec += masks.executed_fraction();
    }
    return t;
  }
};

// One untimed step each, then `pairs` alternating timed steps (a, b, a, b, ...): t(b) / t(a) per pair.
std::vector<double> alternate(Setup& a, Setup& b, int pairs, const float* images, const std::int32_t* labels) {
  a.step(images, labels, false);  // warm-up
  b.step(images, labels, false);
  std::vector<double> ratio;
  for (int i = 0; i < pairs; ++i) {
    const double ta = a.step(images, labels, true);
    const double tb = b.step(images, labels, true);
    ratio.push_back(tb / ta);
  }
  return ratio;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int arg_int(int argc, char** argv, const char* name, int def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  return def;
}
const char* arg_str(int argc, char** argv, const char* name, const char* def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}
double arg_double(int argc, char** argv, const char* name, double def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atof(argv[i + 1]);
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = arg_int(argc, argv, "--threads", 2), pairs = arg_int(argc, argv, "--pairs", 12);
  const int B = arg_int(argc, argv, "--batch", 128);
  const double pm = arg_double(argc, argv, "--p-max", 0.3);
  const std::string compare = arg_str(argc, argv, "--compare", "p-max");
  if (threads < 1 || pairs < 1 || B < 1 || !(pm > 0 && pm < 1) || (compare != "p-max" && compare != "last-block")) {
    std::fprintf(stderr,
                 "usage: envit_dropout_ratio [--threads T>=1] [--pairs N>=1] [--p-max 0<P<1] [--batch B>=1]\n"
                 "                           [--compare p-max|last-block]\n");
    return 2;
  }
  set_num_threads(threads);
  const VitConfig cfg = VitConfig::tiny28();
  std::vector<float> images(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
  {
    CounterRng r(7, RngStream::init, 0xB1);
    for (auto& e : images) e = float(2.0 * r.uniform() - 1.0);
  }
  std::vector<std::int32_t> labels(static_cast<std::size_t>(B));
  for (int b = 0; b < B; ++b) labels[b] = b % cfg.classes;
  if (compare == "last-block") {
    std::printf("tiny28, batch %d, %d threads, %d pairs, scheme envit, p_M 0: last block on all tokens vs class "
                "tokens only (alternating steps)\n", B, threads, pairs);
    auto a = std::make_unique<Setup>(cfg, B, Scheme::envit, TeacherSource::full, 0.0, /*all_tokens=*/true);
    auto b = std::make_unique<Setup>(cfg, B, Scheme::envit, TeacherSource::full, 0.0, /*all_tokens=*/false);
    const std::vector<double> ratio = alternate(*a, *b, pairs, images.data(), labels.data());
    std::printf("t(all) %.4f s  t(class) %.4f s  median t(class)/t(all) %.3f  (pair ratios %.3f..%.3f)\n",
                median(a->times), median(b->times), median(ratio), *std::min_element(ratio.begin(), ratio.end()),
                *std::max_element(ratio.begin(), ratio.end()));
    return 0;
  }
  std::printf("tiny28, batch %d, %d threads, %d pairs per setting, p_M %.2f vs 0 (alternating steps)\n", B, threads,
              pairs, pm);
  std::printf("%-24s %10s %10s %12s %10s\n", "scheme / teacher", "t(0) s", "t(P) s", "median ratio", "executed");
  struct Case { const char* name; Scheme s; TeacherSource t; };
  for (const Case& c : {Case{"envit / full teacher", Scheme::envit, TeacherSource::full},
                        Case{"envit / self teacher", Scheme::envit, TeacherSource::self},
                        Case{"envit-sd (no KD)", Scheme::envit_sd, TeacherSource::full}}) {
    auto a = std::make_unique<Setup>(cfg, B, c.s, c.t, 0.0);
    auto b = std::make_unique<Setup>(cfg, B, c.s, c.t, pm);
    const std::vector<double> ratio = alternate(*a, *b, pairs, images.data(), labels.data());
    std::printf("%-24s %10.4f %10.4f %12.3f %10.3f\n", c.name, median(a->times), median(b->times), median(ratio),
                b->exec / pairs);
    std::fflush(stdout);
  }
  return 0;
}
