// Importing pretrained ViTs: logits of models saved by tests/data/gen_pretrained_fixtures.py in the
// Hugging Face, timm and torchvision layouts (F32, BF16, F16) against PyTorch's, the load report,
// position-embedding resampling, and the named errors for what cannot be imported.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "envit/io/half.hpp"
#include "envit/weights/checkpoint.hpp"
#include "envit/weights/pretrained.hpp"
#include "envit/weights/pretrained_export.hpp"
#include "envit/weights/pretrained_load.hpp"
#include "envit/model/vit.hpp"
#include "io/io_util.hpp"

using namespace envit;
using envit::testing::message_of;
using envit::testing::TempDir;

namespace {

std::string fixture(const std::string& name) {
  const char* d = std::getenv("ENVIT_TEST_DATA");
  REQUIRE(d != nullptr);
  return std::string(d) + "/pretrained/" + name;
}
const StFile& reference() {
  static StFile f = safetensors_read(fixture("reference.safetensors"));
  return f;
}

// Final-exit logits of P on `images` (B images of P's size).
std::vector<float> final_logits(const ViTParams<float>& P, const std::vector<float>& images, int B) {
  ViTWorkspace<float> ws(P.config(), B);
  const int M = P.config().num_exits();
  std::vector<float> out(std::size_t(B) * P.config().classes);
  std::vector<float*> ptrs(std::size_t(M), nullptr);
  ptrs[M - 1] = out.data();
  vit_forward_full(ws, P, images.data(), B, ptrs.data());
  return out;
}

void require_close(const std::vector<float>& got, const std::vector<float>& want, double tol, const std::string& what) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (double d = std::abs(double(got[i]) - want[i]); d > worst) worst = d, at = i;
  INFO(what << ": largest difference " << worst << " at " << at << " (envit " << got[at] << ", torch " << want[at] << ")");
  REQUIRE(worst <= tol);
}

PretrainedFlags tiny_flags() { return {2, 1e-6}; }

// Reads `src`, builds the run model (classes from the source unless given) and loads it.
struct Imported {
  Pretrained src;
  std::unique_ptr<ViTParams<float>> P;
  PretrainedReport report;
};
Imported import(const std::string& path, PretrainedFlags flags, int classes = 0, std::vector<int> exits = {},
                int image_size = 0, bool allow_new_heads = false) {
  Imported m;
  m.src = pretrained_read(path, WeightFormat::detect, flags);
  VitConfig c = pretrained_run_config(m.src, image_size, classes ? classes : m.src.cfg.classes, exits);
  m.P = std::make_unique<ViTParams<float>>(c, false);
  m.P->init(7);
  m.report = pretrained_load(m.src, *m.P, {allow_new_heads});
  return m;
}

}  // namespace

TEST_CASE("pretrained: every layout imports with PyTorch's logits", "[pretrained][ref]") {
  struct Case { const char* path; WeightFormat fmt; PretrainedFlags flags; int widened; };
  const Case cases[] = {{"hf_cls_f32", WeightFormat::hf, {}, 0},
                        {"timm_f32.safetensors", WeightFormat::timm, tiny_flags(), 0},
                        {"timm_bf16.safetensors", WeightFormat::timm, tiny_flags(), 32},
                        {"tv_f32.safetensors", WeightFormat::torchvision, tiny_flags(), 0},
                        {"tv_f16.safetensors", WeightFormat::torchvision, tiny_flags(), 32}};
  const std::vector<float> images = reference().get<float>("images");
  for (const Case& k : cases) {
    INFO(k.path);
    Imported m = import(fixture(k.path), k.flags);
    CHECK(m.src.format == k.fmt);
    CHECK(m.src.cfg.str() == VitConfig{8, 3, 4, 12, 2, 2, 24, 4, {2}, m.src.cfg.ln_eps}.str());
    CHECK(m.src.cfg.ln_eps == (k.fmt == WeightFormat::hf ? 1e-12 : 1e-6));
    CHECK(m.report.matched.size() == m.P->table().size());
    CHECK(m.report.fresh.empty());
    CHECK(int(m.report.widened.size()) == k.widened);  // all 32 tensors of the 2-block model
    const std::string name = std::string(k.path).substr(0, std::string(k.path).find('.'));
    require_close(final_logits(*m.P, images, 2), reference().get<float>(name + ".logits"), 1e-4, name);
  }
}

TEST_CASE("pretrained: Hugging Face names are fused and renamed, normalisation read", "[pretrained]") {
  Imported m = import(fixture("hf_cls_f32"), {});
  CHECK(m.report.renamed.size() == m.P->table().size());  // every name differs; q, k, v give one entry
  bool fused = false;
  for (auto& s : m.report.renamed)
    fused |= s == "vit.encoder.layer.1.attention.attention.query.weight + vit.encoder.layer.1.attention.attention."
                  "key.weight + vit.encoder.layer.1.attention.attention.value.weight -> blocks.1.attn.qkv.weight";
  CHECK(fused);
  CHECK(m.src.mean == std::vector<double>{0.5, 0.5, 0.5});
  CHECK(m.src.std == std::vector<double>{0.5, 0.5, 0.5});
}

TEST_CASE("pretrained: ViTModel (BF16, pooler) gives the final class-token feature", "[pretrained][ref]") {
  // 12 classes = dim: with an identity classifier the logits are the final LayerNorm's class token.
  Imported m = import(fixture("hf_base_bf16"), {}, 12);
  CHECK(!m.src.has_head());
  REQUIRE(m.report.ignored.size() == 2);
  CHECK(m.report.ignored[0].find("vit.pooler") == std::string::npos);
  CHECK(m.report.ignored[0].rfind("pooler.dense.", 0) == 0);
  REQUIRE(m.report.fresh.size() == 2);
  CHECK(m.report.fresh[0].find("the source has no classifier") != std::string::npos);
  float* hw = m.P->value("head.weight");
  for (int i = 0; i < 12 * 12; ++i) hw[i] = (i % 13 == 0) ? 1.f : 0.f;
  std::fill(m.P->value("head.bias"), m.P->value("head.bias") + 12, 0.f);
  require_close(final_logits(*m.P, reference().get<float>("images"), 2), reference().get<float>("hf_base_bf16.feature"),
                1e-4, "hf_base_bf16");
  CHECK(m.report.str().find("pooler.dense.weight: ViTModel's tanh pooler") != std::string::npos);
}

TEST_CASE("pretrained: new exit heads are fresh and reported; the final exit keeps its logits", "[pretrained]") {
  Imported m = import(fixture("tv_f32.safetensors"), tiny_flags(), 0, {1, 2});
  REQUIRE(m.report.fresh.size() == 4);
  for (auto& s : m.report.fresh) CHECK(s.find("exits.0.") == 0);
  CHECK(m.report.str().find("(new exit head)") != std::string::npos);
  require_close(final_logits(*m.P, reference().get<float>("images"), 2), reference().get<float>("tv_f32.logits"), 1e-4,
                "tv_f32 with an extra exit");
}

TEST_CASE("pretrained: position embedding resampled to another image size", "[pretrained][ref]") {
  Imported m = import(fixture("timm_f32.safetensors"), tiny_flags(), 0, {}, 12);
  REQUIRE(m.report.reshaped.size() == 1);
  CHECK(m.report.reshaped[0] == "pos_embed [1, 5, 12] -> [1, 10, 12] (bicubic, grid 2x2 -> 3x3)");
  require_close(final_logits(*m.P, reference().get<float>("images12"), 2), reference().get<float>("timm_f32.logits12"),
                1e-4, "timm_f32 at 12x12");
}

TEST_CASE("pos_embed_resample matches F.interpolate(bicubic) with the class token kept", "[pretrained][ref]") {
  const std::vector<float> in = reference().get<float>("posemb.in");
  for (int g : {7, 3}) {
    std::vector<float> out(std::size_t(1 + g * g) * 4);
    pos_embed_resample(out.data(), in.data(), 5, g, 4);
    require_close(out, reference().get<float>("posemb.out" + std::to_string(g)), 1e-5, "grid " + std::to_string(g));  // torch sums 16 taps in float
    for (int d = 0; d < 4; ++d) CHECK(out[d] == in[d]);
  }
  std::vector<float> same(in.size());
  pos_embed_resample(same.data(), in.data(), 5, 5, 4);
  require_close(same, in, 1e-6, "identity");
}

TEST_CASE("pretrained: named errors", "[pretrained][errors]") {
  SECTION("config-less sources name the missing flag") {
    auto m1 = message_of<IoError>([] { pretrained_read(fixture("timm_f32.safetensors"), WeightFormat::detect, {0, 1e-6}); });
    CHECK(m1.find("pass --heads") != std::string::npos);
    CHECK(m1.find("timm_f32.safetensors") != std::string::npos);
    auto m2 = message_of<IoError>([] { pretrained_read(fixture("tv_f16.safetensors"), WeightFormat::detect, {2, -1}); });
    CHECK(m2.find("pass --ln-eps") != std::string::npos);
  }
  SECTION("a different class count needs --allow-new-heads") {
    auto msg = message_of<ValueError>([] { import(fixture("hf_cls_f32"), {}, 7); });
    CHECK(msg.find("head.weight' has shape [4, 12] in the source, the run needs [7, 12]") != std::string::npos);
    CHECK(msg.find("--allow-new-heads") != std::string::npos);
    Imported m = import(fixture("hf_cls_f32"), {}, 7, {}, 0, true);
    REQUIRE(m.report.fresh.size() == 2);
    CHECK(m.report.fresh[0] == "head.weight [7, 12] (replaces the source's [4, 12])");
  }
  SECTION("a different patch size") {
    Pretrained src = pretrained_read(fixture("hf_cls_f32"));
    VitConfig c = src.cfg;
    c.patch = 2;
    ViTParams<float> P(c, false);
    auto msg = message_of<ValueError>([&] { pretrained_load(src, P); });
    CHECK(msg.find("pretrained with 4x4 patches, the run uses 2x2") != std::string::npos);
  }
  SECTION("missing and unexpected tensors are listed") {
    TempDir t;
    StFile f = safetensors_read(fixture("timm_f32.safetensors"));
    f.tensors.erase(f.tensors.begin() + 5);  // some block tensor
    const std::string gone = safetensors_read(fixture("timm_f32.safetensors")).tensors[5].name;
    float one = 1;
    f.add<float>("fc_norm.weight", &one, {1});
    safetensors_write(t.file("w.safetensors"), f);
    auto msg = message_of<IoError>([&] { pretrained_read(t.file("w.safetensors"), WeightFormat::timm, tiny_flags()); });
    CHECK(msg.find("missing:    " + gone) != std::string::npos);
    CHECK(msg.find("unexpected: fc_norm.weight [1]") != std::string::npos);
  }
  SECTION("an unknown layout, a directory without config.json, a config that contradicts the weights") {
    TempDir t;
    StFile f;
    float one = 1;
    f.add<float>("encoder.weight", &one, {1});
    safetensors_write(t.file("x.safetensors"), f);
    CHECK(message_of<IoError>([&] { pretrained_detect(t.file("x.safetensors")); }).find("pass --init-format") !=
          std::string::npos);
    CHECK(message_of<IoError>([&] { pretrained_detect(t.path); }).find("without config.json") != std::string::npos);
    std::string cfg = testing::read_bytes(fixture("hf_cls_f32/config.json"));
    cfg.replace(cfg.find("\"num_attention_heads\": 2"), 24, "\"num_attention_heads\": 5");
    testing::write_bytes(t.file("config.json"), cfg);
    testing::write_bytes(t.file("model.safetensors"), testing::read_bytes(fixture("hf_cls_f32/model.safetensors")));
    CHECK(message_of<IoError>([&] { pretrained_read(t.path); }).find("5 heads do not divide dim 12") != std::string::npos);
    cfg.replace(cfg.find("\"image_size\": 8"), 15, "\"image_size\": 9");
    testing::write_bytes(t.file("config.json"), cfg);
    CHECK(message_of<IoError>([&] { pretrained_read(t.path); }).find("image_size 9 but the position embedding") !=
          std::string::npos);
  }
}

TEST_CASE("pretrained: a bad config.json or preprocessor_config.json names the file, key, expected and found",
          "[pretrained][errors]") {
  TempDir t;
  testing::write_bytes(t.file("model.safetensors"), testing::read_bytes(fixture("hf_cls_f32/model.safetensors")));
  const std::string cfg = testing::read_bytes(fixture("hf_cls_f32/config.json"));
  const std::string where = "'" + t.file("config.json") + "': ";
  auto error_with = [&](const std::string& from, const std::string& to) {
    std::string c = cfg;
    REQUIRE(c.find(from) != std::string::npos);
    c.replace(c.find(from), from.size(), to);
    testing::write_bytes(t.file("config.json"), c);
    return message_of<IoError>([&] { pretrained_read(t.path); });
  };
  CHECK(error_with("\"hidden_size\": 12", "\"hidden_size\": \"12\"") ==
        where + "'hidden_size' is the string \"12\", expected an integer in [0, 2147483647]");
  CHECK(error_with("\"hidden_size\": 12", "\"hidden_size\": 12.0") ==
        where + "'hidden_size' is the number 12.0, expected an integer in [0, 2147483647]");
  CHECK(error_with("\"hidden_size\": 12", "\"hidden_size\": 4294967308") ==
        where + "'hidden_size' is the integer 4294967308, expected an integer in [0, 2147483647]");
  CHECK(error_with("\"patch_size\": 4,", "") == where + "no 'patch_size' (expected an integer)");
  CHECK(error_with("\"layer_norm_eps\": 1e-12", "\"layer_norm_eps\": null") ==
        where + "'layer_norm_eps' is null, expected a number");
  CHECK(error_with("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"relu\"") ==
        where + "hidden_act 'relu' (envit's MLP uses the exact gelu)");
  CHECK(error_with("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"gelu\", \"envit_exit_head\": \"pooled\"") ==
        where + "envit_exit_head 'pooled' (expected linear or lgvit)");
  CHECK(error_with("\"model_type\": \"vit\",", "\"model_type\": \"vit\" \"x\",") ==
        where + "not valid JSON at byte " + std::to_string(cfg.find("\"model_type\"") + 20) +
            ": expected ',', found '\"'");
  CHECK(error_with("\"qkv_bias\": true", "\"qkv_bias\": True") ==
        where + "not valid JSON at byte " + std::to_string(cfg.find("true")) + ": unexpected 'T' where a value should start");
  testing::write_bytes(t.file("config.json"), "[12]");
  CHECK(message_of<IoError>([&] { pretrained_read(t.path); }) == where + "not a JSON object (the file holds an array)");

  // preprocessor_config.json: its own name in the message.
  testing::write_bytes(t.file("config.json"), cfg);
  const std::string pre = testing::read_bytes(fixture("hf_cls_f32/preprocessor_config.json"));
  std::string bad = pre;
  bad.replace(bad.find("\"do_normalize\": true"), 20, "\"do_normalize\": 1   ");
  testing::write_bytes(t.file("preprocessor_config.json"), bad);
  CHECK(message_of<IoError>([&] { pretrained_read(t.path); }) ==
        "'" + t.file("preprocessor_config.json") + "': 'do_normalize' is the integer 1, expected true or false");
  bad = pre;
  bad.replace(bad.find("0.5,"), 4, "\"a\",");
  testing::write_bytes(t.file("preprocessor_config.json"), bad);
  CHECK(message_of<IoError>([&] { pretrained_read(t.path); }) ==
        "'" + t.file("preprocessor_config.json") + "': 'image_mean' is the string \"a\", expected an array of numbers");
}

TEST_CASE("half-precision conversions are exact", "[pretrained]") {
  CHECK(f16_to_float(0x3c00) == 1.0f);
  CHECK(f16_to_float(0xc000) == -2.0f);
  CHECK(f16_to_float(0x7bff) == 65504.0f);
  CHECK(f16_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(f16_to_float(0x03ff) == 1023 * std::ldexp(1.0f, -24));
  CHECK(std::isinf(f16_to_float(0x7c00)));
  CHECK(std::isnan(f16_to_float(0x7e00)));
  CHECK(std::signbit(f16_to_float(0x8000)));
  CHECK(bf16_to_float(0x3f80) == 1.0f);
  CHECK(bf16_to_float(0xc0a0) == -5.0f);
  CHECK(float_to_bf16(1.0f) == 0x3f80);
  CHECK(float_to_bf16(std::bit_cast<float>(0x3f808000u)) == 0x3f80);  // tie -> even
  CHECK(float_to_bf16(std::bit_cast<float>(0x3f818000u)) == 0x3f82);  // tie -> even (up)
  CHECK(float_to_bf16(std::bit_cast<float>(0x3f808001u)) == 0x3f81);
}

TEST_CASE("pretrained: Hugging Face export round-trips, exit heads included", "[pretrained]") {
  TempDir t;
  Imported m = import(fixture("timm_f32.safetensors"), tiny_flags(), 0, {1, 2});
  float* e = m.P->value("exits.0.head.weight");
  for (int i = 0; i < 4 * 12; ++i) e[i] = 0.01f * float(i);
  pretrained_save_hf(t.file("hf"), *m.P, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}, {"a", "b", "c", "d"});
  StFile f = safetensors_read(t.file("hf/model.safetensors"));
  CHECK(f.meta("format") == "pt");
  CHECK(f.at("vit.encoder.layer.1.attention.attention.value.weight").shape == std::vector<std::int64_t>{12, 12});
  CHECK(f.at("classifier.weight").shape == std::vector<std::int64_t>{4, 12});
  CHECK(f.at("exits.0.head.weight").shape == std::vector<std::int64_t>{4, 12});
  CHECK(testing::read_bytes(t.file("hf/config.json")).find("\"id2label\": {\n    \"0\": \"a\"") != std::string::npos);
  Pretrained back = pretrained_read(t.file("hf"));
  CHECK(back.format == WeightFormat::hf);
  CHECK(back.cfg.str() == m.P->config().str());
  CHECK(back.mean == std::vector<double>{0.5, 0.5, 0.5});
  CHECK(back.std == std::vector<double>{0.25, 0.25, 0.25});
  ViTParams<float> Q(m.P->config(), false);
  PretrainedReport r = pretrained_load(back, Q);
  CHECK(r.fresh.empty());
  CHECK(r.matched.size() == Q.table().size());
  for (const ParamEntry& pe : Q.table())
    for (std::size_t i = 0; i < pe.numel; ++i)
      REQUIRE(Q.values()[pe.offset + i] == m.P->values()[pe.offset + i]);
  require_close(final_logits(Q, reference().get<float>("images"), 2), reference().get<float>("timm_f32.logits"), 1e-4,
                "timm -> envit -> hf -> envit");
}

TEST_CASE("pretrained: an envit checkpoint with LGViT heads imports them, BatchNorm statistics included",
          "[pretrained]") {
  TempDir t;
  VitConfig c = VitConfig::tiny28();
  c.dim = 16, c.depth = 5, c.heads = 2, c.mlp_hidden = 32, c.patch = 7;
  c.exits = {1, 2, 3, 4, 5};  // heads conv1_1, conv2_1, attn_r2, attn_r3, then LayerNorm + Linear
  c.exit_head = "lgvit";
  ViTParams<float> P(c, false);
  P.init(3);
  for (const ParamEntry& e : P.table())  // buffers away from their init (0 / 1), as after training
    if (e.buffer)
      for (std::size_t i = 0; i < e.numel; ++i) P.values()[e.offset + i] = 0.5f + 0.01f * float(i);
  safetensors_write(t.file("lg.safetensors"), checkpoint_weights(P, {}));
  Imported m = import(t.file("lg.safetensors"), {}, 0, c.exits);  // as `envit convert`: the source's exits
  CHECK(m.src.format == WeightFormat::envit);
  CHECK(m.src.cfg.exit_head == "lgvit");
  CHECK(m.P->config().str() == c.str());
  CHECK(m.report.fresh.empty());
  CHECK(m.report.ignored.empty());
  CHECK(m.report.matched.size() == P.table().size());
  for (const ParamEntry& pe : P.table()) {
    INFO(pe.name);
    for (std::size_t i = 0; i < pe.numel; ++i) REQUIRE(m.P->values()[pe.offset + i] == P.values()[pe.offset + i]);
  }
  // and through a Hugging Face directory (config.json's envit_exit_head)
  pretrained_save_hf(t.file("hf"), P, {0.5}, {0.25});
  Imported h = import(t.file("hf"), {}, 0, c.exits);
  CHECK(h.src.format == WeightFormat::hf);
  CHECK(h.P->config().str() == c.str());
  CHECK(h.report.fresh.empty());
  for (const ParamEntry& pe : P.table()) {
    INFO(pe.name);
    for (std::size_t i = 0; i < pe.numel; ++i) REQUIRE(h.P->values()[pe.offset + i] == P.values()[pe.offset + i]);
  }
}
