// Benchmarks of a whole EnViT training step and of complete-model inference in float on
// VitConfig::tiny28() (28x28x1, patch 4 -> 50 tokens, dim 192, depth 12, 3 heads, MLP 768,
// exits after every other block, 10 classes).
//
// BM_TrainStep/p_M_pct:{0,30}, batch 128, scheme envit: per iteration one complete step —
// draw the layer masks for step k (same seed for both settings, a new step index each iteration),
// zero gradients, the training forward with skipping, the complete-model teacher (only when some
// sample skips a block; it reruns only the blocks after each sample's first skip), the objective,
// backward, clip_grad_norm (1.0) and AdamW.
// Counters: images/s (items_per_second) and exec_frac, the fraction of (sample, block) pairs
// executed, averaged over the iterations (1.0 at p_M = 0; about 1 - mean(p_l) otherwise).
// Weights are updated every iteration, as in training; the data batch is fixed.
//
// BM_Inference/batch:{128,1}: vit_forward_full (every block for every sample, no caches kept for
// backward) producing the logits of every exit, as early-exit evaluation does.
// UseRealTime(): the work runs on OpenMP threads. No baseline here; see bench_ops_vit for the ops.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "envit/core/rng.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/train/objective.hpp"
#include "envit/train/step.hpp"

namespace {

using namespace envit;

std::vector<float> random_images(const VitConfig& cfg, int B, std::uint64_t seed) {
  CounterRng r(seed, RngStream::init, 0xB1);
  std::vector<float> v(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
  for (auto& e : v) e = float(2.0 * r.uniform() - 1.0);
  return v;
}

void BM_TrainStep(benchmark::State& state) {
  const double p_max = double(state.range(0)) / 100.0;
  const int B = 128;
  const VitConfig cfg = VitConfig::tiny28();
  ViTParams<float> P(cfg);
  P.init(1);
  AdamWState<float> opt(P.size());
  const AdamWConfig ac;
  StepWorkspace<float> w(cfg, B);
  ObjectiveConfig o;
  o.scheme = Scheme::envit;
  o.p_max = p_max;
  o.validate();
  const std::vector<double> p = o.block_probs(cfg);
  const std::vector<float> images = random_images(cfg, B, 7);
  std::vector<std::int32_t> labels(B);
  for (int b = 0; b < B; ++b) labels[b] = b % cfg.classes;

  std::uint64_t k = 0;
  auto step = [&] {
    train_step(w, P, opt, images.data(), labels.data(), B, o, p, StepSettings{/*seed=*/1234, k++, 0.5, 1e-4, 1.0, ClipMode::absolute, ac});
  };
  step();  // warm-up (thread pool, pack buffers); not timed, not counted
  double executed = 0;
  for (auto _ : state) {
    step();
    executed += w.masks.executed_fraction();
    // Pointers only: benchmark 1.7.1's DoNotOptimize ("+m,r") on a double lvalue miscompiles with
    // GCC 12 (the variable reads back as garbage afterwards).
    float* w = P.values();
    benchmark::DoNotOptimize(w);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * B);
  state.counters["exec_frac"] = benchmark::Counter(executed, benchmark::Counter::kAvgIterations);
  state.counters["loss"] = w.stats.loss;
  state.SetLabel("envit B=" + std::to_string(B) + ", workspace " + std::to_string(w.ws.bytes() >> 20) + " MiB");
}
BENCHMARK(BM_TrainStep)->ArgName("p_M_pct")->Arg(0)->Arg(30)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Inference(benchmark::State& state) {
  const int B = static_cast<int>(state.range(0));
  const VitConfig cfg = VitConfig::tiny28();
  ViTParams<float> P(cfg);
  P.init(1);
  ViTWorkspace<float> ws(cfg, B);
  const std::vector<float> images = random_images(cfg, B, 9);
  std::vector<std::vector<float>> logits(cfg.num_exits(), std::vector<float>(std::size_t(B) * cfg.classes));
  std::vector<float*> out;
  for (auto& l : logits) out.push_back(l.data());
  vit_forward_full<float>(ws, P, images.data(), B, out.data());  // warm-up
  for (auto _ : state) {
    const float* h = vit_forward_full<float>(ws, P, images.data(), B, out.data());
    benchmark::DoNotOptimize(h);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * B);
}
BENCHMARK(BM_Inference)->ArgName("batch")->Arg(128)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
