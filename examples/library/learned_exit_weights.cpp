// A training scheme that is not in the library, written in this one file on the public low-level
// step: deep supervision with learned exit weights (homoscedastic uncertainty weighting, Kendall,
// Gal & Cipolla, CVPR 2018). With CE_j exit j's cross-entropy (sum over the batch / B) and one
// learned log-variance s_j per exit,
//   L = sum_j [ exp(-s_j) CE_j + s_j ]
//   dL/dz_j = exp(-s_j) dCE_j/dz_j  (handed to the model's backward)
//   dL/ds_j = 1 - exp(-s_j) CE_j    (s_j stepped here, plain SGD)
// so an exit whose loss stays high is weighted down (its s_j rises towards log CE_j). The model is
// then evaluated with real early exit under the patience rule (an exit's prediction unchanged over
// two consecutive exits) and under confidence thresholds (0.6; and 1.1, which never fires: every
// sample at the last exit).
//   learned_exit_weights [DATA_DIR]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "envit/data/idx.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/infer/macs.hpp"
#include "envit/ops/cross_entropy.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/optim/schedule.hpp"
#include "envit/model/vit.hpp"

using namespace envit;

int main(int argc, char** argv) try {
  const std::string dir = argc > 1 ? argv[1] : kFashionMnistDir;
  const Dataset full = fashion_mnist_load(dir, true), test = fashion_mnist_load(dir, false);
  std::vector<std::int64_t> first(2048);
  for (std::size_t i = 0; i < first.size(); ++i) first[i] = std::int64_t(i);
  const Dataset train = dataset_subset(full, first.data(), std::int64_t(first.size()));
  const Normalizer norm(channel_stats(train));

  // 4 blocks, exits after blocks 1, 2, 3 and 4.
  VitConfig cfg = vit_preset("readme").config;
  cfg.dim = 48, cfg.depth = 4, cfg.heads = 2, cfg.mlp_hidden = 96, cfg.exits = {1, 2, 3, 4};
  const int M = cfg.num_exits(), C = cfg.classes, B = 64, steps = 3 * int(train.n / B);
  const std::size_t Mz = std::size_t(M);
  ViTParams<float> P(cfg);
  P.init(11);
  AdamWState<float> opt(P.size());
  const LrSchedule lr{3e-3, 1e-5, 10, steps};

  // Everything a step touches, sized once: the model workspace, the masks (every sample runs every
  // block: this scheme drops none), and the scheme's own buffers.
  ViTWorkspace<float> ws(cfg, B);
  LayerMasks masks(cfg.depth, B);
  masks.all(B);
  std::vector<ExitOut<float>> out(Mz);
  std::vector<ExitGrad<float>> grads(Mz);
  std::vector<std::vector<float>> probs(Mz, std::vector<float>(std::size_t(B) * C));
  std::vector<std::vector<float>> dz(Mz, std::vector<float>(std::size_t(B) * C));
  std::vector<double> s(Mz, 0.0), ce(Mz);  // s_j = 0: every weight 1 at first
  const double lr_s = 0.05;
  std::vector<float> images(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
  std::vector<std::int32_t> labels(B), lab(B);
  std::vector<std::int64_t> order(std::size_t(train.n));

  for (int k = 0; k < steps; ++k) {
    const int per_epoch = int(train.n / B), epoch = k / per_epoch;
    if (k % per_epoch == 0) epoch_permutation(order.data(), train.n, 11, std::uint32_t(epoch));
    make_batch(images.data(), labels.data(), train, order.data() + (k % per_epoch) * B, B, norm, Augment{}, 11,
               std::uint32_t(epoch));
    P.zero_grads();
    vit_forward_exits<float>(out, ws, P, images.data(), masks);  // per-exit logits of the rows that reached it
    double loss = 0;
    for (int j = 0; j < M; ++j) {  // the scheme: loss and dL/dlogits per exit
      const ExitOut<float>& e = out[std::size_t(j)];
      for (int i = 0; i < e.n; ++i) lab[std::size_t(i)] = labels[std::size_t(e.rows[i])];
      float* d = dz[std::size_t(j)].data();
      std::fill(d, d + std::size_t(e.n) * C, 0.0f);
      ce[std::size_t(j)] = cross_entropy_forward<float>(probs[std::size_t(j)].data(), e.logits, lab.data(), e.n, C,
                                                        1.0f / float(B));
      const double w = std::exp(-s[std::size_t(j)]);
      cross_entropy_backward<float>(d, probs[std::size_t(j)].data(), lab.data(), e.n, C, float(w / B));
      grads[std::size_t(j)] = {d, nullptr};
      loss += w * ce[std::size_t(j)] + s[std::size_t(j)];
    }
    vit_backward_exits<float>(P, ws, grads, masks);  // the caller's gradients in, parameter gradients out
    const double gnorm = clip_grad_norm(P, 1.0);
    adamw_step(P, opt, AdamWConfig{}, lr.at(k));
    for (int j = 0; j < M; ++j) s[std::size_t(j)] -= lr_s * (1.0 - std::exp(-s[std::size_t(j)]) * ce[std::size_t(j)]);
    if (k % 16 == 0 || k == steps - 1) {
      std::printf("step %3d  loss %.4f  grad norm %.3f  exit weights", k, loss, gnorm);
      for (int j = 0; j < M; ++j) std::printf(" %.3f", std::exp(-s[std::size_t(j)]));
      std::printf("\n");
    }
  }

  // Real early exit on 1000 test images: samples leave, later blocks never run on them.
  const int T = 1000;
  std::vector<std::int64_t> idx(T);
  for (int i = 0; i < T; ++i) idx[std::size_t(i)] = i;
  std::vector<float> timages(std::size_t(T) * cfg.channels * cfg.image_size * cfg.image_size);
  std::vector<std::int32_t> tlabels(T);
  make_batch(timages.data(), tlabels.data(), test, idx.data(), T, norm, Augment{}, 0, 0);
  InferenceWorkspace<float> iws(cfg, T);
  iws.prepack(P);
  std::vector<int> exit(T), pred(T);
  double final_acc = 0;
  bool faster = false;
  for (const ExitCriterion& rule : {ExitCriterion::patience(2), ExitCriterion::confidence(0.6),
                                    ExitCriterion::confidence(1.1)}) {
    early_exit_batch<float>(iws, P, timages.data(), T, rule, {exit.data(), pred.data(), nullptr});
    std::vector<std::int64_t> left(Mz, 0);
    int correct = 0;
    for (int i = 0; i < T; ++i) {
      ++left[std::size_t(exit[std::size_t(i)])];
      correct += pred[std::size_t(i)] == tlabels[std::size_t(i)];
    }
    const double speedup = macs_speedup(vit_macs(cfg), left);
    std::printf("%-10s threshold %.1f: accuracy %.1f%%, MAC speed-up %.2fx, exits", exit_rule_name(rule.rule),
                rule.thresholds[0], 100.0 * correct / T, speedup);
    for (int j = 0; j < M; ++j) std::printf(" %lld", (long long)left[std::size_t(j)]);
    std::printf("\n");
    if (rule.rule == ExitRule::confidence && rule.thresholds[0] > 1) final_acc = double(correct) / T;  // all at the last exit
    if (rule.rule == ExitRule::patience) faster = speedup > 1.0;
  }
  return final_acc > 0.3 && faster ? 0 : 1;  // three times chance, and the patience rule lets samples leave
} catch (const Error& e) {
  std::fprintf(stderr, "learned_exit_weights: %s\n", e.what());
  return 1;
}
