// Builds a tiny multi-exit ViT through the public headers and checks one forward pass.
#include <cmath>
#include <cstdio>
#include <vector>

#include <envit/model/vit.hpp>

int main() {
  envit::VitConfig cfg;
  cfg.image_size = 8; cfg.channels = 1; cfg.patch = 4; cfg.dim = 8; cfg.depth = 2; cfg.heads = 2;
  cfg.mlp_hidden = 16; cfg.classes = 3; cfg.exits = {1, 2};
  envit::ViTParams<float> P(cfg);
  P.init(1);
  envit::ViTWorkspace<float> ws(cfg, 2);
  std::vector<float> img(2 * 64, 0.5f), l0(6), l1(6);
  float* logits[] = {l0.data(), l1.data()};
  envit::vit_forward_full<float>(ws, P, img.data(), 2, logits);
  for (float v : l1)
    if (!std::isfinite(v)) return 1;
  std::printf("consumer ok: %zu parameters; %s\n", P.count(), envit::kernel_set_info().c_str());
  return 0;
}
