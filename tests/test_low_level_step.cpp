// The public low-level step (model/vit.hpp): vit_forward_exits / vit_backward_exits with the
// caller's masks and the caller's gradients. Checked: mask errors (unsorted, duplicate, out of
// range, wrong depth), the ordering and size errors of the backward, the per-exit views against the
// masks, bitwise equality with train_step_grads for the same loss written by hand (float and
// double), and a finite-difference gradient check of a loss on logits and features (double),
// linear and LGViT heads.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "envit/train/objective.hpp"
#include "testing.hpp"

using namespace envit;
using Catch::Matchers::Contains;
using envit::testing::check_grad;
using envit::testing::fill_uniform;

namespace {

VitConfig tiny_config(bool lgvit = false) {
  VitConfig c;
  c.image_size = 4; c.channels = 2; c.patch = 2;  // 4 patches + cls = 5 tokens
  c.dim = 8; c.depth = 3; c.heads = 2; c.mlp_hidden = 10; c.classes = 3;
  c.exits = {1, 2, 3};
  c.ln_eps = 1e-5;
  if (lgvit) c.exit_head = "lgvit";
  c.validate();
  return c;
}

// B = 4 on 3 blocks: samples 1 and 3 skip block 2; samples 2 and 3 skip block 3.
LayerMasks fixed_masks(int B, int L) {
  LayerMasks m(L, B);
  m.all(B);
  m.exec[1] = {0, 2};
  m.exec[2] = {0, 1};
  return m;
}

template <class T>
struct Fixture {
  VitConfig cfg;
  int B = 4;
  ViTParams<T> P;
  ViTWorkspace<T> ws;
  std::vector<T> images;
  std::vector<std::int32_t> labels{0, 2, 1, 2};
  explicit Fixture(bool lgvit = false) : cfg(tiny_config(lgvit)), P(cfg), ws(cfg, B) {
    P.init(7);
    std::vector<double> v(P.size());
    fill_uniform(v.data(), v.size(), 100, -0.5, 0.5);
    for (const ParamEntry& e : P.table())
      if (!e.buffer)
        for (std::size_t i = 0; i < e.numel; ++i)
          P.values()[e.offset + i] =
              T(v[e.offset + i] + (e.name.find("weight") != std::string::npos && e.name.find("norm") != std::string::npos));
    std::vector<double> im(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
    fill_uniform(im.data(), im.size(), 3);
    images.assign(im.begin(), im.end());
  }
};

}  // namespace

TEST_CASE("vit_forward_exits: bad masks are refused with the block, position and sample", "[api][model]") {
  Fixture<float> f;
  std::vector<ExitOut<float>> out(3);
  auto run = [&](const LayerMasks& m) { vit_forward_exits<float>(out, f.ws, f.P, f.images.data(), m); };
  LayerMasks m = fixed_masks(f.B, 3);
  m.exec[1] = {2, 0};
  REQUIRE_THROWS_AS(run(m), ValueError);
  REQUIRE_THROWS_WITH(run(m), Contains("exec[1]") && Contains("block 2") && Contains("not sorted") &&
                                  Contains("sample 0 after 2"));
  m = fixed_masks(f.B, 3);
  m.exec[2] = {0, 1, 1};
  REQUIRE_THROWS_WITH(run(m), Contains("exec[2]") && Contains("duplicate sample 1") && Contains("position 2"));
  m = fixed_masks(f.B, 3);
  m.exec[0] = {0, 4};
  REQUIRE_THROWS_WITH(run(m), Contains("exec[0]") && Contains("sample 4 out of range") && Contains("0..3"));
  m.exec[0] = {-1, 2};
  REQUIRE_THROWS_WITH(run(m), Contains("sample -1 out of range"));
  LayerMasks shallow(2, f.B);
  shallow.all(f.B);
  REQUIRE_THROWS_AS(run(shallow), ShapeError);
  REQUIRE_THROWS_WITH(run(shallow), Contains("masks for 2 blocks") && Contains("has 3"));
  m = fixed_masks(f.B, 3);
  m.batch = f.B + 1;  // more than the workspace holds
  REQUIRE_THROWS_AS(run(m), ShapeError);
  std::vector<ExitOut<float>> two(2);
  REQUIRE_THROWS_WITH(vit_forward_exits<float>(two, f.ws, f.P, f.images.data(), fixed_masks(f.B, 3)),
                      Contains("room for 2 exits") && Contains("has 3"));
}

TEST_CASE("vit_forward_exits: per-exit views are the rows that reached each exit", "[api][model]") {
  for (bool lgvit : {false, true}) {
    Fixture<float> f(lgvit);
    const LayerMasks m = fixed_masks(f.B, 3);
    const auto out = vit_forward_exits<float>(f.ws, f.P, f.images.data(), m);
    REQUIRE(out.size() == 3);
    const int want_n[3] = {4, 2, 2};
    for (int j = 0; j < 3; ++j) {
      INFO("lgvit " << lgvit << " exit " << j);
      CHECK(out[j].n == want_n[j]);
      CHECK(out[j].rows == m.exec[std::size_t(j)].data());
      CHECK(out[j].logits == f.ws.logits[std::size_t(j)]);
    }
    CHECK(out[2].feat == f.ws.exit[2].x);
    CHECK(out[2].feat_len == f.cfg.dim);
    if (lgvit) {
      CHECK(out[0].feat == f.ws.lg[0].y);
      CHECK(out[0].feat_len == int(f.ws.lgvit_shape(0, 1).feat_tokens()) * f.cfg.dim);
    } else {
      CHECK(out[0].feat == f.ws.exit[0].x);
    }
  }
}

TEST_CASE("vit_backward_exits: refuses a missing forward, other masks, a full pass in between, wrong sizes",
          "[api][model]") {
  Fixture<float> f;
  const LayerMasks m = fixed_masks(f.B, 3);
  std::vector<float> dz(std::size_t(f.B) * f.cfg.classes, 0.1f);
  std::vector<ExitGrad<float>> g(3, ExitGrad<float>{dz.data(), nullptr});
  REQUIRE_THROWS_WITH(vit_backward_exits<float>(f.P, f.ws, g, m), Contains("no training forward"));
  vit_forward_exits<float>(f.ws, f.P, f.images.data(), m);
  std::vector<ExitGrad<float>> two(2, ExitGrad<float>{dz.data(), nullptr});
  REQUIRE_THROWS_WITH(vit_backward_exits<float>(f.P, f.ws, two, m), Contains("2 exit gradients") && Contains("3 exits"));
  LayerMasks other = m;
  other.exec[0] = {0, 1, 3};
  REQUIRE_THROWS_WITH(vit_backward_exits<float>(f.P, f.ws, g, other), Contains("masks differ"));
  std::vector<ExitGrad<float>> missing = g;
  missing[1].dlogits = nullptr;
  REQUIRE_THROWS_WITH(vit_backward_exits<float>(f.P, f.ws, missing, m), Contains("exit 1 has 2 rows but no dlogits"));
  vit_forward_full<float>(f.ws, f.P, f.images.data(), f.B, nullptr);
  REQUIRE_THROWS_WITH(vit_backward_exits<float>(f.P, f.ws, g, m), Contains("vit_forward_full"));
  // In the right order it runs, and an exit without rows needs no dlogits.
  LayerMasks none = m;
  none.exec[2].clear();
  vit_forward_exits<float>(f.ws, f.P, f.images.data(), none);
  g[2].dlogits = nullptr;
  f.P.zero_grads();
  REQUIRE_NOTHROW(vit_backward_exits<float>(f.P, f.ws, g, none));
}

// The library's vit-ee objective (sum_j CE_j / B) written by the caller in its own buffers gives
// train_step_grads' gradients bit for bit.
template <class T>
void same_as_library_step() {
  Fixture<T> f;
  const LayerMasks m = fixed_masks(f.B, 3);
  const int M = 3, C = f.cfg.classes;
  ObjectiveConfig o;
  o.scheme = Scheme::vit_ee;
  const std::vector<double> p = o.block_probs(f.cfg);
  ObjectiveWorkspace<T> ow(f.cfg, f.B);
  StepStats st;
  f.P.zero_grads();
  train_step_grads<T>(st, f.ws, ow, f.P, f.images.data(), f.labels.data(), m, o, p, 0.0);
  const std::vector<T> want(f.P.grads(), f.P.grads() + f.P.size());

  f.P.zero_grads();
  const auto out = vit_forward_exits<T>(f.ws, f.P, f.images.data(), m);
  std::vector<std::vector<T>> dz(M), probs(M);
  std::vector<ExitGrad<T>> g(M);
  std::vector<std::int32_t> lab(f.B);
  double loss = 0;
  for (int j = 0; j < M; ++j) {
    const ExitOut<T>& e = out[j];
    for (int i = 0; i < e.n; ++i) lab[i] = f.labels[e.rows[i]];
    dz[j].assign(std::size_t(e.n) * C, T(0));
    probs[j].assign(std::size_t(e.n) * C, T(0));
    loss += cross_entropy_forward<T>(probs[j].data(), e.logits, lab.data(), e.n, C, T(1) / T(f.B));
    cross_entropy_backward<T>(dz[j].data(), probs[j].data(), lab.data(), e.n, C, T(1) / T(f.B));
    g[j] = {dz[j].data(), nullptr};
  }
  vit_backward_exits<T>(f.P, f.ws, g, m);
  CHECK(loss == st.loss);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < want.size(); ++i) differ += std::memcmp(&want[i], f.P.grads() + i, sizeof(T)) != 0;
  CHECK(differ == 0);
}

TEST_CASE("the low-level step with a hand-written vit-ee loss equals train_step_grads bitwise", "[api][model]") {
  SECTION("float") { same_as_library_step<float>(); }
  SECTION("double") { same_as_library_step<double>(); }
}

// L = sum_j sum_i [ sum_c a_jic z_jic^2 + sum_k r_jik f_jik ] over the rows that reached exit j:
// dL/dz = 2 a z, dL/df = r, both handed to the backward; against central differences of L.
void gradcheck_custom_loss(bool lgvit) {
  Fixture<double> f(lgvit);
  const LayerMasks m = fixed_masks(f.B, 3);
  const int M = 3, C = f.cfg.classes;
  std::vector<std::vector<double>> a(M), r(M), dz(M), df(M);
  auto loss_of = [&](std::span<const ExitOut<double>> out, bool grads) {
    long double L = 0;
    for (int j = 0; j < M; ++j) {
      const ExitOut<double>& e = out[j];
      const std::size_t nz = std::size_t(e.n) * C, nf = std::size_t(e.n) * e.feat_len;
      if (a[j].empty()) {
        a[j].resize(nz), r[j].resize(nf);
        fill_uniform(a[j].data(), nz, 10 + j, 0.1, 1.0);
        fill_uniform(r[j].data(), nf, 20 + j, -1.0, 1.0);
      }
      if (grads) dz[j].resize(nz), df[j].resize(nf);
      for (std::size_t k = 0; k < nz; ++k) {
        L += static_cast<long double>(a[j][k]) * e.logits[k] * e.logits[k];
        if (grads) dz[j][k] = 2 * a[j][k] * e.logits[k];
      }
      for (std::size_t k = 0; k < nf; ++k) {
        L += static_cast<long double>(r[j][k]) * e.feat[k];
        if (grads) df[j][k] = r[j][k];
      }
    }
    return L;
  };
  f.P.zero_grads();
  loss_of(vit_forward_exits<double>(f.ws, f.P, f.images.data(), m), true);
  std::vector<ExitGrad<double>> g(M);
  for (int j = 0; j < M; ++j) g[j] = {dz[j].data(), df[j].data()};
  vit_backward_exits<double>(f.P, f.ws, g, m);
  const std::vector<double> grad(f.P.grads(), f.P.grads() + f.P.size());
  auto loss = envit::testing::centred(
      [&] { return loss_of(vit_forward_exits<double>(f.ws, f.P, f.images.data(), m), false); });
  for (const ParamEntry& e : f.P.table())
    if (!e.buffer)
      check_grad(std::string(lgvit ? "lgvit " : "linear ") + e.name, f.P.values() + e.offset, grad.data() + e.offset,
                 e.numel, loss, 1e-6, 30, envit::testing::kStep);
}

TEST_CASE("the low-level step: gradient check of a caller's loss on logits and features", "[api][grad][model]") {
  SECTION("linear heads") { gradcheck_custom_loss(false); }
  SECTION("LGViT heads") { gradcheck_custom_loss(true); }
}
