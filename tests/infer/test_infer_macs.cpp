// MAC counts of the multi-exit ViT against hand arithmetic, and eq. 19 on hand-made histograms.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "envit/infer/macs.hpp"

using namespace envit;

namespace {
// 4x4x2 images, patch 2: Np = 4 patches, N = 5 tokens, K = 2*2*2 = 8; D = 6, H = 2 (E = 3),
// F = 10, C = 3, L = 3, exits after blocks 1, 2, 3.
VitConfig tiny() {
  VitConfig c;
  c.image_size = 4; c.channels = 2; c.patch = 2;
  c.dim = 6; c.depth = 3; c.heads = 2; c.mlp_hidden = 10; c.classes = 3;
  c.exits = {1, 2, 3};
  return c;
}
}  // namespace

TEST_CASE("MAC counts of a tiny config by hand", "[infer][macs]") {
  VitMacs m = vit_macs(tiny());
  // embed  = Np * K * D = 4 * 8 * 6                      = 192
  CHECK(m.embed == 192);
  // qkv    = N * D * 3D = 5 * 6 * 18                     = 540
  CHECK(m.qkv == 540);
  // scores = H * N * N * E = 2 * 5 * 5 * 3               = 150
  CHECK(m.scores == 150);
  // attn_v = H * N * N * E                               = 150
  CHECK(m.attn_v == 150);
  // proj   = N * D * D = 5 * 6 * 6                       = 180
  CHECK(m.proj == 180);
  // fc1    = N * D * F = 5 * 6 * 10                      = 300
  CHECK(m.fc1 == 300);
  // fc2    = N * F * D                                   = 300
  CHECK(m.fc2 == 300);
  // block  = 540 + 150 + 150 + 180 + 300 + 300           = 1620
  //        = N (4 D^2 + 2 D F) + 2 N^2 D = 5 * 264 + 300 = 1620
  CHECK(m.block == 1620);
  // head   = D * C = 6 * 3                               = 18
  CHECK(m.head == 18);
  // C_0 = 192 + 1 * 1620 + 1 * 18 = 1830
  // C_1 = 192 + 2 * 1620 + 2 * 18 = 3468
  // C_2 = 192 + 3 * 1620 + 3 * 18 = 5106
  CHECK(m.to_exit(0) == 1830);
  CHECK(m.to_exit(1) == 3468);
  CHECK(m.to_exit(2) == 5106);
  // full = 192 + 3 * 1620 + 18 (final head only) = 5070
  CHECK(m.full() == 5070);
  CHECK_THROWS_AS(m.to_exit(3), ValueError);
  CHECK_THROWS_AS(m.to_exit(-1), ValueError);

  // Exits after blocks 2 and 3 only: C_0 = 192 + 2 * 1620 + 18 = 3450, C_1 = 192 + 4860 + 36 = 5088.
  VitConfig c2 = tiny();
  c2.exits = {2, 3};
  VitMacs m2 = vit_macs(c2);
  CHECK(m2.to_exit(0) == 3450);
  CHECK(m2.to_exit(1) == 5088);
  CHECK(m2.full() == 5070);
}

TEST_CASE("ViT-B/16 MACs match the published 17.56 GMACs", "[infer][macs]") {
  // embed = 196 * 768 * 768 = 115,605,504
  // block = 197 * (4 * 768^2 + 2 * 768 * 3072) + 2 * 197^2 * 768 = 1,394,343,936 + 59,610,624
  //       = 1,453,954,560
  // full  = embed + 12 * block + 768 * 1000 = 17,563,828,224  (fvcore: 17.6 G)
  VitMacs m = vit_macs(VitConfig::vit_b16(1000));
  CHECK(m.embed == 115605504LL);
  CHECK(m.block == 1453954560LL);
  CHECK(m.full() == 17563828224LL);
}

TEST_CASE("Eq. 19 speed-up on a hand-made exit histogram", "[infer][macs]") {
  VitMacs m = vit_macs(tiny());
  // 2 samples at exit 0, 1 at exit 1, 1 at exit 2:
  //   spent = 2 * 1830 + 3468 + 5106 = 12234,  speed-up = 4 * 5070 / 12234
  std::vector<std::int64_t> h{2, 1, 1};
  CHECK(macs_speedup(m, h) == Approx(20280.0 / 12234.0).epsilon(1e-15));
  CHECK(macs_mean(m, h) == Approx(12234.0 / 4.0).epsilon(1e-15));
  // Everyone at the final exit: 5070 / 5106 < 1 (the intermediate heads are overhead).
  CHECK(macs_speedup(m, {0, 0, 7}) == Approx(5070.0 / 5106.0).epsilon(1e-15));
  // Everyone at exit 0: 5070 / 1830.
  CHECK(macs_speedup(m, {5, 0, 0}) == Approx(5070.0 / 1830.0).epsilon(1e-15));
  // Generic overload with the other baseline convention (C_{M-1}): 4 * 5106 / 12234.
  std::int64_t cost[3] = {1830, 3468, 5106};
  CHECK(macs_speedup(5106, cost, h.data(), 3) == Approx(4.0 * 5106.0 / 12234.0).epsilon(1e-15));
  CHECK_THROWS_AS(macs_speedup(m, {0, 0, 0}), ValueError);
  CHECK_THROWS_AS(macs_speedup(m, {1, 2}), ShapeError);
  CHECK_THROWS_AS(macs_speedup(m, {1, -1, 2}), ValueError);
}
