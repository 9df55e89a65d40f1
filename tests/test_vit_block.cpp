// Tests for ops/block.hpp: gradient checks in double (input and all twelve parameters), float vs
// the naive double reference, accumulation, determinism with two threads, a cache planned for
// batch 4 serving batch 2, an empty batch, and argument errors.
#include "envit/ops/block.hpp"

#include "ops_vit_reference.hpp"

using namespace envit;
using namespace envit::testing;
using namespace envit::testing::vit;

namespace {

std::string str(const BlockShape& s) {
  return "B=" + std::to_string(s.batch) + " N=" + std::to_string(s.tokens) + " D=" +
         std::to_string(s.dim) + " H=" + std::to_string(s.heads) + " F=" + std::to_string(s.hidden);
}

template <class T>
Pack<T> make_params(BlockShape s, std::uint64_t seed) {
  const std::size_t D = std::size_t(s.dim), F = std::size_t(s.hidden);
  Pack<double> p;
  p.add("norm1_w", D);
  p.add("norm1_b", D);
  p.add("qkv_w", 3 * D * D);
  p.add("qkv_b", 3 * D);
  p.add("proj_w", D * D);
  p.add("proj_b", D);
  p.add("norm2_w", D);
  p.add("norm2_b", D);
  p.add("fc1_w", F * D);
  p.add("fc1_b", F);
  p.add("fc2_w", D * F);
  p.add("fc2_b", D);
  for (std::size_t i = 0; i < p.size(); ++i) fill_param(p.v[i], p.names[i], seed + i);
  return p.cast<T>();
}
template <class T> BlockParams<T> params_of(const Pack<T>& p) {
  return {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]};
}
template <class T> BlockGrads<T> grads_of(Pack<T>& g) {
  return {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11]};
}

template <class T>
struct Run {
  std::vector<T> y, dx;
  Pack<T> g;
};

template <class T>
Run<T> run(const std::vector<T>& x, const std::vector<T>& dy, const Pack<T>& p, BlockShape s,
           std::ptrdiff_t plan_batch, T eps = T(1e-6)) {
  BlockShape ps = s;
  ps.batch = plan_batch;
  auto cache = carve<T>([&](auto& a) { return block_cache_take<T>(a, ps); });
  auto ws = carve<T>([&](auto& a) { return block_workspace_take<T>(a, ps); });
  Run<T> r;
  r.y.assign(x.size(), T(0));
  r.dx.assign(x.size(), T(0));
  r.g = p.zeros_like();
  block_forward<T>(r.y.data(), cache.value, x.data(), params_of(p), s, eps);
  block_backward<T>(r.dx.data(), grads_of(r.g), dy.data(), x.data(), cache.value, params_of(p), s, ws.value);
  return r;
}

}  // namespace

TEST_CASE("block backward matches central differences", "[block][grad]") {
  auto s = GENERATE(values<BlockShape>({{2, 5, 6, 2, 10},   // D = 6, H = 2, N = 5
                                        {1, 1, 4, 1, 8},    // one token, one head, batch 1
                                        {3, 3, 9, 3, 5},    // F < D
                                        {1, 4, 5, 1, 7}}));
  INFO(str(s));
  const std::size_t n = std::size_t(s.batch * s.tokens * s.dim);
  auto x = random_vec<double>(n, 11, -2.0, 2.0);
  auto R = random_vec<double>(n, 12);
  auto p = make_params<double>(s, 100);
  auto cache = carve<double>([&](auto& a) { return block_cache_take<double>(a, s); });
  auto ws = carve<double>([&](auto& a) { return block_workspace_take<double>(a, s); });
  std::vector<double> y(n);
  auto loss = [&] {
    block_forward<double>(y.data(), cache.value, x.data(), params_of(p), s, 1e-6);
    return dot(y, R);
  };
  loss();
  std::vector<double> dx(n, 0.0);
  auto g = p.zeros_like();
  block_backward<double>(dx.data(), grads_of(g), R.data(), x.data(), cache.value, params_of(p), s, ws.value);
  grad_check("dx", x.data(), dx.data(), n, loss);
  for (std::size_t i = 0; i < p.size(); ++i) grad_check(g.names[i], p[i], g[i], p.v[i].size(), loss);
}

TEST_CASE("block double forward and backward match the naive reference", "[block][ref]") {
  BlockShape s{2, 7, 12, 3, 20};
  const std::size_t n = std::size_t(s.batch * s.tokens * s.dim);
  auto x = random_vec<double>(n, 13, -2.0, 2.0);
  auto dy = random_vec<double>(n, 14);
  auto p = make_params<double>(s, 150);
  auto got = run(x, dy, p, s, s.batch);
  const double* pp[12];
  for (int i = 0; i < 12; ++i) pp[i] = p[i];
  RefBlockCache rc;
  std::vector<double> y(n), dx(n, 0.0);
  ref_block(y.data(), rc, x.data(), pp, {s.batch, s.tokens, s.dim, s.heads, s.hidden}, 1e-6);
  auto g = p.zeros_like();
  double* gg[12];
  for (int i = 0; i < 12; ++i) gg[i] = g[i];
  ref_block_bwd(dx.data(), gg, dy.data(), x.data(), rc, pp, {s.batch, s.tokens, s.dim, s.heads, s.hidden}, 1e-6);
  require_close_scaled("y", got.y.data(), y.data(), n, 1e-12);
  require_close_scaled("dx", got.dx.data(), dx.data(), n, 1e-12);
  for (std::size_t i = 0; i < g.size(); ++i) require_close_scaled(g.names[i], got.g[i], g[i], g.v[i].size(), 1e-12);
}

// Float vs double, both GEMM backends: observed errors are at most ~2e-6 of each tensor's largest
// entry (forward and backward); the check allows 1e-5 of it (require_close_scaled).
TEST_CASE("block float forward and backward match the naive double reference", "[block][ref]") {
  auto s = GENERATE(values<BlockShape>({{2, 17, 48, 3, 192},
                                        {3, 16, 16, 1, 64},
                                        {1, 9, 15, 5, 33},
                                        {2, 50, 64, 4, 256}}));
  INFO(str(s));
  auto backend = GENERATE(GemmBackend::packed, GemmBackend::eigen);
  BackendScope scope(backend);
  INFO(backend_name(backend));
  const std::size_t n = std::size_t(s.batch * s.tokens * s.dim);
  auto x = cast_vec<float>(random_vec<double>(n, 21, -2.0, 2.0));
  auto dy = cast_vec<float>(random_vec<double>(n, 22));
  auto p = make_params<float>(s, 200);
  auto got = run(x, dy, p, s, s.batch);

  auto xd = cast_vec<double>(x), dyd = cast_vec<double>(dy);
  auto pd = p.cast<double>();
  const double* pp[12];
  for (int i = 0; i < 12; ++i) pp[i] = pd[i];
  RefBlockCache rc;
  std::vector<double> y(n), dx(n, 0.0);
  // eps as the float run sees it
  const double eps = double(float(1e-6));
  ref_block(y.data(), rc, xd.data(), pp, {s.batch, s.tokens, s.dim, s.heads, s.hidden}, eps);
  auto g = pd.zeros_like();
  double* gg[12];
  for (int i = 0; i < 12; ++i) gg[i] = g[i];
  ref_block_bwd(dx.data(), gg, dyd.data(), xd.data(), rc, pp, {s.batch, s.tokens, s.dim, s.heads, s.hidden}, eps);
  require_close_scaled("y", got.y.data(), y.data(), n);
  require_close_scaled("dx", got.dx.data(), dx.data(), n);
  for (std::size_t i = 0; i < g.size(); ++i) require_close_scaled(g.names[i], got.g[i], g[i], g.v[i].size());
}

TEST_CASE("block backward accumulates into dx and parameter gradients", "[block][grad]") {
  BlockShape s{2, 5, 6, 2, 10};
  const std::size_t n = std::size_t(s.batch * s.tokens * s.dim);
  auto x = random_vec<double>(n, 31);
  auto dy = random_vec<double>(n, 32);
  auto p = make_params<double>(s, 300);
  auto once = run(x, dy, p, s, s.batch);
  auto cache = carve<double>([&](auto& a) { return block_cache_take<double>(a, s); });
  auto ws = carve<double>([&](auto& a) { return block_workspace_take<double>(a, s); });
  std::vector<double> y(n), dx(n, 0.0);
  auto g = p.zeros_like();
  block_forward<double>(y.data(), cache.value, x.data(), params_of(p), s, 1e-6);
  for (int k = 0; k < 2; ++k)
    block_backward<double>(dx.data(), grads_of(g), dy.data(), x.data(), cache.value, params_of(p), s, ws.value);
  auto twice = [](const std::vector<double>& v) {
    std::vector<double> o(v);
    for (auto& e : o) e *= 2;
    return o;
  };
  require_close("dx", dx.data(), twice(once.dx).data(), n, 1e-13, 1e-15);
  for (std::size_t t = 0; t < g.size(); ++t)
    require_close(g.names[t], g[t], twice(once.g.v[t]).data(), g.v[t].size(), 1e-13, 1e-15);
  auto g2 = p.zeros_like();
  block_backward<double>(nullptr, grads_of(g2), dy.data(), x.data(), cache.value, params_of(p), s, ws.value);
  REQUIRE(same_bits(g2, once.g));
}

TEST_CASE("block is bitwise deterministic with two threads", "[block][determinism]") {
  ThreadScope threads(2);
  BlockShape s{4, 50, 64, 4, 256};
  const std::size_t n = std::size_t(s.batch * s.tokens * s.dim);
  auto x = cast_vec<float>(random_vec<double>(n, 41));
  auto dy = cast_vec<float>(random_vec<double>(n, 42));
  auto p = make_params<float>(s, 400);
  auto a = run(x, dy, p, s, s.batch);
  auto b = run(x, dy, p, s, s.batch);
  REQUIRE(same_bits(a.y, b.y));
  REQUIRE(same_bits(a.dx, b.dx));
  REQUIRE(same_bits(a.g, b.g));
}

TEST_CASE("block cache planned for batch 4 serves batch 2", "[block][arena]") {
  BlockShape s{2, 9, 12, 3, 24};
  const std::size_t n = std::size_t(s.batch * s.tokens * s.dim);
  auto x = cast_vec<float>(random_vec<double>(n, 51));
  auto dy = cast_vec<float>(random_vec<double>(n, 52));
  auto p = make_params<float>(s, 500);
  auto exact = run(x, dy, p, s, 2);
  auto big = run(x, dy, p, s, 4);
  REQUIRE(same_bits(exact.y, big.y));
  REQUIRE(same_bits(exact.dx, big.dx));
  REQUIRE(same_bits(exact.g, big.g));
}

TEST_CASE("block with an empty batch leaves outputs and gradients untouched", "[block][arena]") {
  BlockShape s{0, 5, 6, 2, 10};
  auto p = make_params<double>({2, 5, 6, 2, 10}, 600);
  auto cache = carve<double>([&](auto& a) { return block_cache_take<double>(a, {2, 5, 6, 2, 10}); });
  auto ws = carve<double>([&](auto& a) { return block_workspace_take<double>(a, {2, 5, 6, 2, 10}); });
  std::vector<double> y(1, 7.0), x(1, 3.0), dy(1, 1.0), dx(1, 5.0);
  auto g = p.zeros_like();
  block_forward<double>(y.data(), cache.value, x.data(), params_of(p), s, 1e-6);
  block_backward<double>(dx.data(), grads_of(g), dy.data(), x.data(), cache.value, params_of(p), s, ws.value);
  REQUIRE(y[0] == 7.0);
  REQUIRE(dx[0] == 5.0);
  for (auto& t : g.v)
    for (double v : t) REQUIRE(v == 0.0);
}

TEST_CASE("block argument errors", "[block][error]") {
  ArenaPlan<float> plan;
  REQUIRE_THROWS_AS(block_cache_take<float>(plan, {2, 5, 6, 4, 8}), ShapeError);   // 6 % 4
  REQUIRE_THROWS_AS(block_workspace_take<float>(plan, {2, 5, 6, 2, 0}), ShapeError);
  BlockShape s{1, 3, 4, 2, 8};
  auto p = make_params<float>(s, 700);
  auto cache = carve<float>([&](auto& a) { return block_cache_take<float>(a, s); });
  std::vector<float> x(12, 1.0f), dy(12, 1.0f), dx(12, 0.0f);
  REQUIRE_THROWS_AS(block_forward<float>(x.data(), cache.value, x.data(), params_of(p), s, 1e-6f), ValueError);
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
  block_forward<float>(y.data(), cache.value, x.data(), params_of(p), s, 1e-6f);
  auto g = p.zeros_like();
  REQUIRE_THROWS_AS(block_backward<float>(dx.data(), grads_of(g), dy.data(), x.data(), cache.value,
                                          params_of(p), s, w1),
                    ValueError);
}
