// Tests for ops/mlp.hpp: gradient checks in double, float vs the naive double reference,
// accumulation, determinism with two threads, a cache planned for more rows.
#include "envit/ops/mlp.hpp"

#include "ops_vit_reference.hpp"

using namespace envit;
using namespace envit::testing;
using namespace envit::testing::vit;

namespace {

std::string str(const MlpShape& s) {
  return "R=" + std::to_string(s.rows) + " D=" + std::to_string(s.dim) + " F=" + std::to_string(s.hidden);
}

template <class T>
Pack<T> make_params(MlpShape s, std::uint64_t seed) {
  const std::size_t D = std::size_t(s.dim), F = std::size_t(s.hidden);
  Pack<double> p;
  p.add("fc1_w", F * D);
  p.add("fc1_b", F);
  p.add("fc2_w", D * F);
  p.add("fc2_b", D);
  for (std::size_t i = 0; i < p.size(); ++i) fill_param(p.v[i], p.names[i], seed + i);
  return p.cast<T>();
}
template <class T> MlpParams<T> params_of(const Pack<T>& p) { return {p[0], p[1], p[2], p[3]}; }
template <class T> MlpGrads<T> grads_of(Pack<T>& g) { return {g[0], g[1], g[2], g[3]}; }

template <class T>
struct Run {
  std::vector<T> y, dx, h, a;
  Pack<T> g;
};

template <class T>
Run<T> run(const std::vector<T>& x, const std::vector<T>& dy, const Pack<T>& p, MlpShape s,
           std::ptrdiff_t plan_rows) {
  MlpShape ps = s;
  ps.rows = plan_rows;
  auto cache = carve<T>([&](auto& a) { return mlp_cache_take<T>(a, ps); });
  auto ws = carve<T>([&](auto& a) { return mlp_workspace_take<T>(a, ps); });
  Run<T> r;
  r.y.assign(x.size(), T(0));
  r.dx.assign(x.size(), T(0));
  r.g = p.zeros_like();
  mlp_forward<T>(r.y.data(), cache.value, x.data(), params_of(p), s);
  mlp_backward<T>(r.dx.data(), grads_of(r.g), dy.data(), x.data(), cache.value, params_of(p), s, ws.value);
  const std::size_t nh = std::size_t(s.rows * s.hidden);
  r.h.assign(cache.value.h, cache.value.h + nh);
  r.a.assign(cache.value.a, cache.value.a + nh);
  return r;
}

}  // namespace

TEST_CASE("mlp backward matches central differences", "[mlp][grad]") {
  auto s = GENERATE(values<MlpShape>({{7, 6, 10}, {1, 1, 1}, {1, 3, 5}, {10, 6, 24}}));
  INFO(str(s));
  const std::size_t n = std::size_t(s.rows * s.dim);
  auto x = random_vec<double>(n, 11, -2.0, 2.0);
  auto R = random_vec<double>(n, 12);
  auto p = make_params<double>(s, 100);
  auto cache = carve<double>([&](auto& a) { return mlp_cache_take<double>(a, s); });
  auto ws = carve<double>([&](auto& a) { return mlp_workspace_take<double>(a, s); });
  std::vector<double> y(n);
  auto loss = [&] {
    mlp_forward<double>(y.data(), cache.value, x.data(), params_of(p), s);
    return dot(y, R);
  };
  loss();
  std::vector<double> dx(n, 0.0);
  auto g = p.zeros_like();
  mlp_backward<double>(dx.data(), grads_of(g), R.data(), x.data(), cache.value, params_of(p), s, ws.value);
  grad_check("dx", x.data(), dx.data(), n, loss);
  for (std::size_t i = 0; i < p.size(); ++i) grad_check(g.names[i], p[i], g[i], p.v[i].size(), loss);
}

// Float vs double, both GEMM backends: observed errors are at most ~2e-6 of each tensor's largest
// entry (forward and backward); the check allows 1e-5 of it (require_close_scaled).
TEST_CASE("mlp float forward and backward match the naive double reference", "[mlp][ref]") {
  auto s = GENERATE(values<MlpShape>({{17, 16, 64}, {33, 15, 17}, {5, 48, 192}, {64, 24, 96}}));
  INFO(str(s));
  auto backend = GENERATE(GemmBackend::packed, GemmBackend::eigen);
  BackendScope scope(backend);
  INFO(backend_name(backend));
  const std::size_t n = std::size_t(s.rows * s.dim);
  auto x = cast_vec<float>(random_vec<double>(n, 21, -2.0, 2.0));
  auto dy = cast_vec<float>(random_vec<double>(n, 22));
  auto p = make_params<float>(s, 200);
  auto got = run(x, dy, p, s, s.rows);

  auto xd = cast_vec<double>(x), dyd = cast_vec<double>(dy);
  auto pd = p.cast<double>();
  const double* pp[4] = {pd[0], pd[1], pd[2], pd[3]};
  RefMlpCache rc;
  std::vector<double> y(n), dx(n, 0.0);
  ref_mlp(y.data(), rc, xd.data(), pp, s.rows, s.dim, s.hidden);
  auto g = pd.zeros_like();
  double* gg[4] = {g[0], g[1], g[2], g[3]};
  ref_mlp_bwd(dx.data(), gg, dyd.data(), xd.data(), rc, pp, s.rows, s.dim, s.hidden);
  require_close_scaled("h", got.h.data(), rc.h.data(), rc.h.size());
  require_close_scaled("a", got.a.data(), rc.a.data(), rc.a.size());
  require_close_scaled("y", got.y.data(), y.data(), n);
  require_close_scaled("dx", got.dx.data(), dx.data(), n);
  for (std::size_t i = 0; i < g.size(); ++i) require_close_scaled(g.names[i], got.g[i], g[i], g.v[i].size());
}

TEST_CASE("mlp backward accumulates and allows a null dx", "[mlp][grad]") {
  MlpShape s{7, 6, 10};
  const std::size_t n = std::size_t(s.rows * s.dim);
  auto x = random_vec<double>(n, 31);
  auto dy = random_vec<double>(n, 32);
  auto p = make_params<double>(s, 300);
  auto once = run(x, dy, p, s, s.rows);
  auto cache = carve<double>([&](auto& a) { return mlp_cache_take<double>(a, s); });
  auto ws = carve<double>([&](auto& a) { return mlp_workspace_take<double>(a, s); });
  std::vector<double> y(n), dx(n, 0.0);
  auto g = p.zeros_like();
  mlp_forward<double>(y.data(), cache.value, x.data(), params_of(p), s);
  for (int k = 0; k < 2; ++k)
    mlp_backward<double>(dx.data(), grads_of(g), dy.data(), x.data(), cache.value, params_of(p), s, ws.value);
  auto twice = [](const std::vector<double>& v) {
    std::vector<double> o(v);
    for (auto& e : o) e *= 2;
    return o;
  };
  require_close("dx", dx.data(), twice(once.dx).data(), n, 1e-13, 1e-15);
  for (std::size_t t = 0; t < g.size(); ++t)
    require_close(g.names[t], g[t], twice(once.g.v[t]).data(), g.v[t].size(), 1e-13, 1e-15);
  auto g2 = p.zeros_like();
  mlp_backward<double>(nullptr, grads_of(g2), dy.data(), x.data(), cache.value, params_of(p), s, ws.value);
  REQUIRE(same_bits(g2, once.g));
}

TEST_CASE("mlp is bitwise deterministic with two threads", "[mlp][determinism]") {
  ThreadScope threads(2);
  MlpShape s{200, 64, 256};
  const std::size_t n = std::size_t(s.rows * s.dim);
  auto x = cast_vec<float>(random_vec<double>(n, 41));
  auto dy = cast_vec<float>(random_vec<double>(n, 42));
  auto p = make_params<float>(s, 400);
  auto a = run(x, dy, p, s, s.rows);
  auto b = run(x, dy, p, s, s.rows);
  REQUIRE(same_bits(a.y, b.y));
  REQUIRE(same_bits(a.dx, b.dx));
  REQUIRE(same_bits(a.g, b.g));
}

TEST_CASE("mlp cache planned for 4 batches of rows serves 2", "[mlp][arena]") {
  MlpShape s{2 * 9, 12, 20};
  const std::size_t n = std::size_t(s.rows * s.dim);
  auto x = cast_vec<float>(random_vec<double>(n, 51));
  auto dy = cast_vec<float>(random_vec<double>(n, 52));
  auto p = make_params<float>(s, 500);
  auto exact = run(x, dy, p, s, s.rows);
  auto big = run(x, dy, p, s, 4 * 9);
  REQUIRE(same_bits(exact.y, big.y));
  REQUIRE(same_bits(exact.dx, big.dx));
  REQUIRE(same_bits(exact.g, big.g));
}

TEST_CASE("mlp rejects invalid shapes", "[mlp][error]") {
  ArenaPlan<float> plan;
  REQUIRE_THROWS_AS(mlp_cache_take<float>(plan, {4, 0, 8}), ShapeError);
  REQUIRE_THROWS_AS(mlp_workspace_take<float>(plan, {-1, 4, 8}), ShapeError);
}
