// LGViT heads and training in double: each head kind's gradients (parameters, input tokens, a
// feature gradient), the assignment rule, stage 1's weights through the whole model, stage 2's
// loss gradient with the backbone frozen, parameter names and buffers, eval-mode heads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <set>
#include <vector>

#include "envit/infer/early_exit.hpp"
#include "envit/infer/macs.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/train/lgvit.hpp"
#include "testing.hpp"

using namespace envit;
using namespace envit::testing;

namespace {

// 20x20x1 images, patch 4: a 5x5 grid (strides 2 and 3 give 3x3 and 2x2), dim 16 (8 heads of 2),
// exits after blocks 1..5: heads conv1_1, conv2_1, attn_r2, attn_r3 and the final head.
VitConfig lg_config() {
  VitConfig c;
  c.image_size = 20; c.channels = 1; c.patch = 4;
  c.dim = 16; c.depth = 5; c.heads = 2; c.mlp_hidden = 24; c.classes = 4;
  c.exits = {1, 2, 3, 4, 5};
  c.ln_eps = 1e-5;
  c.exit_head = "lgvit";
  c.validate();
  return c;
}

template <class T>
void randomise(ViTParams<T>& P, std::uint64_t seed) {
  for (const ParamEntry& e : P.table()) {
    fill_uniform(P.values() + e.offset, e.numel, seed + e.offset, -0.5, 0.5);
    const bool scale = e.name.find("norm") != std::string::npos || e.name.find("running_var") != std::string::npos ||
                       (e.name.find(".conv1.2.") != std::string::npos || e.name.find("proj_bn") != std::string::npos ||
                        e.name.find(".conv2.1.") != std::string::npos);
    if (scale && (e.name.find("weight") != std::string::npos || e.name.find("running_var") != std::string::npos))
      for (std::size_t i = 0; i < e.numel; ++i) P.values()[e.offset + i] += T(1);
  }
}

// The double-precision setup of the gradient and inference tests: one thread (tiny shapes: thread
// wake-ups dominate on a busy host), lg_config(), parameters randomised from `seed`, and `batch`
// random images from `image_seed`.
struct LgDouble {
  ThreadGuard guard;
  VitConfig cfg = lg_config();
  ViTParams<double> P;
  int B;
  std::vector<double> images;
  LgDouble(std::uint64_t seed, int batch, std::uint64_t image_seed, bool with_grads = true)
      : P(cfg, with_grads), B(batch),
        images(random_vec<double>(std::size_t(batch) * cfg.image_size * cfg.image_size, image_seed)) {
    omp_set_num_threads(1);
    randomise(P, seed);
  }
};

// Stage 2's loss adds many terms of up to ~10 (Gram-matrix MSEs), whose double rounding (~1e-15
// relative) divided by the step is ~1e-10: at kStep = 1e-5 that is 1e-5 of gradients near 1e-4
// (measured: h = 1e-6 fails at 2e-5, h = 1e-4 passes everywhere), while the truncation error at
// h = 1e-4 stays ~1e-8 relative for these smooth functions.
constexpr double kStage2Step = 1e-4;

}  // namespace

TEST_CASE("lgvit: head kinds by the documented rule", "[lgvit]") {
  using L = LgvitKind;
  CHECK(lgvit_head_kinds(8) == std::vector<L>{L::conv1_1, L::conv1_1, L::conv2_1, L::conv2_1, L::attn_r2, L::attn_r2,
                                              L::attn_r3, L::attn_r3});
  CHECK(lgvit_head_kinds(6) == std::vector<L>{L::conv1_1, L::conv2_1, L::attn_r2, L::attn_r2, L::attn_r3, L::attn_r3});
  CHECK(lgvit_head_kinds(4) == std::vector<L>{L::conv1_1, L::conv2_1, L::attn_r2, L::attn_r3});
  CHECK(lgvit_head_kinds(2) == std::vector<L>{L::conv1_1, L::attn_r2});
  CHECK(lgvit_head_kinds(5) == std::vector<L>{L::conv1_1, L::conv2_1, L::attn_r2, L::attn_r2, L::attn_r3});
  CHECK(lgvit_head_kinds(1) == std::vector<L>{L::attn_r2});
  VitConfig c = lg_config();
  c.dim = 12;
  CHECK_THROWS_AS(c.validate(), ValueError);
  c = lg_config();
  c.exit_head = "conv";
  CHECK_THROWS_AS(c.validate(), ValueError);
  // config round trip; linear-head configs keep their keys
  CHECK(VitConfig::from_map(lg_config().to_map()).exit_head == "lgvit");
  CHECK(VitConfig::tiny28().to_map().count("exit_head") == 0);
}

TEST_CASE("lgvit: parameter table uses the authors' names, running statistics are buffers", "[lgvit]") {
  ViTParams<float> P(lg_config());
  CHECK(P.find("exits.0.mlp.conv1.0.weight")->shape == std::vector<std::int64_t>{16, 16, 1, 1});
  CHECK(P.find("exits.0.mlp.proj.weight")->shape == std::vector<std::int64_t>{16, 1, 3, 3});
  CHECK(P.find("exits.0.mlp.proj_bn.running_var")->buffer);
  CHECK(P.find("exits.1.mlp.proj.weight") == nullptr);  // conv2_1 has no depthwise conv
  CHECK(P.find("exits.1.mlp.conv2.1.running_mean")->buffer);
  CHECK(P.find("exits.2.mlp.qkv.weight")->shape == std::vector<std::int64_t>{48, 16});
  CHECK(P.find("exits.2.mlp.qkv.bias") == nullptr);
  CHECK(P.find("exits.3.classifier.weight")->shape == std::vector<std::int64_t>{4, 16});
  CHECK(P.find("norm.weight") != nullptr);
  CHECK(P.find("exits.0.norm.weight") == nullptr);
  P.init(1);
  CHECK(P.value("exits.0.mlp.conv1.2.running_var")[3] == 1.f);
  CHECK(P.value("exits.0.mlp.conv1.2.running_mean")[3] == 0.f);
  // an optimiser step never moves a buffer, even with a gradient present
  for (std::size_t i = 0; i < P.size(); ++i) P.grads()[i] = 1.f;
  AdamWState<float> st(P.size());
  const float rv = P.value("exits.1.mlp.conv1.2.running_var")[0];
  adamw_step(P, st, AdamWConfig{}, 0.1);
  CHECK(P.value("exits.1.mlp.conv1.2.running_var")[0] == rv);
  sgd_step(P, 0.1);
  CHECK(P.value("exits.1.mlp.conv1.2.running_var")[0] == rv);
}

TEST_CASE("lgvit: each head's gradients in double (train and eval BatchNorm)", "[lgvit][grad]") {
  LgDouble fx(50, 3, 0);
  const VitConfig& cfg = fx.cfg;
  ViTParams<double>& P = fx.P;
  const int B = fx.B;
  ViTWorkspace<double> ws(cfg, B);
  const std::ptrdiff_t N = cfg.tokens(), D = cfg.dim, C = cfg.classes;
  auto tokens = random_vec<double>(std::size_t(B * N * D), 9, -1.5, 1.5);
  for (int k = 0; k < 4; ++k)
    for (BnMode mode : {BnMode::train, BnMode::eval}) {
      const LgvitHeadShape hs = ws.lgvit_shape(k, B);
      CAPTURE(lgvit_kind_name(hs.kind), int(mode));
      const std::size_t nf = std::size_t(B * hs.feat_tokens() * D);
      auto A = random_vec<double>(std::size_t(B * C), 11 + k), F = random_vec<double>(nf, 12 + k);
      std::vector<double> logits(std::size_t(B * C));
      auto loss = centred([&] {
        lgvit_head_forward<double>(logits.data(), ws.lg[k], tokens.data(), P.lgvit(k), hs, mode);
        std::vector<double> y(ws.lg[k].y, ws.lg[k].y + nf);
        return dot_ld(logits, A) + dot_ld(y, F);
      });
      P.zero_grads();
      lgvit_head_forward<double>(logits.data(), ws.lg[k], tokens.data(), P.lgvit(k), hs, mode);
      std::vector<double> dtok(tokens.size(), kPre);
      lgvit_head_backward<double>(dtok.data(), P.lgvit_grads(k), A.data(), F.data(), ws.lg[k], P.lgvit(k), hs, ws.lg_ws,
                                  mode);
      auto gt = minus_pre(dtok);
      check_grad("dtokens", tokens.data(), gt.data(), gt.size(), loss, 1e-6, 300, kStep);
      const std::string pre = "exits." + std::to_string(k) + ".";
      for (const ParamEntry& e : P.table()) {
        if (e.name.rfind(pre, 0) != 0 || e.buffer) continue;
        check_grad(e.name, P.values() + e.offset, P.grads() + e.offset, e.numel, loss, 1e-6, 64, kStep);
      }
      // no input gradient requested: parameter gradients unchanged
      std::vector<double> g1(P.grads(), P.grads() + P.size());
      P.zero_grads();
      lgvit_head_forward<double>(logits.data(), ws.lg[k], tokens.data(), P.lgvit(k), hs, mode);
      lgvit_head_backward<double>(nullptr, P.lgvit_grads(k), A.data(), F.data(), ws.lg[k], P.lgvit(k), hs, ws.lg_ws, mode);
      require_close("grads without dtokens", P.grads(), g1.data(), g1.size(), 1e-12, 1e-12);
    }
}

TEST_CASE("lgvit: stage 1 weights and whole-model gradients in double", "[lgvit][grad]") {
  LgDouble fx(70, 3, 5);
  const VitConfig& cfg = fx.cfg;
  ViTParams<double>& P = fx.P;
  const int B = fx.B;
  const std::vector<double>& images = fx.images;
  ViTWorkspace<double> ws(cfg, B);
  ObjectiveWorkspace<double> ow(cfg, B);
  std::vector<std::int32_t> labels{0, 3, 1};
  LayerMasks m(cfg.depth, B);
  m.all(B);
  ObjectiveConfig o;
  o.scheme = Scheme::lgvit;
  const std::vector<double> p = o.block_probs(cfg);
  for (double q : p) CHECK(q == 0.0);
  // weights: odd steps s_j / (sum_k s_k + L), even steps the final exit alone
  o.lgvit_odd_step = true;
  CHECK(exit_weights(o, cfg, 1, p, 0).w == Approx(2.0 / 15.0));
  CHECK(exit_weights(o, cfg, 4, p, 0).w == Approx(5.0 / 15.0));
  o.lgvit_odd_step = false;
  CHECK(exit_weights(o, cfg, 1, p, 0).w == 0.0);
  CHECK(exit_weights(o, cfg, 4, p, 0).w == 1.0);
  for (bool odd : {true, false}) {
    o.lgvit_odd_step = odd;
    CAPTURE(odd);
    StepStats st;
    auto loss = centred([&] {
      vit_forward_train<double>(ws, P, images.data(), m);
      objective_forward<double>(st, ws, ow, P, labels.data(), m, o, p, 0.0, false);
      return (long double)st.loss;
    });
    P.zero_grads();
    const double rv0 = P.value("exits.0.mlp.conv1.2.running_var")[0];
    train_step_grads<double>(st, ws, ow, P, images.data(), labels.data(), m, o, p, 0.0);
    CHECK(P.value("exits.0.mlp.conv1.2.running_var")[0] != rv0);  // running statistics moved
    for (const char* name : {"blocks.0.attn.qkv.weight", "patch_embed.proj.weight", "exits.0.mlp.proj.weight",
                             "exits.1.mlp.conv2.1.weight", "exits.2.mlp.qkv.weight", "exits.3.classifier.bias", "head.weight"}) {
      const ParamEntry& e = P.at(name);
      check_grad(name, P.values() + e.offset, P.grads() + e.offset, e.numel, loss, 1e-6, 16, kStep);
      if (!odd && std::string(name).rfind("exits.", 0) == 0)
        for (std::size_t i = 0; i < e.numel; ++i) REQUIRE(P.grads()[e.offset + i] == 0.0);
    }
  }
}

TEST_CASE("lgvit: stage 2 loss gradients in double, backbone untouched", "[lgvit][grad]") {
  LgDouble fx(90, 3, 6);
  const VitConfig& cfg = fx.cfg;
  ViTParams<double>& P = fx.P;
  const int B = fx.B;
  const std::vector<double>& images = fx.images;
  ViTWorkspace<double> ws(cfg, B);
  ws.last_block_all_tokens = true;
  LgvitDistillWorkspace<double> lw(cfg, B);
  std::vector<std::int32_t> labels{2, 0, 1};
  LayerMasks m(cfg.depth, B);
  m.all(B);
  for (int variant = 0; variant < 2; ++variant) {
    ObjectiveConfig o;
    o.scheme = Scheme::lgvit;
    o.lgvit_het = 0.5;  // large enough to be visible in the check
    o.lgvit_hom = 0.05;
    if (variant == 1) { o.lgvit_teacher_ln = true; o.lgvit_detach_hom = true; o.lgvit_kd_per_class = false; }
    CAPTURE(variant);
    StepStats st;
    auto loss = centred([&] {
      P.zero_grads();
      lgvit_distill_step_grads<double>(st, ws, lw, P, images.data(), labels.data(), m, o);
      return (long double)st.loss;
    });
    P.zero_grads();
    lgvit_distill_step_grads<double>(st, ws, lw, P, images.data(), labels.data(), m, o);
    std::vector<double> g(P.grads(), P.grads() + P.size());
    for (const ParamEntry& e : P.table()) {
      if (e.buffer) continue;
      if (e.name.rfind("exits.", 0) != 0) {
        for (std::size_t i = 0; i < e.numel; ++i) REQUIRE(g[e.offset + i] == 0.0);
        continue;
      }
      // variant 1 detaches the homogeneous targets (the last head of each group: exits 1 and 3), whose
      // finite differences then include the G terms their gradients leave out
      if (variant == 0 || (e.name.rfind("exits.1.", 0) != 0 && e.name.rfind("exits.3.", 0) != 0))
        check_grad(e.name, P.values() + e.offset, g.data() + e.offset, e.numel, loss, 1e-6, 12, kStage2Step);
    }
    CHECK(st.feat[0] > 0);
    CHECK(st.feat[2] > 0);
    // a small SGD step on the heads lowers the loss on the same batch; the backbone does not move
    const double before = st.loss;
    const std::vector<double> vals(P.values(), P.values() + P.size());
    const std::vector<char> tr = lgvit_stage2_trainable(P);
    sgd_step(P, 1e-3, &tr);
    P.zero_grads();
    lgvit_distill_step_grads<double>(st, ws, lw, P, images.data(), labels.data(), m, o);
    CHECK(st.loss < before);
    for (const ParamEntry& e : P.table())
      if (e.name.rfind("exits.", 0) != 0)
        for (std::size_t i = 0; i < e.numel; ++i) REQUIRE(P.values()[e.offset + i] == vals[e.offset + i]);
    std::copy(vals.begin(), vals.end(), P.values());
  }
}

TEST_CASE("lgvit: MACs count the heads exactly (eq. 19)", "[lgvit][macs]") {
  const VitConfig cfg = lg_config();  // P = 25, D = 16, C = 4, grid 5 -> 3x3 (s 2), 2x2 (s 3)
  const VitMacs m = vit_macs(cfg);
  const std::int64_t D = 16, C = 4, P = 25;
  CHECK(m.exit_head[0] == 2 * P * D * D + 9 * P * D + D * C);
  CHECK(m.exit_head[1] == 2 * P * D * D + D * C);
  CHECK(m.exit_head[2] == 9 * D * 3 * D + 2 * 81 * D + 9 * D * D + D * C);
  CHECK(m.exit_head[3] == 4 * D * 3 * D + 2 * 16 * D + 4 * D * D + D * C);
  CHECK(m.exit_head[4] == m.head);
  CHECK(m.to_exit(1) == m.embed + 2 * m.block + m.exit_head[0] + m.exit_head[1]);
  CHECK(m.full() == m.embed + 5 * m.block + m.head);
  // ViT-B/16 with LGViT heads after blocks 4..11: a conv1_1 head is about 16% of a block
  VitConfig b = VitConfig::vit_b16(1000);
  b.exits = {4, 5, 6, 7, 8, 9, 10, 11, 12};
  b.exit_head = "lgvit";
  const VitMacs mb = vit_macs(b);
  const double r = double(mb.exit_head[0] - mb.head) / double(mb.block);
  CHECK(r > 0.155);
  CHECK(r < 0.165);
  CHECK(mb.exit_head[4] < mb.exit_head[2]);  // attn_r2 on 7x7 tokens is cheaper than conv2_1 on 14x14
}

TEST_CASE("lgvit: early exit with eval-mode heads agrees with the complete model", "[lgvit][infer]") {
  LgDouble fx(33, 5, 8, false);
  const VitConfig& cfg = fx.cfg;
  const ViTParams<double>& P = fx.P;
  const std::vector<double>& images = fx.images;
  const int B = fx.B, M = cfg.num_exits(), C = cfg.classes;
  InferenceWorkspace<double> iw(cfg, B);
  std::vector<double> all(std::size_t(M) * B * C);
  infer_all_exits<double>(iw, P, images.data(), B, all.data(), std::ptrdiff_t(B) * C);
  ViTWorkspace<double> ws(cfg, B);
  std::vector<double> full(all.size());
  std::vector<double*> ptr;
  for (int j = 0; j < M; ++j) ptr.push_back(full.data() + std::size_t(j) * B * C);
  vit_forward_full<double>(ws, P, images.data(), B, ptr.data());
  require_close("per-sample heads vs batched eval heads", all.data(), full.data(), all.size(), 1e-12, 1e-12);
  // a sample's logits do not depend on its batch (eval-mode BatchNorm)
  std::vector<double> one(std::size_t(M) * C);
  infer_all_exits<double>(iw, P, images.data() + 2 * cfg.image_size * cfg.image_size, 1, one.data(), C);
  for (int j = 0; j < M; ++j)
    for (int c = 0; c < C; ++c) CHECK(one[std::size_t(j) * C + c] == all[(std::size_t(j) * B + 2) * C + c]);
  // early exit at a confidence threshold that splits the batch: each sample's exit and prediction
  // are those of the first exit whose confidence passes
  std::vector<double> conf0;  // exit 0's confidences; their median splits the batch
  for (int b = 0; b < B; ++b) {
    ExitTrack t;
    conf0.push_back(exit_score(ExitCriterion::confidence(0.5), all.data() + std::size_t(b) * C, C, t).score);
  }
  std::sort(conf0.begin(), conf0.end());
  const ExitCriterion crit = ExitCriterion::confidence(conf0[B / 2]);
  std::vector<int> ex(B), pred(B);
  std::set<int> exits_seen;
  early_exit_batch<double>(iw, P, images.data(), B, crit, ExitOutput<double>{ex.data(), pred.data(), nullptr});
  for (int b = 0; b < B; ++b) {
    int want = M - 1;
    ExitTrack track;
    for (int j = 0; j + 1 < M; ++j)
      if (crit.fires(j, M, exit_score(crit, all.data() + (std::size_t(j) * B + b) * C, C, track).score)) {
        want = j;
        break;
      }
    CHECK(ex[std::size_t(b)] == want);
    exits_seen.insert(ex[std::size_t(b)]);
  }
  INFO("exits taken: " << exits_seen.size());
  CHECK(exits_seen.size() >= 2);  // the threshold splits the batch
}
