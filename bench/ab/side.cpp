// bench/ab/side.cpp — one side of envit_ab: a model set up from AbConfig, run for N passes.
// Compiled once per side with -DENVIT_AB_SIDE=<name> and that side's include directory; the
// library's namespace is renamed to <name> below so both sides link into one program. Uses
// train_step (envit/train/step.hpp) and InferenceWorkspace: revisions without them do not compile.
#ifndef ENVIT_AB_SIDE
#error "compile with -DENVIT_AB_SIDE=<name> (bench/ab_compare.sh does)"
#endif
#include "ab_side.h"

#define envit ENVIT_AB_SIDE
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <vector>

#include "envit/core/parallel.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/train/objective.hpp"
#include "envit/train/step.hpp"

namespace {

using namespace envit;

struct Side {
  VitConfig cfg;
  int B = 0;
  bool train = false;
  const float* images = nullptr;
  ViTParams<float> P;
  // inference
  std::unique_ptr<InferenceWorkspace<float>> iws;
  std::vector<float> logits;
  // training (scheme envit, full teacher)
  std::unique_ptr<AdamWState<float>> opt;
  std::unique_ptr<StepWorkspace<float>> w;
  ObjectiveConfig oc;
  std::vector<double> p;
  std::vector<std::int32_t> labels;
  std::uint64_t k = 0;

  Side(const VitConfig& c, const AbConfig& a) : cfg(c), B(a.batch), train(a.train != 0), images(a.images),
                                                 P(c, /*with_grads=*/a.train != 0) {
    P.init(1);
    if (!train) {
      iws = std::make_unique<InferenceWorkspace<float>>(cfg, B);
      iws->prepack(P);
      logits.assign(std::size_t(cfg.num_exits()) * B * cfg.classes, 0.0f);
      return;
    }
    opt = std::make_unique<AdamWState<float>>(P.size());
    w = std::make_unique<StepWorkspace<float>>(cfg, B);
    oc.scheme = Scheme::envit;
    oc.p_max = a.p_max;
    oc.validate();
    p = oc.block_probs(cfg);
    labels.resize(std::size_t(B));
    for (int b = 0; b < B; ++b) labels[std::size_t(b)] = b % cfg.classes;
  }
  void pass() {
    if (!train) {
      infer_all_exits<float>(*iws, P, images, B, logits.data(), std::ptrdiff_t(B) * cfg.classes);
      return;
    }
    train_step(*w, P, *opt, images, labels.data(), B, oc, p, StepSettings{/*seed=*/1234, k++, 0.5, 1e-4, 1.0, ClipMode::absolute, AdamWConfig{}});
  }
};

void* create(const AbConfig* a) {
  try {
    VitConfig c;
    c.dim = a->dim, c.depth = a->depth, c.heads = a->heads, c.mlp_hidden = a->mlp;
    c.image_size = a->image, c.channels = a->channels, c.patch = a->patch, c.classes = a->classes;
    c.exits = VitConfig::every_other(c.depth);
    c.validate();
    return new Side(c, *a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "envit_ab: side setup failed: %s\n", e.what());
    return nullptr;
  }
}
void set_threads(int t) { set_num_threads(t); }
double run(void* s, int iters) {
  auto* side = static_cast<Side*>(s);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) side->pass();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
std::size_t result(void* s, const float** out) {
  auto* side = static_cast<Side*>(s);
  if (!side->train) {
    *out = side->logits.data();
    return side->logits.size();
  }
  *out = side->P.values();
  return side->P.size();
}
void destroy(void* s) { delete static_cast<Side*>(s); }

}  // namespace

#undef envit
#define ENVIT_AB_CAT2(a, b) a##b
#define ENVIT_AB_CAT(a, b) ENVIT_AB_CAT2(a, b)
#define ENVIT_AB_STR2(a) #a
#define ENVIT_AB_STR(a) ENVIT_AB_STR2(a)
extern "C" AbSide ENVIT_AB_CAT(envit_ab_side_, ENVIT_AB_SIDE)() {
  return AbSide{ENVIT_AB_STR(ENVIT_AB_SIDE), create, set_threads, run, result, destroy};
}
