// bench/ab/ab_side.h — the plain-C interface between envit_ab's driver and its two sides.
// Each side is bench/ab/side.cpp compiled against one source tree of envit with the library's
// namespace renamed (-DENVIT_AB_SIDE=<name>), so two versions of the header-only library live in
// one process without sharing a symbol. Nothing here may use the library's namespace name.
#pragma once
#include <cstddef>

extern "C" {

struct AbConfig {
  int dim, depth, heads, mlp, image, channels, patch, classes;  // model (exits: every other block)
  int batch;
  int train;     // 0: complete-model inference (infer_all_exits, pre-packed weights); 1: training step
  double p_max;  // training: EnViT's p_M (scheme envit, full teacher)
  const float* images;  // (batch, channels, image, image), owned by the driver
};

struct AbSide {
  const char* name;
  void* (*create)(const AbConfig* cfg);  // nullptr and a message on stderr on error
  void (*set_threads)(int threads);
  double (*run)(void* side, int iters);  // seconds for `iters` passes / steps
  // The result to compare: every exit's logits of the last pass (inference) or the parameters
  // after the steps run so far (training). Returns the count and points *out at the values.
  std::size_t (*result)(void* side, const float** out);
  void (*destroy)(void* side);
};

}  // extern "C"
