// Whole multi-exit ViT gradient checks in double, for every scheme, with fixed masks that skip
// some samples at some blocks; plus the objective's identities at p_M = 0, the shared-prefix
// teacher, and the class-token-only last block against the all-token one.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <vector>

#include "envit/train/objective.hpp"
#include "testing.hpp"

using namespace envit;
using envit::testing::check_grad;
using envit::testing::fill_uniform;

namespace {

VitConfig tiny_config() {
  VitConfig c;
  c.image_size = 4; c.channels = 2; c.patch = 2;  // 4 patches + cls = 5 tokens
  c.dim = 6; c.depth = 3; c.heads = 2; c.mlp_hidden = 10; c.classes = 3;
  c.exits = {1, 2, 3};
  c.ln_eps = 1e-5;
  c.validate();
  return c;
}

// 17 tokens (8x8x1 images, patch 2): several GEMM row panels per sample, for the float tests.
VitConfig tokens17_config(int depth, std::vector<int> exits) {
  VitConfig c;
  c.image_size = 8; c.channels = 1; c.patch = 2;
  c.dim = 32; c.depth = depth; c.heads = 2; c.mlp_hidden = 48; c.classes = 5;
  c.exits = std::move(exits);
  c.validate();
  return c;
}

// Masks for B = 4 on 3 blocks: samples 1 and 3 skip block 2; samples 2 and 3 skip block 3.
LayerMasks fixed_masks(int B, int L) {
  LayerMasks m(L, B);
  m.all(B);
  m.exec[1] = {0, 2};
  m.exec[2] = {0, 1};
  return m;
}

struct Fixture {
  VitConfig cfg = tiny_config();
  int B = 4;
  ViTParams<double> P{cfg};
  ViTWorkspace<double> ws{cfg, B};
  ObjectiveWorkspace<double> ow{cfg, B};
  std::vector<double> images;
  std::vector<std::int32_t> labels{0, 2, 1, 2};
  Fixture() {
    P.init(7);
    // Non-trivial norms and biases so every gradient path carries signal.
    for (const ParamEntry& e : P.table())
      fill_uniform(P.values() + e.offset, e.numel, 100 + e.offset, -0.5, 0.5);
    for (const ParamEntry& e : P.table())
      if (e.name.find("norm") != std::string::npos && e.name.find("weight") != std::string::npos)
        for (std::size_t i = 0; i < e.numel; ++i) P.values()[e.offset + i] += 1.0;
    images.resize(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
    fill_uniform(images.data(), images.size(), 3);
  }
};

// The objective's parameter gradients through the whole model (progress 0.4) against central
// differences of its loss, every parameter; `ready`: a frozen teacher is in the workspace.
// Returns the statistics of the analytic step.
StepStats check_objective_grads(Fixture& f, const LayerMasks& m, const ObjectiveConfig& o, const std::vector<double>& p,
                                bool ready, const std::string& what) {
  StepStats st;
  f.P.zero_grads();
  vit_forward_train<double>(f.ws, f.P, f.images.data(), m);
  objective_forward<double>(st, f.ws, f.ow, f.P, f.labels.data(), m, o, p, 0.4, ready);
  vit_backward_train<double>(f.ws, f.P, m);
  std::vector<double> g(f.P.grads(), f.P.grads() + f.P.size());
  auto loss = [&] {
    StepStats s2;
    vit_forward_train<double>(f.ws, f.P, f.images.data(), m);
    objective_forward<double>(s2, f.ws, f.ow, f.P, f.labels.data(), m, o, p, 0.4, ready);
    return s2.loss;
  };
  for (const ParamEntry& e : f.P.table())
    check_grad(what + " " + e.name, f.P.values() + e.offset, g.data() + e.offset, e.numel, loss, 1e-6, 40);
  return st;
}

// `tweak` adjusts the objective (variants, reduction) before the check.
void gradcheck_scheme(Scheme s, TeacherSource t, void (*tweak)(ObjectiveConfig&) = nullptr) {
  Fixture f;
  ObjectiveConfig o;
  o.scheme = s;
  o.teacher = t;
  o.p_max = 0.3;
  o.byot_feat = 0.05;  // large enough to be visible in the check
  if (tweak) tweak(o);
  LayerMasks m = o.uses_dropout() ? fixed_masks(f.B, f.cfg.depth) : LayerMasks(f.cfg.depth, f.B);
  if (!o.uses_dropout()) m.all(f.B);
  std::vector<double> p = o.block_probs(f.cfg);
  StepStats st;
  // Teacher computed once and frozen: it carries no gradient, so finite differences must not see it move.
  bool ready = false;
  if (o.uses_kd()) {
    if (teacher_needs_full_pass(o, m)) {
      teacher_forward<double>(f.ws, f.P, f.images.data(), f.B);
    } else {
      vit_forward_train<double>(f.ws, f.P, f.images.data(), m);
      objective_forward<double>(st, f.ws, f.ow, f.P, f.labels.data(), m, o, p, 0.4, false);
    }
    ready = true;
  }
  check_objective_grads(f, m, o, p, ready, scheme_name(s));
}

}  // namespace

TEST_CASE("multi-exit ViT gradient check, every scheme, with skipped samples", "[grad][model]") {
  SECTION("vit-ee") { gradcheck_scheme(Scheme::vit_ee, TeacherSource::full); }
  SECTION("sdn") { gradcheck_scheme(Scheme::sdn, TeacherSource::full); }
  SECTION("byot") { gradcheck_scheme(Scheme::byot, TeacherSource::full); }
  SECTION("envit-sd") { gradcheck_scheme(Scheme::envit_sd, TeacherSource::full); }
  SECTION("envit-kd") { gradcheck_scheme(Scheme::envit_kd, TeacherSource::full); }
  SECTION("envit full teacher") { gradcheck_scheme(Scheme::envit, TeacherSource::full); }
  SECTION("envit self teacher") { gradcheck_scheme(Scheme::envit, TeacherSource::self); }
  SECTION("beem") { gradcheck_scheme(Scheme::beem, TeacherSource::full); }
  SECTION("byot mmrazor (norm hint, T^2 soft CE)") {
    gradcheck_scheme(Scheme::byot, TeacherSource::full, [](ObjectiveConfig& o) {
      o.set_byot(ByotVariant::mmrazor);
      o.byot_feat = 0.05;
    });
  }
  SECTION("byot released (soft CE, no T^2)") {
    gradcheck_scheme(Scheme::byot, TeacherSource::full, [](ObjectiveConfig& o) { o.set_byot(ByotVariant::released); });
  }
  SECTION("envit, reduction remaining") {
    gradcheck_scheme(Scheme::envit, TeacherSource::full, [](ObjectiveConfig& o) { o.reduction = LossReduction::remaining; });
  }
}

// COSEE: the exit assignment k_b is piecewise constant in the parameters; thresholds sit midway
// between observed signals so that the finite differences do not move a sample across one.
TEST_CASE("multi-exit ViT gradient check, cosee (exit weighting + energy calibration)", "[grad][model]") {
  Fixture f;
  ObjectiveConfig o;
  o.scheme = Scheme::cosee;
  o.p_max = 0;
  LayerMasks m(f.cfg.depth, f.B);
  m.all(f.B);
  const std::vector<double> p = o.block_probs(f.cfg);
  StepStats st;
  f.ow.cosee.thresholds = {0.5};
  vit_forward_train<double>(f.ws, f.P, f.images.data(), m);
  objective_forward<double>(st, f.ws, f.ow, f.P, f.labels.data(), m, o, p, 0.4, false);
  const int M = f.cfg.num_exits();
  std::vector<double> sig(f.ow.cosee.sig.begin(), f.ow.cosee.sig.begin() + std::size_t(M - 1) * f.B);
  std::sort(sig.begin(), sig.end());
  f.ow.cosee.thresholds.clear();
  for (std::size_t k : {std::size_t(0), sig.size() / 2, sig.size() - 2})
    f.ow.cosee.thresholds.push_back(0.5 * (sig[k] + sig[k + 1]));
  const StepStats checked = check_objective_grads(f, m, o, p, false, "cosee");
  CHECK(checked.cosee.calib > 0);  // the calibration term is active, so its gradient was checked too
}

TEST_CASE("fixed masks really skip: exits see only executed samples", "[model]") {
  Fixture f;
  LayerMasks m = fixed_masks(f.B, f.cfg.depth);
  vit_forward_train<double>(f.ws, f.P, f.images.data(), m);
  ObjectiveConfig o;
  std::vector<double> p = o.block_probs(f.cfg);
  StepStats st;
  objective_forward<double>(st, f.ws, f.ow, f.P, f.labels.data(), m, o, p, 0, false);
  CHECK(st.n == std::vector<int>{4, 2, 2});
}

TEST_CASE("with p_M = 0, envit equals envit-kd and envit-sd equals CE averaged over exits", "[model]") {
  Fixture f;
  std::vector<double> img = f.images;
  auto run = [&](Scheme s, double pm, std::vector<double>& grads) {
    ObjectiveConfig o;
    o.scheme = s;
    o.p_max = pm;
    std::vector<double> p = o.block_probs(f.cfg);
    LayerMasks m(f.cfg.depth, f.B);
    m.draw(11, 0, p, f.B);
    REQUIRE(m.complete());
    StepStats st;
    f.P.zero_grads();
    train_step_grads<double>(st, f.ws, f.ow, f.P, img.data(), f.labels.data(), m, o, p, 0.5);
    grads.assign(f.P.grads(), f.P.grads() + f.P.size());
    return st;
  };
  std::vector<double> g1, g2, g3;
  StepStats a = run(Scheme::envit, 0.0, g1);
  StepStats b = run(Scheme::envit_kd, 0.3, g2);  // envit-kd ignores p_M
  CHECK(a.loss == b.loss);
  CHECK(g1 == g2);
  StepStats c = run(Scheme::envit_sd, 0.0, g3);
  double mean_ce = 0;
  for (double ce : c.ce) mean_ce += ce;
  mean_ce /= double(c.ce.size());
  CHECK(c.loss == Approx(mean_ce).epsilon(1e-14));
  std::vector<double> g4;
  StepStats d = run(Scheme::vit_ee, 0.0, g4);  // sum of CE = M * mean
  CHECK(d.loss == Approx(mean_ce * 3).epsilon(1e-14));
  for (std::size_t i = 0; i < g3.size(); ++i) REQUIRE(g4[i] == Approx(3 * g3[i]).margin(1e-15));
}

TEST_CASE("a skipped sample's features are bitwise unchanged through the block", "[model]") {
  VitConfig cfg = tiny_config();
  ViTParams<float> P(cfg);
  P.init(3);
  const int B = 4;
  ViTWorkspace<float> ws(cfg, B);
  std::vector<float> img(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
  fill_uniform(img.data(), img.size(), 9);
  const std::size_t row = std::size_t(cfg.tokens()) * cfg.dim;
  // Only block 3 skips samples 1 and 3: their h_3 must equal h_2 bit for bit.
  LayerMasks m(cfg.depth, B);
  m.all(B);
  m.exec[2] = {0, 2};
  // h_2 via a run where block 3 is skipped by every sample.
  LayerMasks skip3(cfg.depth, B);
  skip3.all(B);
  skip3.exec[2].clear();
  vit_forward_train<float>(ws, P, img.data(), skip3);
  std::vector<float> h2(ws.h, ws.h + B * row);
  vit_forward_train<float>(ws, P, img.data(), m);
  for (int b : {1, 3})
    CHECK(std::memcmp(ws.h + b * row, h2.data() + b * row, row * sizeof(float)) == 0);
  for (int b : {0, 2})
    CHECK(std::memcmp(ws.h + b * row, h2.data() + b * row, row * sizeof(float)) != 0);
}

// The `full` teacher shares the training pass's prefix (teacher_from_branches): only the blocks
// after each sample's first skip are run again. It must give the complete model's values exactly.
TEST_CASE("the shared-prefix teacher equals the complete model's own forward", "[model][teacher]") {
  const VitConfig cfg = tokens17_config(5, {1, 3, 5});
  const int B = 9;
  ObjectiveConfig o;
  o.scheme = Scheme::envit;
  o.teacher = TeacherSource::full;
  o.p_max = 0.6;
  const std::vector<double> p = o.block_probs(cfg);
  // Random masks at a high skip rate plus edge cases. Set 1: sample 0 skips nothing, sample 8
  // skips block 1 (its branch point is the embedding). Set 2: nobody runs block 4.
  LayerMasks m1(cfg.depth, B), m2(cfg.depth, B);
  m1.draw(5, 3, p, B);
  for (auto& e : m1.exec)
    if (e.empty() || e.front() != 0) e.insert(e.begin(), 0);
  m1.exec[0].erase(std::remove(m1.exec[0].begin(), m1.exec[0].end(), 8), m1.exec[0].end());
  m2.draw(5, 4, p, B);
  m2.exec[3].clear();
  std::vector<int> first(B);
  first_skips(m1, first.data());
  CHECK(first[0] == cfg.depth);
  CHECK(first[8] == 0);
  first_skips(m2, first.data());
  for (int i = 0; i < B; ++i) CHECK(first[i] <= 3);
  std::vector<std::int32_t> labels(B);
  for (int b = 0; b < B; ++b) labels[b] = b % cfg.classes;
  const std::size_t BC = std::size_t(B) * cfg.classes, BD = std::size_t(B) * cfg.dim;

  for (const LayerMasks* mp : {&m1, &m2}) {
    const LayerMasks& m = *mp;
    REQUIRE(teacher_needs_full_pass(o, m));
    {  // float: bitwise equal teacher, logits, loss and gradients
      ViTParams<float> P(cfg);
      P.init(17);
      ViTWorkspace<float> ws(cfg, B);
      ObjectiveWorkspace<float> ow(cfg, B);
      std::vector<float> img(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
      fill_uniform(img.data(), img.size(), 21);
      // Reference: the teacher's own complete forward before the training pass.
      teacher_forward<float>(ws, P, img.data(), B);
      std::vector<float> t_ref(ws.teacher_logits, ws.teacher_logits + BC), f_ref(ws.feat_target, ws.feat_target + BD);
      StepStats st_ref;
      P.zero_grads();
      vit_forward_train<float>(ws, P, img.data(), m);
      objective_forward<float>(st_ref, ws, ow, P, labels.data(), m, o, p, 0.5, true);
      vit_backward_train<float>(ws, P, m);
      std::vector<float> g_ref(P.grads(), P.grads() + P.size());
      std::vector<float> z_ref(ws.logits[1], ws.logits[1] + BC);
      // The step as train_step_grads runs it.
      std::fill(ws.teacher_logits, ws.teacher_logits + BC, -1.0f);
      StepStats st;
      P.zero_grads();
      train_step_grads<float>(st, ws, ow, P, img.data(), labels.data(), m, o, p, 0.5);
      CHECK(std::memcmp(ws.teacher_logits, t_ref.data(), BC * sizeof(float)) == 0);
      CHECK(std::memcmp(ws.feat_target, f_ref.data(), BD * sizeof(float)) == 0);
      CHECK(std::memcmp(ws.logits[1], z_ref.data(), m.exec[2].size() * cfg.classes * sizeof(float)) == 0);
      CHECK(st.loss == st_ref.loss);
      CHECK(std::equal(g_ref.begin(), g_ref.end(), P.grads()));
    }
    {  // double (Eigen): equal to rounding
      ViTParams<double> P(cfg);
      P.init(17);
      ViTWorkspace<double> ws(cfg, B);
      std::vector<double> img(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
      fill_uniform(img.data(), img.size(), 21);
      teacher_forward<double>(ws, P, img.data(), B);
      std::vector<double> t_ref(ws.teacher_logits, ws.teacher_logits + BC);
      vit_forward_train<double>(ws, P, img.data(), m, ws.h2);
      teacher_from_branches<double>(ws, P, m);
      for (std::size_t i = 0; i < BC; ++i) REQUIRE(ws.teacher_logits[i] == Approx(t_ref[i]).margin(1e-12));
    }
  }
}

// Training runs the last block on class tokens only (ws.last_block_all_tokens false, the default):
// the same loss and gradients as the all-token block, to rounding, for every scheme (BYOT's hint
// reads the final class-token feature, the teachers the final exit), with samples skipping the
// last block. Float: the last exit's logits are bitwise the all-token block's (row-invariant GEMM).
TEST_CASE("the class-token-only last block gives the all-token step's loss and gradients", "[model][grad]") {
  for (Scheme s : {Scheme::envit, Scheme::byot, Scheme::sdn, Scheme::envit_sd}) {
    INFO(scheme_name(s));
    Fixture f;
    ObjectiveConfig o;
    o.scheme = s;
    o.p_max = 0.3;
    o.byot_feat = 0.05;
    LayerMasks m = fixed_masks(f.B, f.cfg.depth);
    if (!o.uses_dropout()) m.all(f.B);
    const std::vector<double> p = o.block_probs(f.cfg);
    auto step = [&](bool all_tokens, std::vector<double>& g) {
      f.ws.last_block_all_tokens = all_tokens;
      StepStats st;
      f.P.zero_grads();
      train_step_grads<double>(st, f.ws, f.ow, f.P, f.images.data(), f.labels.data(), m, o, p, 0.4);
      g.assign(f.P.grads(), f.P.grads() + f.P.size());
      return st.loss;
    };
    std::vector<double> g_all, g_cls;
    const double l_all = step(true, g_all), l_cls = step(false, g_cls);
    CHECK(l_cls == Approx(l_all).epsilon(1e-14));
    double mx = 0;
    for (double v : g_all) mx = std::max(mx, std::abs(v));
    REQUIRE(mx > 0);
    for (std::size_t i = 0; i < g_all.size(); ++i) REQUIRE(g_cls[i] == Approx(g_all[i]).margin(1e-13 * mx));
  }
  // float, packed GEMM, 17 tokens and two threads
  const VitConfig cfg = tokens17_config(3, {2, 3});
  const int B = 6;
  const int old_threads = num_threads();
  set_num_threads(2);
  ViTParams<float> P(cfg);
  P.init(5);
  ViTWorkspace<float> ws(cfg, B);
  ObjectiveWorkspace<float> ow(cfg, B);
  std::vector<float> img(std::size_t(B) * cfg.channels * cfg.image_size * cfg.image_size);
  fill_uniform(img.data(), img.size(), 6);
  std::vector<std::int32_t> labels{0, 1, 2, 3, 4, 0};
  ObjectiveConfig o;
  const std::vector<double> p = o.block_probs(cfg);
  LayerMasks m(cfg.depth, B);
  m.all(B);
  m.exec[2] = {0, 2, 3, 5};
  auto step = [&](bool all_tokens, std::vector<float>& g, std::vector<float>& z) {
    ws.last_block_all_tokens = all_tokens;
    StepStats st;
    P.zero_grads();
    train_step_grads<float>(st, ws, ow, P, img.data(), labels.data(), m, o, p, 0.5);
    g.assign(P.grads(), P.grads() + P.size());
    z.assign(ws.logits[1], ws.logits[1] + 4 * cfg.classes);
    return st.loss;
  };
  std::vector<float> g_all, g_cls, z_all, z_cls;
  const double l_all = step(true, g_all, z_all), l_cls = step(false, g_cls, z_cls);
  CHECK(l_cls == l_all);
  CHECK(z_cls == z_all);
  float mx = 0;
  for (float v : g_all) mx = std::max(mx, std::abs(v));
  for (std::size_t i = 0; i < g_all.size(); ++i) CHECK(g_cls[i] == Approx(g_all[i]).margin(1e-5 * mx));
  set_num_threads(old_threads);
}
