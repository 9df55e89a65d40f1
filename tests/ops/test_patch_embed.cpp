// Tests for ops/patch_embed.hpp: gradient checks in double (weight, bias, class token, position
// embedding), forward/backward against a direct (non-im2col) convolution in double and float,
// thread-count independence of the batch sums, a cache planned for batch 4 serving batch 2, errors.
#include "envit/ops/patch_embed.hpp"

#include "ops/vit_op_testing.hpp"

using namespace envit;
using namespace envit::testing;
using namespace envit::testing::vit;

TEST_CASE("patch embedding backward matches central differences", "[patch_embed][grad]") {
  auto s = GENERATE(values<PatchEmbedShape>({{2, 3, 8, 12, 4, 5},    // non-square grid 2x3
                                             {1, 1, 4, 4, 4, 3},     // one patch, batch 1
                                             {2, 2, 6, 4, 2, 7},     // grid 3x2
                                             {3, 1, 3, 3, 1, 6}}));  // 1x1 patches
  INFO(str(s));
  check_gradients(random_case<double>(s, 11, 12, 100));
}

TEST_CASE("patch embedding matches a direct convolution", "[patch_embed][ref]") {
  auto s = GENERATE(values<PatchEmbedShape>({{2, 3, 8, 12, 4, 5},
                                             {4, 1, 28, 28, 4, 17},
                                             {2, 3, 32, 16, 16, 24},
                                             {1, 2, 10, 15, 5, 33}}));
  INFO(str(s));
  auto c = random_case<double>(s, 21, 22, 200);
  auto ref = reference(c);

  SECTION("double") { require_matches(run(c), ref, 1e-13); }
  SECTION("float") {  // inputs are multiples of 2^-24, so their float copies are exact
    require_matches(run(c.cast<float>()), ref);
  }
}

TEST_CASE("patch embedding batch sums do not depend on the thread count", "[patch_embed][determinism]") {
  auto c = random_case<float>(PatchEmbedShape{8, 3, 32, 32, 4, 96}, 31, 32, 300);
  Run<PatchEmbedShape, float> one, two_a, two_b;
  {
    ThreadScope t(1);
    one = run(c);
  }
  {
    ThreadScope t(2);
    two_a = run(c);
    two_b = run(c);
  }
  require_same_bits(two_a, two_b);
  for (std::size_t i = 1; i < 4; ++i) {  // db, dcls, dpos: fixed summation order
    INFO(one.g.names[i]);
    REQUIRE(same_bits(one.g.v[i], two_a.g.v[i]));
  }
}

TEST_CASE("patch embedding cache planned for batch 4 serves batch 2", "[patch_embed][arena]") {
  auto c = random_case<float>(PatchEmbedShape{2, 3, 8, 12, 4, 10}, 41, 42, 400);
  auto exact = run(c);
  auto big = run(c, 4);
  require_same_bits(exact, big);
}

TEST_CASE("patch embedding backward accumulates", "[patch_embed][grad]") {
  check_accumulates(random_case<double>(PatchEmbedShape{2, 2, 6, 4, 2, 7}, 51, 52, 500));
}

TEST_CASE("patch embedding rejects images not divisible by the patch", "[patch_embed][error]") {
  ArenaPlan<float> plan;
  REQUIRE_THROWS_AS(patch_embed_cache_take<float>(plan, {2, 3, 30, 28, 4, 8}), ShapeError);
  REQUIRE_THROWS_AS(patch_embed_workspace_take<float>(plan, {2, 3, 28, 30, 4, 8}), ShapeError);
  REQUIRE_THROWS_AS(patch_embed_tokens({1, 1, 8, 8, 0, 8}), ShapeError);
  std::vector<float> buf(4096);
  PatchEmbedCache<float> c{buf.data()};
  PatchEmbedParams<float> p{buf.data(), buf.data(), buf.data(), buf.data()};
  REQUIRE_THROWS_AS(patch_embed_forward<float>(buf.data(), c, buf.data(), p, {1, 1, 9, 8, 4, 4}), ShapeError);
  REQUIRE(patch_embed_tokens({1, 3, 224, 224, 16, 768}) == 197);
  REQUIRE(patch_embed_tokens({1, 1, 28, 28, 4, 192}) == 50);
}
