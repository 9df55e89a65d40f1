// Training with the caller's own layer masks: a fixed, deterministic layer-drop schedule instead of
// EnViT's random one. On step k, sample i skips block l (every block after the first exit) when
// (i + k + l) % 4 == 0: a quarter of the batch skips each such block, a different quarter every
// step. The loss is the library's EnViT objective (distillation from the complete model, exit
// losses scaled by 1 / (1 - p) with p = 1/4, the schedule's skip rate); the step is written out
// as its visible calls: masks, zero_grads, train_step_grads (forward, objective, backward),
// clip_grad_norm, adamw_step. Then per-exit test accuracy and real early exit at confidence 0.8.
//   layer_drop_schedule [DATA_DIR]
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "envit/data/idx.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/infer/macs.hpp"
#include "envit/optim/schedule.hpp"
#include "envit/train/step.hpp"
#include "envit/train/trainer.hpp"  // evaluate_exits

using namespace envit;

// Sample i runs block l at step k unless the schedule drops it there (blocks after `first_exit`).
bool runs(int l, int i, int k, int first_exit) { return l < first_exit || (i + k + l) % 4 != 0; }

int main(int argc, char** argv) try {
  const std::string dir = argc > 1 ? argv[1] : kFashionMnistDir;
  const Dataset full = fashion_mnist_load(dir, true), test = fashion_mnist_load(dir, false);
  std::vector<std::int64_t> first(2048), test_idx(1000);
  for (std::size_t i = 0; i < first.size(); ++i) first[i] = std::int64_t(i);
  for (std::size_t i = 0; i < test_idx.size(); ++i) test_idx[i] = std::int64_t(i);
  const Dataset train = dataset_subset(full, first.data(), std::int64_t(first.size()));
  const Normalizer norm(channel_stats(train));

  // 6 blocks, exits after blocks 2, 4 and 6.
  VitConfig cfg = vit_preset("readme").config;
  cfg.dim = 48, cfg.depth = 6, cfg.heads = 2, cfg.mlp_hidden = 96, cfg.exits = {2, 4, 6};
  const int B = 64, steps = 3 * int(train.n / B), first_exit = cfg.exits[0];
  ViTParams<float> P(cfg);
  P.init(5);
  AdamWState<float> opt(P.size());
  const LrSchedule lr{3e-3, 1e-5, 10, steps};

  ObjectiveConfig obj;  // EnViT's objective; its p_M is not used: the skip rates are ours
  obj.scheme = Scheme::envit;
  std::vector<double> p(std::size_t(cfg.depth), 0.0);  // per block, what the schedule skips
  for (int l = first_exit; l < cfg.depth; ++l) p[std::size_t(l)] = 0.25;
  StepWorkspace<float> w(cfg, B);
  std::vector<float> images(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
  std::vector<std::int32_t> labels(B);
  std::vector<std::int64_t> order(std::size_t(train.n));

  for (int k = 0; k < steps; ++k) {
    const int per_epoch = int(train.n / B), epoch = k / per_epoch;
    if (k % per_epoch == 0) epoch_permutation(order.data(), train.n, 5, std::uint32_t(epoch));
    make_batch(images.data(), labels.data(), train, order.data() + (k % per_epoch) * B, B, norm, Augment{}, 5,
               std::uint32_t(epoch));
    LayerMasks& m = w.masks;  // 1. the caller's masks: each list sorted, unique, < batch (checked)
    m.batch = B;
    for (int l = 0; l < cfg.depth; ++l) {
      m.exec[std::size_t(l)].clear();
      for (int i = 0; i < B; ++i)
        if (runs(l, i, k, first_exit)) m.exec[std::size_t(l)].push_back(i);
    }
    P.zero_grads();  // 2. gradients accumulate from here
    // 3. forward with these masks, the objective, backward
    train_step_grads<float>(w.stats, w.ws, w.ow, P, images.data(), labels.data(), m, obj, p, double(k) / steps);
    if (!std::isfinite(w.stats.loss)) throw NonFiniteError("non-finite loss at step " + std::to_string(k));
    const double gnorm = clip_grad_norm(P, 1.0);    // 4.
    adamw_step(P, opt, AdamWConfig{}, lr.at(k));    // 5.
    if (k % 16 == 0 || k == steps - 1)
      std::printf("step %3d  loss %.4f  grad norm %.3f  executed blocks %.3f\n", k, w.stats.loss, gnorm,
                  m.executed_fraction());
  }

  std::int64_t n = 0;
  const std::vector<std::int64_t> ok = evaluate_exits(P, test, test_idx, norm, 250, &n);
  for (int j = 0; j < cfg.num_exits(); ++j)
    std::printf("exit %d (after block %d): test accuracy %.1f%%\n", j, cfg.exits[j], 100.0 * double(ok[j]) / double(n));

  const int T = int(test_idx.size());
  std::vector<float> timages(std::size_t(T) * cfg.channels * cfg.image_size * cfg.image_size);
  std::vector<std::int32_t> tlabels(T);
  make_batch(timages.data(), tlabels.data(), test, test_idx.data(), T, norm, Augment{}, 0, 0);
  InferenceWorkspace<float> iws(cfg, T);
  iws.prepack(P);
  std::vector<int> exit(T), pred(T);
  early_exit_batch<float>(iws, P, timages.data(), T, ExitCriterion::confidence(0.8), {exit.data(), pred.data(), nullptr});
  std::vector<std::int64_t> left(std::size_t(cfg.num_exits()), 0);
  int correct = 0;
  for (int i = 0; i < T; ++i) {
    ++left[std::size_t(exit[std::size_t(i)])];
    correct += pred[std::size_t(i)] == tlabels[std::size_t(i)];
  }
  std::printf("confidence >= 0.80: accuracy %.1f%%, MAC speed-up %.2fx\n", 100.0 * correct / T,
              macs_speedup(vit_macs(cfg), left));
  return 100 * ok.back() > 30 * n ? 0 : 1;  // three times chance (10%), or something is broken
} catch (const Error& e) {
  std::fprintf(stderr, "layer_drop_schedule: %s\n", e.what());
  return 1;
}
