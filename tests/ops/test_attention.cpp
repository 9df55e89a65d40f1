// Tests for ops/attention.hpp: gradient checks in double, float vs the naive double reference,
// accumulation, determinism with two threads, a cache planned for a larger batch, shape errors.
#include "envit/ops/attention.hpp"

#include "ops/vit_op_testing.hpp"

using namespace envit;
using namespace envit::testing;
using namespace envit::testing::vit;

using AttentionOp = Op<AttentionShape, double>;

TEST_CASE("attention backward matches central differences", "[attention][grad]") {
  auto s = GENERATE(values<AttentionShape>({{2, 5, 6, 2},    // D not a multiple of 16
                                            {1, 1, 4, 1},    // one token, one head
                                            {1, 3, 5, 1},    // batch 1, odd dim
                                            {3, 4, 8, 4},    // head dim 2
                                            {2, 6, 9, 3}}));
  INFO(str(s));
  check_gradients(random_case<double>(s, 11, 12, 100));
}

TEST_CASE("attention forward caches the row-stochastic probabilities", "[attention][ref]") {
  AttentionShape s{2, 7, 12, 3};
  const std::size_t n = AttentionOp::in_size(s);
  auto x = random_vec<double>(n, 5, -2.0, 2.0);
  auto p = make_params<double>(s, 7);
  auto cache = carve<double>([&](auto& a) { return attention_cache_take<double>(a, s); });
  std::vector<double> y(n);
  attention_forward<double>(y.data(), cache.value, x.data(), AttentionOp::params(p), s);
  RefAttCache rc;
  std::vector<double> yr(n);
  ref_attention(yr.data(), rc, x.data(), ptrs(p).data(), AttentionOp::ref_shape(s));
  require_close("y", y.data(), yr.data(), n, 1e-12, 1e-13);
  require_close("qkv", cache.value.qkv, rc.qkv.data(), rc.qkv.size(), 1e-12, 1e-13);
  require_close("att", cache.value.att, rc.att.data(), rc.att.size(), 1e-12, 1e-13);
  require_close("ctx", cache.value.ctx, rc.ctx.data(), rc.ctx.size(), 1e-12, 1e-13);
  for (std::ptrdiff_t r = 0; r < s.batch * s.heads * s.tokens; ++r) {
    double sum = 0;
    for (std::ptrdiff_t j = 0; j < s.tokens; ++j) sum += cache.value.att[r * s.tokens + j];
    REQUIRE(sum == Approx(1.0).epsilon(1e-14));
  }
}

// Float vs double, both GEMM backends: observed errors are at most ~2e-6 of each tensor's largest
// entry (forward and backward); the check allows 1e-5 of it (require_close_scaled).
TEST_CASE("attention float forward and backward match the naive double reference", "[attention][ref]") {
  auto s = GENERATE(values<AttentionShape>({{3, 17, 48, 3},
                                            {2, 16, 16, 1},
                                            {1, 33, 24, 2},
                                            {2, 7, 15, 5},
                                            {2, 50, 64, 4}}));
  INFO(str(s));
  auto backend = GENERATE(GemmBackend::packed, GemmBackend::eigen);
  BackendScope scope(backend);
  INFO(backend_name(backend));
  auto c = random_case<float>(s, 21, 22, 200, 2.0);
  require_matches(run(c), reference(c));
}

TEST_CASE("attention backward accumulates into dx and parameter gradients", "[attention][grad]") {
  check_accumulates(random_case<double>(AttentionShape{2, 5, 6, 2}, 31, 32, 300));
}

TEST_CASE("attention is bitwise deterministic with two threads", "[attention][determinism]") {
  ThreadScope threads(2);
  auto c = random_case<float>(AttentionShape{4, 50, 64, 4}, 41, 42, 400);
  require_same_bits(run(c), run(c));
}

TEST_CASE("attention cache planned for batch 4 serves batch 2", "[attention][arena]") {
  auto c = random_case<float>(AttentionShape{2, 9, 12, 3}, 51, 52, 500);
  auto exact = run(c);
  auto big = run(c, 4);
  require_same_bits(exact, big);
  ArenaPlan<float> p2, p4;
  attention_cache_take<float>(p2, {2, 9, 12, 3});
  attention_cache_take<float>(p4, {4, 9, 12, 3});
  REQUIRE(p4.total > p2.total);
}

TEST_CASE("attention rejects a dim not divisible by heads", "[attention][error]") {
  ArenaPlan<float> plan;
  REQUIRE_THROWS_AS(attention_cache_take<float>(plan, {2, 5, 6, 4}), ShapeError);
  REQUIRE_THROWS_AS(attention_workspace_take<float>(plan, {2, 5, 6, 0}), ShapeError);
  std::vector<float> buf(1024);
  AttentionCache<float> c{buf.data(), buf.data(), buf.data()};
  AttentionParams<float> pr{buf.data(), buf.data(), buf.data(), buf.data()};
  REQUIRE_THROWS_AS(attention_forward<float>(buf.data(), c, buf.data(), pr, {1, 2, 10, 3}), ShapeError);
}
