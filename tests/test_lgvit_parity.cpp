// LGViT against PyTorch (tests/data/gen_lgvit_fixture.py -> lgvit_fixture.safetensors): every
// exit's eval-mode logits, one stage-1 step (loss, SGD update, BatchNorm running statistics) and one
// stage-2 step (heads' train-mode logits and features, loss, SGD update of the heads alone), in
// double (held to ~1e-10) and float (to ~1e-4 relative: float32 PyTorch and float envit round
// differently through BatchNorm's small-batch statistics).
#include <cstdlib>
#include <string>
#include <vector>

#include "envit/io/safetensors.hpp"
#include "envit/optim/adamw.hpp"
#include "envit/train/checkpoint.hpp"
#include "envit/train/lgvit.hpp"
#include "parity_testing.hpp"
#include "testing.hpp"

using namespace envit;
using namespace envit::testing;

namespace {

const StFile& fixture() { return parity_fixture("lgvit_fixture.safetensors"); }

VitConfig fixture_config() {
  const StFile& f = fixture();
  std::map<std::string, std::string> m;
  for (const char* k : {"image_size", "channels", "patch", "dim", "depth", "heads", "mlp_hidden", "classes", "exits",
                        "ln_eps", "exit_head"})
    m[k] = f.meta_or(k, "");
  return VitConfig::from_map(m);
}

std::vector<double> fixture_ref(const std::string& name) {
  std::vector<float> v32;
  const StFile& f = fixture();
  const StTensor* t = f.find(name);
  INFO("fixture tensor " << name);
  REQUIRE(t != nullptr);
  if (t->dtype == "F64") {
    auto v = f.get<double>(name);
    return v;
  }
  v32 = f.get<float>(name);
  return std::vector<double>(v32.begin(), v32.end());
}

template <class T>
void load_initial(ViTParams<T>& P) {
  for (const ParamEntry& e : P.table()) {
    auto v = fixture_ref("param." + e.name);
    REQUIRE(v.size() == e.numel);
    for (std::size_t i = 0; i < e.numel; ++i) P.values()[e.offset + i] = T(v[i]);
  }
}

template <class T>
void run_parity(double rel, double abs_tol) {
  const bool dbl = std::is_same_v<T, double>;
  const std::string sfx = dbl ? "" : "32";
  const VitConfig cfg = fixture_config();
  const int B = std::stoi(fixture().meta_or("batch", "0")), M = cfg.num_exits(), C = cfg.classes;
  const double lr = std::stod(fixture().meta_or("lr", "0"));
  REQUIRE(cfg.lgvit());
  auto img_d = fixture_ref("images");
  std::vector<T> images(img_d.begin(), img_d.end());
  std::vector<std::int32_t> labels = fixture().get<std::int32_t>("labels");
  REQUIRE(int(labels.size()) == B);
  ViTParams<T> P(cfg);
  ViTWorkspace<T> ws(cfg, B);
  LayerMasks m(cfg.depth, B);
  m.all(B);

  // eval mode: the complete model's exits with running statistics
  load_initial(P);
  std::vector<T> logits(std::size_t(M) * B * C);
  std::vector<T*> ptr;
  for (int j = 0; j < M; ++j) ptr.push_back(logits.data() + std::size_t(j) * B * C);
  vit_forward_full<T>(ws, P, images.data(), B, ptr.data());
  for (int j = 0; j < M; ++j) {
    auto r = fixture_ref("eval.logits" + sfx + "." + std::to_string(j));
    require_close("eval logits exit " + std::to_string(j), ptr[j], r.data(), r.size(), rel, abs_tol);
  }

  // stage 1, an odd step: loss, SGD update, running statistics
  {
    ObjectiveWorkspace<T> ow(cfg, B);
    ObjectiveConfig o;
    o.scheme = Scheme::lgvit;
    o.lgvit_odd_step = true;
    const std::vector<double> p = o.block_probs(cfg);
    StepStats st;
    P.zero_grads();
    train_step_grads<T>(st, ws, ow, P, images.data(), labels.data(), m, o, p, 0.0);
    const double want = fixture_ref("stage1.loss" + sfx)[0];
    CHECK(std::abs(st.loss - want) <= rel * std::abs(want));
    sgd_step(P, lr);
    for (const ParamEntry& e : P.table()) {
      const std::string n = "stage1.updated" + sfx + "." + e.name;
      if (!fixture().find(n)) continue;
      auto r = fixture_ref(n);
      require_close(n, P.values() + e.offset, r.data(), r.size(), rel, abs_tol);
    }
  }

  // stage 2: heads' train-mode outputs, loss, SGD update of the heads alone
  load_initial(P);
  {
    ws.last_block_all_tokens = true;
    LgvitDistillWorkspace<T> lw(cfg, B);
    ObjectiveConfig o;
    o.scheme = Scheme::lgvit;
    StepStats st;
    P.zero_grads();
    lgvit_distill_step_grads<T>(st, ws, lw, P, images.data(), labels.data(), m, o);
    for (int k = 0; k + 1 < M; ++k) {
      auto rl = fixture_ref("stage2.logits" + sfx + "." + std::to_string(k));
      require_close("stage-2 logits head " + std::to_string(k), ws.logits[k], rl.data(), rl.size(), rel, abs_tol);
      auto rf = fixture_ref("stage2.feat" + sfx + "." + std::to_string(k));
      require_close("stage-2 feature head " + std::to_string(k), ws.lg[k].y, rf.data(), rf.size(), rel, abs_tol);
    }
    const double want = fixture_ref("stage2.loss" + sfx)[0];
    CHECK(std::abs(st.loss - want) <= rel * std::abs(want));
    const std::vector<T> before(P.values(), P.values() + P.size());
    const std::vector<char> tr = lgvit_stage2_trainable(P);
    sgd_step(P, lr, &tr);
    for (const ParamEntry& e : P.table()) {
      if (e.name.rfind("exits.", 0) != 0) {
        for (std::size_t i = 0; i < e.numel; ++i) REQUIRE(P.values()[e.offset + i] == before[e.offset + i]);
        continue;
      }
      auto r = fixture_ref("stage2.updated" + sfx + "." + e.name);
      require_close("stage-2 updated " + e.name, P.values() + e.offset, r.data(), r.size(), rel, abs_tol);
    }
  }
}

}  // namespace

TEST_CASE("lgvit parity with PyTorch: double", "[lgvit][e2e]") { run_parity<double>(1e-10, 1e-12); }
TEST_CASE("lgvit parity with PyTorch: float", "[lgvit][e2e]") { run_parity<float>(1e-4, 1e-5); }

TEST_CASE("lgvit: checkpoint round trip keeps the heads and their running statistics", "[lgvit][io]") {
  const VitConfig cfg = fixture_config();
  ViTParams<float> P(cfg);
  load_initial(P);
  AdamWState<float> opt(P.size());
  const StFile f = checkpoint_build<float>(P, &opt, {});
  CHECK(f.metadata.at("config.exit_head") == "lgvit");
  CHECK(checkpoint_config(f).exit_head == "lgvit");
  ViTParams<float> Q(checkpoint_config(f));
  AdamWState<float> opt2(Q.size());
  checkpoint_restore<float>(f, Q, opt2);
  for (const char* n : {"exits.0.mlp.proj_bn.running_var", "exits.1.mlp.conv2.1.running_mean", "exits.3.mlp.qkv.weight"}) {
    const ParamEntry& e = P.at(n);
    for (std::size_t i = 0; i < e.numel; ++i) REQUIRE(Q.value(n)[i] == P.value(n)[i]);
  }
}
