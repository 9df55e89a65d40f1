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
// Usage: envit_dropout_ratio [--threads N] [--pairs 12] [--p-max 0.3] [--batch 128]
// Model: VitConfig::tiny28() (28x28x1, patch 4, dim 192, depth 12, 3 heads, MLP 768, 6 exits).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli.hpp"
#include "envit/core/parallel.hpp"
#include "envit/core/rng.hpp"
#include "envit/core/stats.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/train/objective.hpp"
#include "envit/train/step.hpp"

namespace {

using namespace envit;
using Clock = std::chrono::steady_clock;

struct Setup {
  VitConfig cfg;
  int B;
  ViTParams<float> P;
  AdamWState<float> opt;
  StepWorkspace<float> w;
  ObjectiveConfig o;
  std::vector<double> p;
  std::uint64_t k = 0;
  double exec = 0;
  std::vector<double> times;

  Setup(const VitConfig& c, int b, Scheme scheme, TeacherSource teacher, double p_max)
      : cfg(c), B(b), P(c), opt(P.size()), w(c, b) {
    P.init(1);
    o.scheme = scheme;
    o.teacher = teacher;
    o.p_max = p_max;
    o.validate();
    p = o.block_probs(cfg);
  }
  double step(const float* images, const std::int32_t* labels, bool timed) {
    const auto t0 = Clock::now();
    train_step(w, P, opt, images, labels, B, o, p, StepSettings{/*seed=*/1234, k++, 0.5, 1e-4, 1.0, ClipMode::absolute, AdamWConfig{}});
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    if (timed) {
      times.push_back(t);
      exec += w.masks.executed_fraction();
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

int run(int threads, int pairs, int B, double pm) {
  set_num_threads(threads);
  const VitConfig cfg = VitConfig::tiny28();
  std::vector<float> images(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
  {
    CounterRng r(7, RngStream::init, 0xB1);
    for (auto& e : images) e = float(2.0 * r.uniform() - 1.0);
  }
  std::vector<std::int32_t> labels(static_cast<std::size_t>(B));
  for (int b = 0; b < B; ++b) labels[b] = b % cfg.classes;
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("envit_dropout_ratio: training-step time with structured dropout (p_M) against without, "
               "alternating steps in one process.", "envit_dropout_ratio");
  envit::cli::setup_app(app);
  int threads = 1, pairs = 12, batch = 128;
  double p_max = 0.3;
  envit::cli::add_threads_option(app, threads);
  app.add_option("--pairs", pairs, "timed step pairs per setting")->capture_default_str()->check(CLI::Range(1, 100000));
  envit::cli::add_real(app, "--p-max", p_max, "p_M of the dropout setting (0 < P < 1)", 1e-6, 0.999);
  app.add_option("--batch", batch, "batch size")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  return envit::cli::run(app, argc, argv, [&] { return run(threads, pairs, batch, p_max); });
}
