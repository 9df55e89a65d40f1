// Tests for ops/attention.hpp: gradient checks in double, float vs the naive double reference,
// accumulation, determinism with two threads, a cache planned for a larger batch, shape errors.
#include "envit/ops/attention.hpp"

#include "ops_vit_reference.hpp"

using namespace envit;
using namespace envit::testing;
using namespace envit::testing::vit;

namespace {

std::string str(const AttentionShape& s) {
  return "B=" + std::to_string(s.batch) + " N=" + std::to_string(s.tokens) + " D=" +
         std::to_string(s.dim) + " H=" + std::to_string(s.heads);
}

template <class T>
Pack<T> make_params(AttentionShape s, std::uint64_t seed) {
  const std::size_t D = std::size_t(s.dim);
  Pack<double> p;
  p.add("qkv_w", 3 * D * D);
  p.add("qkv_b", 3 * D);
  p.add("proj_w", D * D);
  p.add("proj_b", D);
  for (std::size_t i = 0; i < p.size(); ++i) fill_param(p.v[i], p.names[i], seed + i);
  return p.cast<T>();
}
template <class T> AttentionParams<T> params_of(const Pack<T>& p) { return {p[0], p[1], p[2], p[3]}; }
template <class T> AttentionGrads<T> grads_of(Pack<T>& g) { return {g[0], g[1], g[2], g[3]}; }

template <class T>
struct Run {
  std::vector<T> y, dx;
  Pack<T> g;
};

// Forward then backward with dy; grads start at zero. The cache/workspace are planned for
// `plan_batch` (>= s.batch).
template <class T>
Run<T> run(const std::vector<T>& x, const std::vector<T>& dy, const Pack<T>& p, AttentionShape s,
           std::ptrdiff_t plan_batch) {
  AttentionShape ps = s;
  ps.batch = plan_batch;
  auto cache = carve<T>([&](auto& a) { return attention_cache_take<T>(a, ps); });
  auto ws = carve<T>([&](auto& a) { return attention_workspace_take<T>(a, ps); });
  Run<T> r;
  r.y.assign(x.size(), T(0));
  r.dx.assign(x.size(), T(0));
  r.g = p.zeros_like();
  attention_forward<T>(r.y.data(), cache.value, x.data(), params_of(p), s);
  attention_backward<T>(r.dx.data(), grads_of(r.g), dy.data(), x.data(), cache.value, params_of(p), s,
                        ws.value);
  return r;
}

}  // namespace

TEST_CASE("attention backward matches central differences", "[attention][grad]") {
  auto s = GENERATE(values<AttentionShape>({{2, 5, 6, 2},    // D not a multiple of 16
                                            {1, 1, 4, 1},    // one token, one head
                                            {1, 3, 5, 1},    // batch 1, odd dim
                                            {3, 4, 8, 4},    // head dim 2
                                            {2, 6, 9, 3}}));
  INFO(str(s));
  const std::size_t n = std::size_t(s.batch * s.tokens * s.dim);
  auto x = random_vec<double>(n, 11);
  auto R = random_vec<double>(n, 12);  // loss = sum(y * R)
  auto p = make_params<double>(s, 100);
  auto cache = carve<double>([&](auto& a) { return attention_cache_take<double>(a, s); });
  auto ws = carve<double>([&](auto& a) { return attention_workspace_take<double>(a, s); });
  std::vector<double> y(n);
  auto loss = [&] {
    attention_forward<double>(y.data(), cache.value, x.data(), params_of(p), s);
    return dot(y, R);
  };
  loss();
  std::vector<double> dx(n, 0.0);
  auto g = p.zeros_like();
  attention_backward<double>(dx.data(), grads_of(g), R.data(), x.data(), cache.value, params_of(p), s,
                             ws.value);
  grad_check("dx", x.data(), dx.data(), n, loss);
  for (std::size_t i = 0; i < p.size(); ++i) grad_check(g.names[i], p[i], g[i], p.v[i].size(), loss);
}

TEST_CASE("attention forward caches the row-stochastic probabilities", "[attention][ref]") {
  AttentionShape s{2, 7, 12, 3};
  const std::size_t n = std::size_t(s.batch * s.tokens * s.dim);
  auto x = random_vec<double>(n, 5, -2.0, 2.0);
  auto p = make_params<double>(s, 7);
  auto cache = carve<double>([&](auto& a) { return attention_cache_take<double>(a, s); });
  std::vector<double> y(n);
  attention_forward<double>(y.data(), cache.value, x.data(), params_of(p), s);
  RefAttCache rc;
  std::vector<double> yr(n);
  const double* pp[4] = {p[0], p[1], p[2], p[3]};
  ref_attention(yr.data(), rc, x.data(), pp, {s.batch, s.tokens, s.dim, s.heads});
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
  const std::size_t n = std::size_t(s.batch * s.tokens * s.dim);
  auto x = cast_vec<float>(random_vec<double>(n, 21, -2.0, 2.0));
  auto dy = cast_vec<float>(random_vec<double>(n, 22));
  auto p = make_params<float>(s, 200);
  auto got = run(x, dy, p, s, s.batch);

  auto xd = cast_vec<double>(x), dyd = cast_vec<double>(dy);
  auto pd = p.cast<double>();
  const double* pp[4] = {pd[0], pd[1], pd[2], pd[3]};
  RefAttCache rc;
  std::vector<double> y(n), dx(n, 0.0);
  ref_attention(y.data(), rc, xd.data(), pp, {s.batch, s.tokens, s.dim, s.heads});
  auto g = pd.zeros_like();
  double* gg[4] = {g[0], g[1], g[2], g[3]};
  ref_attention_bwd(dx.data(), gg, dyd.data(), xd.data(), rc, pp, {s.batch, s.tokens, s.dim, s.heads});
  require_close_scaled("y", got.y.data(), y.data(), n);
  require_close_scaled("dx", got.dx.data(), dx.data(), n);
  for (std::size_t i = 0; i < g.size(); ++i) require_close_scaled(g.names[i], got.g[i], g[i], g.v[i].size());
}

TEST_CASE("attention backward accumulates into dx and parameter gradients", "[attention][grad]") {
  AttentionShape s{2, 5, 6, 2};
  const std::size_t n = std::size_t(s.batch * s.tokens * s.dim);
  auto x = random_vec<double>(n, 31);
  auto dy = random_vec<double>(n, 32);
  auto p = make_params<double>(s, 300);
  auto once = run(x, dy, p, s, s.batch);
  auto cache = carve<double>([&](auto& a) { return attention_cache_take<double>(a, s); });
  auto ws = carve<double>([&](auto& a) { return attention_workspace_take<double>(a, s); });
  std::vector<double> y(n), dx(n, 0.0);
  auto g = p.zeros_like();
  attention_forward<double>(y.data(), cache.value, x.data(), params_of(p), s);
  for (int k = 0; k < 2; ++k)
    attention_backward<double>(dx.data(), grads_of(g), dy.data(), x.data(), cache.value, params_of(p), s,
                               ws.value);
  // Not bitwise 2x: GEMMs with beta = 1 and the bias sums add partial sums into the existing value.
  auto twice = [](const std::vector<double>& v) {
    std::vector<double> o(v);
    for (auto& e : o) e *= 2;
    return o;
  };
  require_close("dx", dx.data(), twice(once.dx).data(), n, 1e-13, 1e-15);
  for (std::size_t t = 0; t < g.size(); ++t)
    require_close(g.names[t], g[t], twice(once.g.v[t]).data(), g.v[t].size(), 1e-13, 1e-15);
  // A null dx still produces parameter gradients.
  auto g2 = p.zeros_like();
  attention_backward<double>(nullptr, grads_of(g2), dy.data(), x.data(), cache.value, params_of(p), s, ws.value);
  REQUIRE(same_bits(g2, once.g));
}

TEST_CASE("attention is bitwise deterministic with two threads", "[attention][determinism]") {
  ThreadScope threads(2);
  AttentionShape s{4, 50, 64, 4};
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

TEST_CASE("attention cache planned for batch 4 serves batch 2", "[attention][arena]") {
  AttentionShape s{2, 9, 12, 3};
  const std::size_t n = std::size_t(s.batch * s.tokens * s.dim);
  auto x = cast_vec<float>(random_vec<double>(n, 51));
  auto dy = cast_vec<float>(random_vec<double>(n, 52));
  auto p = make_params<float>(s, 500);
  auto exact = run(x, dy, p, s, 2);
  auto big = run(x, dy, p, s, 4);
  REQUIRE(same_bits(exact.y, big.y));
  REQUIRE(same_bits(exact.dx, big.dx));
  REQUIRE(same_bits(exact.g, big.g));
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
