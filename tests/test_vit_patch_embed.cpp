// Tests for ops/patch_embed.hpp: gradient checks in double (weight, bias, class token, position
// embedding), forward/backward against a direct (non-im2col) convolution in double and float,
// thread-count independence of the batch sums, a cache planned for batch 4 serving batch 2, errors.
#include "envit/ops/patch_embed.hpp"

#include "ops_vit_reference.hpp"

using namespace envit;
using namespace envit::testing;
using namespace envit::testing::vit;

namespace {

std::string str(const PatchEmbedShape& s) {
  return "B=" + std::to_string(s.batch) + " C=" + std::to_string(s.channels) + " H=" +
         std::to_string(s.height) + " W=" + std::to_string(s.width) + " P=" + std::to_string(s.patch) +
         " D=" + std::to_string(s.dim);
}
PeShape ref_shape(const PatchEmbedShape& s) {
  return {s.batch, s.channels, s.height, s.width, s.patch, s.dim};
}

template <class T>
Pack<T> make_params(PatchEmbedShape s, std::uint64_t seed) {
  const std::size_t D = std::size_t(s.dim), K = std::size_t(s.channels * s.patch * s.patch);
  const std::size_t Nt = std::size_t(patch_embed_tokens(s));
  Pack<double> p;
  p.add("w", D * K);
  p.add("b", D);
  p.add("cls", D);
  p.add("pos", Nt * D);
  for (std::size_t i = 0; i < p.size(); ++i) fill_param(p.v[i], p.names[i], seed + i);
  return p.cast<T>();
}
template <class T> PatchEmbedParams<T> params_of(const Pack<T>& p) { return {p[0], p[1], p[2], p[3]}; }
template <class T> PatchEmbedGrads<T> grads_of(Pack<T>& g) { return {g[0], g[1], g[2], g[3]}; }

template <class T>
struct Run {
  std::vector<T> tok;
  Pack<T> g;
};

template <class T>
Run<T> run(const std::vector<T>& img, const std::vector<T>& dtok, const Pack<T>& p, PatchEmbedShape s,
           std::ptrdiff_t plan_batch) {
  PatchEmbedShape ps = s;
  ps.batch = plan_batch;
  auto cache = carve<T>([&](auto& a) { return patch_embed_cache_take<T>(a, ps); });
  auto ws = carve<T>([&](auto& a) { return patch_embed_workspace_take<T>(a, ps); });
  Run<T> r;
  r.tok.assign(dtok.size(), T(0));
  r.g = p.zeros_like();
  patch_embed_forward<T>(r.tok.data(), cache.value, img.data(), params_of(p), s);
  patch_embed_backward<T>(grads_of(r.g), dtok.data(), cache.value, params_of(p), s, ws.value);
  return r;
}

std::size_t n_img(const PatchEmbedShape& s) { return std::size_t(s.batch * s.channels * s.height * s.width); }
std::size_t n_tok(const PatchEmbedShape& s) { return std::size_t(s.batch * patch_embed_tokens(s) * s.dim); }

}  // namespace

TEST_CASE("patch embedding backward matches central differences", "[patch_embed][grad]") {
  auto s = GENERATE(values<PatchEmbedShape>({{2, 3, 8, 12, 4, 5},    // non-square grid 2x3
                                             {1, 1, 4, 4, 4, 3},     // one patch, batch 1
                                             {2, 2, 6, 4, 2, 7},     // grid 3x2
                                             {3, 1, 3, 3, 1, 6}}));  // 1x1 patches
  INFO(str(s));
  auto img = random_vec<double>(n_img(s), 11);
  auto R = random_vec<double>(n_tok(s), 12);
  auto p = make_params<double>(s, 100);
  auto cache = carve<double>([&](auto& a) { return patch_embed_cache_take<double>(a, s); });
  auto ws = carve<double>([&](auto& a) { return patch_embed_workspace_take<double>(a, s); });
  std::vector<double> tok(n_tok(s));
  auto loss = [&] {
    patch_embed_forward<double>(tok.data(), cache.value, img.data(), params_of(p), s);
    return dot(tok, R);
  };
  loss();
  auto g = p.zeros_like();
  patch_embed_backward<double>(grads_of(g), R.data(), cache.value, params_of(p), s, ws.value);
  for (std::size_t i = 0; i < p.size(); ++i) grad_check(g.names[i], p[i], g[i], p.v[i].size(), loss);
}

TEST_CASE("patch embedding matches a direct convolution", "[patch_embed][ref]") {
  auto s = GENERATE(values<PatchEmbedShape>({{2, 3, 8, 12, 4, 5},
                                             {4, 1, 28, 28, 4, 17},
                                             {2, 3, 32, 16, 16, 24},
                                             {1, 2, 10, 15, 5, 33}}));
  INFO(str(s));
  auto img = random_vec<double>(n_img(s), 21);
  auto dtok = random_vec<double>(n_tok(s), 22);
  auto p = make_params<double>(s, 200);
  const double* pp[4] = {p[0], p[1], p[2], p[3]};
  std::vector<double> tok(n_tok(s));
  ref_patch_embed(tok.data(), img.data(), pp, ref_shape(s));
  auto g = p.zeros_like();
  double* gg[4] = {g[0], g[1], g[2], g[3]};
  ref_patch_embed_bwd(gg, dtok.data(), img.data(), ref_shape(s));

  SECTION("double") {
    auto got = run(img, dtok, p, s, s.batch);
    require_close_scaled("tokens", got.tok.data(), tok.data(), tok.size(), 1e-13);
    for (std::size_t i = 0; i < g.size(); ++i) require_close_scaled(g.names[i], got.g[i], g[i], g.v[i].size(), 1e-13);
  }
  SECTION("float") {  // inputs are multiples of 2^-24, so their float copies are exact
    auto got = run(cast_vec<float>(img), cast_vec<float>(dtok), p.cast<float>(), s, s.batch);
    require_close_scaled("tokens", got.tok.data(), tok.data(), tok.size());
    for (std::size_t i = 0; i < g.size(); ++i) require_close_scaled(g.names[i], got.g[i], g[i], g.v[i].size());
  }
}

TEST_CASE("patch embedding batch sums do not depend on the thread count", "[patch_embed][determinism]") {
  PatchEmbedShape s{8, 3, 32, 32, 4, 96};
  auto img = cast_vec<float>(random_vec<double>(n_img(s), 31));
  auto dtok = cast_vec<float>(random_vec<double>(n_tok(s), 32));
  auto p = make_params<float>(s, 300);
  Run<float> one, two_a, two_b;
  {
    ThreadScope t(1);
    one = run(img, dtok, p, s, s.batch);
  }
  {
    ThreadScope t(2);
    two_a = run(img, dtok, p, s, s.batch);
    two_b = run(img, dtok, p, s, s.batch);
  }
  REQUIRE(same_bits(two_a.tok, two_b.tok));
  REQUIRE(same_bits(two_a.g, two_b.g));
  for (std::size_t i = 1; i < 4; ++i) {  // db, dcls, dpos: fixed summation order
    INFO(one.g.names[i]);
    REQUIRE(same_bits(one.g.v[i], two_a.g.v[i]));
  }
}

TEST_CASE("patch embedding cache planned for batch 4 serves batch 2", "[patch_embed][arena]") {
  PatchEmbedShape s{2, 3, 8, 12, 4, 10};
  auto img = cast_vec<float>(random_vec<double>(n_img(s), 41));
  auto dtok = cast_vec<float>(random_vec<double>(n_tok(s), 42));
  auto p = make_params<float>(s, 400);
  auto exact = run(img, dtok, p, s, 2);
  auto big = run(img, dtok, p, s, 4);
  REQUIRE(same_bits(exact.tok, big.tok));
  REQUIRE(same_bits(exact.g, big.g));
}

TEST_CASE("patch embedding backward accumulates", "[patch_embed][grad]") {
  PatchEmbedShape s{2, 2, 6, 4, 2, 7};
  auto img = random_vec<double>(n_img(s), 51);
  auto dtok = random_vec<double>(n_tok(s), 52);
  auto p = make_params<double>(s, 500);
  auto once = run(img, dtok, p, s, s.batch);
  auto cache = carve<double>([&](auto& a) { return patch_embed_cache_take<double>(a, s); });
  auto ws = carve<double>([&](auto& a) { return patch_embed_workspace_take<double>(a, s); });
  std::vector<double> tok(n_tok(s));
  patch_embed_forward<double>(tok.data(), cache.value, img.data(), params_of(p), s);
  auto g = p.zeros_like();
  for (int k = 0; k < 2; ++k) patch_embed_backward<double>(grads_of(g), dtok.data(), cache.value, params_of(p), s, ws.value);
  for (std::size_t t = 0; t < g.size(); ++t) {
    std::vector<double> twice(once.g.v[t]);
    for (auto& e : twice) e *= 2;
    require_close(g.names[t], g[t], twice.data(), twice.size(), 1e-13, 1e-15);
  }
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
