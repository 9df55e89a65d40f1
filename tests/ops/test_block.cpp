// Tests for ops/block.hpp: gradient checks in double (input and all twelve parameters), float vs
// the naive double reference, accumulation, determinism with two threads, a cache planned for
// batch 4 serving batch 2, an empty batch, argument errors, and the first-token (class-token)
// forward and backward against the full block.
#include "envit/ops/block.hpp"

#include "ops/vit_op_testing.hpp"

using namespace envit;
using namespace envit::testing;
using namespace envit::testing::vit;

TEST_CASE("block backward matches central differences", "[block][grad]") {
  auto s = GENERATE(values<BlockShape>({{2, 5, 6, 2, 10},   // D = 6, H = 2, N = 5
                                        {1, 1, 4, 1, 8},    // one token, one head, batch 1
                                        {3, 3, 9, 3, 5},    // F < D
                                        {1, 4, 5, 1, 7}}));
  INFO(str(s));
  check_gradients(random_case<double>(s, 11, 12, 100, 2.0));
}

TEST_CASE("block double forward and backward match the naive reference", "[block][ref]") {
  auto c = random_case<double>(BlockShape{2, 7, 12, 3, 20}, 13, 14, 150, 2.0);
  require_matches(run(c), reference(c), 1e-12);
}

// Float vs double, both GEMM backends: observed errors are at most ~2e-6 of each tensor's largest
// entry (forward and backward); the check allows 1e-5 of it (require_close_scaled). The reference
// runs with eps as the float run sees it, double(float(1e-6)).
TEST_CASE("block float forward and backward match the naive double reference", "[block][ref]") {
  auto s = GENERATE(values<BlockShape>({{2, 17, 48, 3, 192},
                                        {3, 16, 16, 1, 64},
                                        {1, 9, 15, 5, 33},
                                        {2, 50, 64, 4, 256}}));
  INFO(str(s));
  auto backend = GENERATE(GemmBackend::packed, GemmBackend::eigen);
  BackendScope scope(backend);
  INFO(backend_name(backend));
  auto c = random_case<float>(s, 21, 22, 200, 2.0);
  require_matches(run(c), reference(c));
}

TEST_CASE("block backward accumulates into dx and parameter gradients", "[block][grad]") {
  check_accumulates(random_case<double>(BlockShape{2, 5, 6, 2, 10}, 31, 32, 300));
}

TEST_CASE("block is bitwise deterministic with two threads", "[block][determinism]") {
  ThreadScope threads(2);
  auto c = random_case<float>(BlockShape{4, 50, 64, 4, 256}, 41, 42, 400);
  require_same_bits(run(c), run(c));
}

TEST_CASE("block cache planned for batch 4 serves batch 2", "[block][arena]") {
  auto c = random_case<float>(BlockShape{2, 9, 12, 3, 24}, 51, 52, 500);
  auto exact = run(c);
  auto big = run(c, 4);
  require_same_bits(exact, big);
}

TEST_CASE("block with an empty batch leaves outputs and gradients untouched", "[block][arena]") {
  using O = Op<BlockShape, double>;
  BlockShape s{0, 5, 6, 2, 10};
  auto p = make_params<double>(BlockShape{2, 5, 6, 2, 10}, 600);
  auto cache = carve<double>([&](auto& a) { return block_cache_take<double>(a, {2, 5, 6, 2, 10}); });
  auto ws = carve<double>([&](auto& a) { return block_workspace_take<double>(a, {2, 5, 6, 2, 10}); });
  std::vector<double> y(1, 7.0), x(1, 3.0), dy(1, 1.0), dx(1, 5.0);
  auto g = p.zeros_like();
  block_forward<double>(y.data(), cache.value, x.data(), O::params(p), s, 1e-6);
  block_backward<double>(dx.data(), O::grads(g), dy.data(), x.data(), cache.value, O::params(p), s, ws.value);
  REQUIRE(y[0] == 7.0);
  REQUIRE(dx[0] == 5.0);
  for (auto& t : g.v)
    for (double v : t) REQUIRE(v == 0.0);
}

TEST_CASE("block argument errors", "[block][error]") {
  using O = Op<BlockShape, float>;
  ArenaPlan<float> plan;
  REQUIRE_THROWS_AS(block_cache_take<float>(plan, {2, 5, 6, 4, 8}), ShapeError);   // 6 % 4
  REQUIRE_THROWS_AS(block_workspace_take<float>(plan, {2, 5, 6, 2, 0}), ShapeError);
  BlockShape s{1, 3, 4, 2, 8};
  auto p = make_params<float>(s, 700);
  auto cache = carve<float>([&](auto& a) { return block_cache_take<float>(a, s); });
  std::vector<float> x(12, 1.0f), dy(12, 1.0f), dx(12, 0.0f);
  REQUIRE_THROWS_AS(block_forward<float>(x.data(), cache.value, x.data(), O::params(p), s, 1e-6f), ValueError);
  // A workspace planned for one thread refuses to run LayerNorm backward with two.
  BlockWorkspace<float> w1;
  Arena<float> arena1;
  {
    ThreadScope one(1);
    ArenaPlan<float> pl;
    block_workspace_take<float>(pl, s);
    arena1 = Arena<float>(pl.total);
    w1 = block_workspace_take<float>(arena1, s);
  }
  ThreadScope two(2);
  std::vector<float> y(12);
  block_forward<float>(y.data(), cache.value, x.data(), O::params(p), s, 1e-6f);
  auto g = p.zeros_like();
  REQUIRE_THROWS_AS(block_backward<float>(dx.data(), O::grads(g), dy.data(), x.data(), cache.value,
                                          O::params(p), s, w1),
                    ValueError);
}

// The last block of an inference pass runs on class tokens only (block_forward_first_token). Its
// rows must be the full block's, bitwise with every GEMM backend (all are row-invariant): packed and
// Eigen float, double; every other row of y must be left alone.
TEST_CASE("block forward on the first token only equals the full block's first-token rows", "[block][ref]") {
  const auto check = [](auto zero, BlockShape s) {
    using T = decltype(zero);
    using O = Op<BlockShape, T>;
    auto c = random_case<T>(s, 61, 62, 600, 2.0);
    auto cache = carve<T>([&](auto& a) { return O::cache_take(a, s); });
    std::vector<T> full(O::out_size(s)), first(O::out_size(s), T(-777));
    block_forward<T>(full.data(), cache.value, c.x.data(), O::params(c.p), s, O::kEps);
    block_forward_first_token<T>(first.data(), cache.value, c.x.data(), O::params(c.p), s, O::kEps);
    const std::ptrdiff_t N = s.tokens, D = s.dim;
    for (std::ptrdiff_t r = 0; r < s.batch * N; ++r) {
      INFO(str(s) << " row " << r);
      for (std::ptrdiff_t k = 0; k < D; ++k) {
        const T got = first[std::size_t(r * D + k)], want = full[std::size_t(r * D + k)];
        if (r % N != 0) REQUIRE(got == T(-777));
        else REQUIRE(std::memcmp(&got, &want, sizeof(T)) == 0);
      }
    }
  };
  for (GemmBackend b : {GemmBackend::packed, GemmBackend::eigen}) {
    BackendScope scope(b);
    for (BlockShape s : {BlockShape{3, 17, 48, 3, 192}, BlockShape{1, 50, 64, 4, 256}, BlockShape{5, 2, 16, 2, 24}}) {
      check(0.0f, s);
      check(0.0, s);
    }
    ThreadScope threads(2);
    check(0.0f, BlockShape{4, 50, 64, 4, 256});
    check(0.0, BlockShape{4, 50, 64, 4, 256});
  }
}

TEST_CASE("block forward on the first token refuses a single token and aliasing", "[block][error]") {
  using O = Op<BlockShape, float>;
  const BlockShape s{2, 1, 8, 2, 16};
  auto c = random_case<float>(s, 1, 2, 3);
  auto cache = carve<float>([&](auto& a) { return O::cache_take(a, s); });
  std::vector<float> y(O::out_size(s));
  REQUIRE_THROWS_WITH(block_forward_first_token<float>(y.data(), cache.value, c.x.data(), O::params(c.p), s, 1e-6f),
                      Catch::Contains("at least 2 tokens, got 1"));
  const BlockShape s2{2, 3, 8, 2, 16};
  auto c2 = random_case<float>(s2, 1, 2, 3);
  auto cache2 = carve<float>([&](auto& a) { return O::cache_take(a, s2); });
  REQUIRE_THROWS_WITH(block_forward_first_token<float>(c2.x.data(), cache2.value, c2.x.data(), O::params(c2.p), s2,
                                                       1e-6f),
                      Catch::Contains("must not alias"));
}

// A model's last block in training runs forward and backward on class tokens only
// (block_backward_first_token). With dy zero off the first tokens, the full block's backward is the
// reference: same dx (on every row: keys and values reach all tokens) and parameter gradients, to
// the rounding of sums that no longer add the zeros (double), and accumulation into dx.
TEST_CASE("block backward on the first token equals the full backward with dy on first tokens only",
          "[block][grad]") {
  using O = Op<BlockShape, double>;
  const auto check = [](BlockShape s) {
    INFO(str(s));
    auto c = random_case<double>(s, 71, 72, 700, 2.0);
    const std::ptrdiff_t N = s.tokens, D = s.dim;
    for (std::ptrdiff_t r = 0; r < s.batch * N; ++r)
      if (r % N != 0) std::fill(c.dy.begin() + r * D, c.dy.begin() + (r + 1) * D, 0.0);
    auto full = run(c);
    auto cache = carve<double>([&](auto& a) { return O::cache_take(a, s); });
    auto ws = carve<double>([&](auto& a) { return O::workspace_take(a, s); });
    // a workspace is shared by a model's blocks: stale values in it must not leak in
    std::fill(ws.arena.data(), ws.arena.data() + ws.arena.capacity(), 1e30);
    std::vector<double> y(O::out_size(s), 0.0);
    auto dx = random_vec<double>(c.x.size(), 73);  // accumulated into
    const auto dx0 = dx;
    auto g = c.p.zeros_like();
    // dy's other rows are not read: garbage there must not matter
    auto dy = c.dy;
    for (std::ptrdiff_t r = 0; r < s.batch * N; ++r)
      if (r % N != 0) std::fill(dy.begin() + r * D, dy.begin() + (r + 1) * D, 1e30);
    block_forward_first_token<double>(y.data(), cache.value, c.x.data(), O::params(c.p), s, O::kEps);
    block_backward_first_token<double>(dx.data(), O::grads(g), dy.data(), c.x.data(), cache.value, O::params(c.p),
                                       s, ws.value);
    for (std::size_t i = 0; i < dx.size(); ++i) dx[i] -= dx0[i];
    require_close_scaled("dx", dx.data(), full.dx.data(), dx.size(), 1e-12);
    for (std::size_t t = 0; t < g.size(); ++t) require_close_scaled(g.names[t], g[t], full.g[t], g.v[t].size(), 1e-12);
    // a null dx gives the same parameter gradients, bitwise
    auto g2 = c.p.zeros_like();
    block_forward_first_token<double>(y.data(), cache.value, c.x.data(), O::params(c.p), s, O::kEps);
    block_backward_first_token<double>(nullptr, O::grads(g2), dy.data(), c.x.data(), cache.value, O::params(c.p), s,
                                       ws.value);
    REQUIRE(same_bits(g2, g));
  };
  for (BlockShape s : {BlockShape{3, 17, 48, 3, 192}, BlockShape{1, 50, 64, 4, 256}, BlockShape{5, 2, 16, 2, 24}})
    check(s);
  ThreadScope threads(2);
  check(BlockShape{4, 50, 64, 4, 256});
}

TEST_CASE("block first-token backward matches central differences", "[block][grad]") {
  using O = Op<BlockShape, double>;
  for (BlockShape s : {BlockShape{2, 5, 6, 2, 10}, BlockShape{3, 2, 9, 3, 5}}) {
    INFO(str(s));
    auto c = random_case<double>(s, 81, 82, 800, 2.0);
    auto cache = carve<double>([&](auto& a) { return O::cache_take(a, s); });
    auto ws = carve<double>([&](auto& a) { return O::workspace_take(a, s); });
    const std::ptrdiff_t N = s.tokens, D = s.dim;
    std::vector<double> y(O::out_size(s), 0.0);
    auto loss = [&] {  // sum over the first tokens of y * dy
      block_forward_first_token<double>(y.data(), cache.value, c.x.data(), O::params(c.p), s, O::kEps);
      double l = 0;
      for (std::ptrdiff_t b = 0; b < s.batch; ++b)
        for (std::ptrdiff_t k = 0; k < D; ++k) l += y[std::size_t(b * N * D + k)] * c.dy[std::size_t(b * N * D + k)];
      return l;
    };
    loss();
    std::vector<double> dx(c.x.size(), 0.0);
    auto g = c.p.zeros_like();
    block_backward_first_token<double>(dx.data(), O::grads(g), c.dy.data(), c.x.data(), cache.value, O::params(c.p),
                                       s, ws.value);
    grad_check("dx", c.x.data(), dx.data(), dx.size(), loss);
    for (std::size_t i = 0; i < c.p.size(); ++i) grad_check(g.names[i], c.p[i], g[i], c.p.v[i].size(), loss);
  }
}

// Float on the packed GEMM against the double full block (dy zero off the first tokens).
TEST_CASE("block first-token float backward matches the double full backward", "[block][ref]") {
  using O = Op<BlockShape, float>;
  const BlockShape s{3, 50, 64, 4, 256};
  auto backend = GENERATE(GemmBackend::packed, GemmBackend::eigen);
  BackendScope scope(backend);
  INFO(backend_name(backend));
  auto c = random_case<float>(s, 91, 92, 900, 2.0);
  const std::ptrdiff_t N = s.tokens, D = s.dim;
  for (std::ptrdiff_t r = 0; r < s.batch * N; ++r)
    if (r % N != 0) std::fill(c.dy.begin() + r * D, c.dy.begin() + (r + 1) * D, 0.0f);
  const auto ref = reference(c);
  auto cache = carve<float>([&](auto& a) { return O::cache_take(a, s); });
  auto ws = carve<float>([&](auto& a) { return O::workspace_take(a, s); });
  std::fill(ws.arena.data(), ws.arena.data() + ws.arena.capacity(), 1e30f);
  std::vector<float> y(O::out_size(s), 0.0f), dx(c.x.size(), 0.0f);
  auto g = c.p.zeros_like();
  block_forward_first_token<float>(y.data(), cache.value, c.x.data(), O::params(c.p), s, O::kEps);
  block_backward_first_token<float>(dx.data(), O::grads(g), c.dy.data(), c.x.data(), cache.value, O::params(c.p), s,
                                    ws.value);
  require_close_scaled("dx", dx.data(), ref.dx.data(), dx.size(), 1e-5);
  for (std::size_t t = 0; t < g.size(); ++t) require_close_scaled(g.names[t], g[t], ref.g[t], g.v[t].size(), 1e-5);
}
