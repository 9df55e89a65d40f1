// Tests for ops/mlp.hpp: gradient checks in double, float vs the naive double reference,
// accumulation, determinism with two threads, a cache planned for more rows.
#include "envit/ops/mlp.hpp"

#include "ops/vit_op_testing.hpp"

using namespace envit;
using namespace envit::testing;
using namespace envit::testing::vit;

TEST_CASE("mlp backward matches central differences", "[mlp][grad]") {
  auto s = GENERATE(values<MlpShape>({{7, 6, 10}, {1, 1, 1}, {1, 3, 5}, {10, 6, 24}}));
  INFO(str(s));
  check_gradients(random_case<double>(s, 11, 12, 100, 2.0));
}

// Float vs double, both GEMM backends: observed errors are at most ~2e-6 of each tensor's largest
// entry (forward and backward); the check allows 1e-5 of it (require_close_scaled).
TEST_CASE("mlp float forward and backward match the naive double reference", "[mlp][ref]") {
  auto s = GENERATE(values<MlpShape>({{17, 16, 64}, {33, 15, 17}, {5, 48, 192}, {64, 24, 96}}));
  INFO(str(s));
  auto backend = GENERATE(GemmBackend::packed, GemmBackend::eigen);
  BackendScope scope(backend);
  INFO(backend_name(backend));
  auto c = random_case<float>(s, 21, 22, 200, 2.0);
  auto got = run(c);
  auto ref = reference(c);
  // The hidden pre-activation and the GELU output, as cached by the forward.
  require_close_scaled("h", got.cache.value.h, ref.cache.h.data(), ref.cache.h.size());
  require_close_scaled("a", got.cache.value.a, ref.cache.a.data(), ref.cache.a.size());
  require_matches(got, ref);
}

TEST_CASE("mlp backward accumulates and allows a null dx", "[mlp][grad]") {
  check_accumulates(random_case<double>(MlpShape{7, 6, 10}, 31, 32, 300));
}

TEST_CASE("mlp is bitwise deterministic with two threads", "[mlp][determinism]") {
  ThreadScope threads(2);
  auto c = random_case<float>(MlpShape{200, 64, 256}, 41, 42, 400);
  require_same_bits(run(c), run(c));
}

TEST_CASE("mlp cache planned for 4 batches of rows serves 2", "[mlp][arena]") {
  auto c = random_case<float>(MlpShape{2 * 9, 12, 20}, 51, 52, 500);
  auto exact = run(c);
  auto big = run(c, 4 * 9);
  require_same_bits(exact, big);
}

TEST_CASE("mlp rejects invalid shapes", "[mlp][error]") {
  ArenaPlan<float> plan;
  REQUIRE_THROWS_AS(mlp_cache_take<float>(plan, {4, 0, 8}), ShapeError);
  REQUIRE_THROWS_AS(mlp_workspace_take<float>(plan, {-1, 4, 8}), ShapeError);
}
