// bench/ab/main.cpp — envit_ab: two builds of envit (sides A and B) timed against each other
// inside ONE process, passes alternating A, B, B, A, ... so that the machine's swings (2-thread
// timings on a shared VM move 10-40% between processes) hit both sides alike. Prints each side's
// median time per pass, the median over pairs of t(B) / t(A), and whether the two sides' results
// (every exit's logits, or the parameters after the training steps) are bitwise equal.
//
// bench/ab_compare.sh builds it from two git revisions; the CMake target envit_ab builds both
// sides from the current tree (a self-check: equal results, ratio about 1).
//
// Usage: envit_ab [--mode latency|infer|train] [--config tiny28|vitb16|readme] [--batch B] [--threads T]
//                 [--pairs N] [--iters I] [--p-max P] [--expect-equal 1|0]     (--help lists them)
//   latency: inference at batch 1; infer: inference at --batch (default 128); train: training
//   steps (scheme envit, full teacher, p_M --p-max) at --batch. Each timed half runs --iters passes
//   (default: 20 latency, 2 infer, 1 train). --expect-equal 1 (default) exits with status 1 when
//   the results differ, as they should not for changes that keep every float sum.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ab_side.h"
#include "cli.hpp"
#include "envit/core/stats.hpp"
#include "envit/model/config.hpp"

extern "C" AbSide envit_ab_side_ab_a();
extern "C" AbSide envit_ab_side_ab_b();

namespace {

using envit::median;

struct Args {
  std::string mode = "latency", config = "tiny28";
  int batch = 128, threads = 1, pairs = 30, iters = 1, expect_equal = 1;
  double p_max = 0.0;
};

int run(Args o, const CLI::App& app) {
  const std::string& mode = o.mode;
  const std::string& config = o.config;
  if (app.count("--batch") == 0) o.batch = mode == "latency" ? 1 : 128;
  if (mode == "latency" && o.batch != 1)
    throw envit::cli::UsageError("--mode latency runs batch 1, got --batch " + std::to_string(o.batch));
  if (app.count("--iters") == 0) o.iters = mode == "latency" ? 20 : mode == "infer" ? 2 : 1;
  const long batch = o.batch, threads = o.threads, pairs = o.pairs, iters = o.iters;
  const double p_max = o.p_max;
  const bool expect_equal = o.expect_equal != 0;

  // The model of the library's preset (the driver's copy of the library: names and shapes only).
  const envit::VitConfig m = envit::vit_preset(config == "vitb16" ? "vit-b16" : config).config;
  AbConfig c{m.dim, m.depth, m.heads, m.mlp_hidden, m.image_size, m.channels, m.patch, m.classes, 0, 0, 0.0, nullptr};
  c.batch = int(batch);
  c.train = mode == "train";
  c.p_max = p_max;
  std::vector<float> images(std::size_t(batch) * c.channels * c.image * c.image);
  std::uint64_t s = 0x9E3779B97F4A7C15ull;  // fixed pseudo-random images in [-1, 1)
  for (auto& e : images) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    e = float(double(s >> 40) / double(1ull << 24) * 2.0 - 1.0);
  }
  c.images = images.data();

  const AbSide A = envit_ab_side_ab_a(), B = envit_ab_side_ab_b();
  A.set_threads(int(threads));
  B.set_threads(int(threads));
  void* a = A.create(&c);
  void* b = B.create(&c);
  if (!a || !b) return 1;

  // One untimed pass each (warm-up, and the results compared below), then the timed pairs.
  A.run(a, 1);
  B.run(b, 1);
  const float *ra = nullptr, *rb = nullptr;
  const std::size_t na = A.result(a, &ra), nb = B.result(b, &rb);
  double max_diff = na == nb ? 0.0 : INFINITY;
  bool equal = na == nb && std::memcmp(ra, rb, na * sizeof(float)) == 0;
  for (std::size_t i = 0; na == nb && i < na; ++i) max_diff = std::max(max_diff, double(std::fabs(ra[i] - rb[i])));

  std::vector<double> ta, tb, ratio;
  for (long p = 0; p < pairs; ++p) {
    double x, y;
    if (p % 2 == 0) x = A.run(a, int(iters)), y = B.run(b, int(iters));
    else y = B.run(b, int(iters)), x = A.run(a, int(iters));
    ta.push_back(x / double(iters));
    tb.push_back(y / double(iters));
    ratio.push_back(y / x);
  }
  std::printf("envit_ab: %s, %s, batch %ld, %ld threads, %ld pairs of %ld passes%s\n", config.c_str(), mode.c_str(),
              batch, threads, pairs, iters, mode == "train" ? (", p_M " + std::to_string(p_max)).c_str() : "");
  std::printf("A %.4f ms  B %.4f ms  median t(B)/t(A) %.3f  (pairs %.3f..%.3f)\n", median(ta) * 1e3, median(tb) * 1e3,
              median(ratio), *std::min_element(ratio.begin(), ratio.end()), *std::max_element(ratio.begin(), ratio.end()));
  if (equal) std::printf("results: bitwise equal (%zu floats)\n", na);
  else std::printf("results: DIFFER (%zu vs %zu floats, max |A - B| %.3g)\n", na, nb, max_diff);
  A.destroy(a);
  B.destroy(b);
  return equal || !expect_equal ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("envit_ab: two builds of envit timed against each other in one process.", "envit_ab");
  envit::cli::setup_app(app);
  Args o;
  app.add_option("--mode", o.mode, "latency (batch 1), infer (--batch), train (training steps at --batch)")
      ->capture_default_str()->check(CLI::IsMember({"latency", "infer", "train"}));
  std::vector<std::string> configs = envit::vit_preset_names();
  configs.push_back("vitb16");  // = vit-b16
  app.add_option("--config", o.config, "model: a preset of envit/model/config.hpp")
      ->capture_default_str()->check(CLI::IsMember(configs));
  app.add_option("--batch", o.batch, "batch size (default: 1 for latency, 128 otherwise)")->check(CLI::Range(1, 1 << 16));
  envit::cli::add_threads_option(app, o.threads);
  app.add_option("--pairs", o.pairs, "timed pairs of halves")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--iters", o.iters, "passes per timed half (default: 20 latency, 2 infer, 1 train)")
      ->check(CLI::Range(1, 100000));
  envit::cli::add_real(app, "--p-max", o.p_max, "train: EnViT's p_M", 0, 0.999);
  app.add_option("--expect-equal", o.expect_equal, "1: exit with status 1 when the two sides' results differ")
      ->capture_default_str()->check(CLI::Range(0, 1));
  return envit::cli::run(app, argc, argv, [&] { return run(o, app); });
}
