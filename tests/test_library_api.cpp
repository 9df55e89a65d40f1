// Small library entry points with one home each: the preset table, median, the recorded training
// split, the scalar GELU, and the exception hierarchy (every envit exception is an envit::Error).
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/core/stats.hpp"
#include "envit/data/dataset.hpp"
#include "envit/io/json.hpp"
#include "envit/io/safetensors.hpp"
#include "envit/model/config.hpp"
#include "envit/ops/gelu.hpp"
#include "envit/train/step.hpp"

using namespace envit;

TEST_CASE("vit_preset: one table, looked up by name, dumped as JSON", "[api]") {
  CHECK(vit_preset_names() == std::vector<std::string>{"readme", "tiny28", "vit-b16"});
  const VitPreset& r = vit_preset("readme");
  CHECK(r.config.patch == 7);
  CHECK(r.config.dim == 96);
  CHECK(r.config.depth == 6);
  CHECK(r.config.heads == 3);
  CHECK(r.config.mlp_hidden == 192);
  CHECK(r.config.exits == std::vector<int>{2, 4, 6});
  CHECK(r.epochs == 18);
  CHECK(r.lr == 2e-3);
  CHECK(r.warmup_steps == 400);
  CHECK(vit_preset("tiny28").config.str() == VitConfig::tiny28().str());
  CHECK(vit_preset("vit-b16").config.str() == VitConfig::vit_b16().str());
  for (const VitPreset& p : vit_presets()) CHECK_NOTHROW(p.config.validate());
  CHECK_THROWS_WITH(vit_preset("vitb16"), Catch::Contains("unknown preset 'vitb16'") &&
                                              Catch::Contains("readme, tiny28, vit-b16"));
  const std::string js = vit_presets_json();
  CHECK_THAT(js, Catch::StartsWith("{\"readme\":{\"image_size\":28,\"channels\":1,\"patch\":7,\"dim\":96,"
                                   "\"depth\":6,\"heads\":3,\"mlp_hidden\":192,\"classes\":10,\"exits\":[2,4,6],"
                                   "\"epochs\":18,\"lr\":0.002,\"warmup_steps\":400,\"crop_pad\":0}"));
  CHECK_THAT(js, Catch::Contains("\"vit-b16\":{\"image_size\":224,\"channels\":3,\"patch\":16,\"dim\":768"));
}

TEST_CASE("median: odd and even counts, unsorted input, empty refused", "[api]") {
  CHECK(median({3.0, 1.0, 2.0}) == 2.0);
  CHECK(median({4.0, 1.0, 3.0, 2.0}) == 2.5);
  CHECK(median({7.0}) == 7.0);
  CHECK_THROWS_AS(median({}), ValueError);
}

TEST_CASE("SplitSpec: metadata round trip rebuilds the same validation split", "[api]") {
  SplitSpec s;
  s.subset = 300;
  s.n_val = 40;
  s.seed = 9;
  const auto m = s.to_map();
  CHECK(m.at("data.subset") == "300");
  CHECK(m.at("data.val") == "40");
  CHECK(m.at("train.seed") == "9");
  const SplitSpec t = SplitSpec::from_map(m, "test");
  const Split a = s.apply(1000), b = t.apply(1000), ref = split_train_val(300, 40, 9);
  CHECK(a.val == ref.val);
  CHECK(b.val == ref.val);
  CHECK(b.train == ref.train);
  CHECK(SplitSpec{}.apply(50).train.size() == 50);
  CHECK_THROWS_WITH(SplitSpec::from_map({{"data.val", "x1"}}, "ckpt.safetensors"),
                    Catch::Contains("ckpt.safetensors") && Catch::Contains("data.val"));
  CHECK_THROWS_AS(s.apply(200), ValueError);
}

TEST_CASE("SplitSpec: skip, subset and classes select the same samples after a metadata round trip", "[api]") {
  Dataset d;
  d.name = "ten";
  d.n = 10, d.c = 1, d.h = 1, d.w = 1, d.classes = 3;
  d.images.assign(10, 0);
  d.labels = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  SplitSpec s;
  s.skip = 2;
  s.subset = 6;  // samples 2..7
  s.classes = {0, 2};
  s.n_val = 1;
  const auto m = s.to_map();
  CHECK(m.at("data.skip") == "2");
  CHECK(m.at("data.classes") == "0,2");
  const SplitSpec t = SplitSpec::from_map(m, "test");
  CHECK(t.classes == std::vector<int>{0, 2});
  CHECK(t.samples(d) == std::vector<std::int64_t>{2, 3, 5, 6});
  CHECK(t.apply(d).val == split_train_val(4, 1, 0).val);
  CHECK(SplitSpec{}.samples(d).size() == 10);
  CHECK_THROWS_AS(t.apply(10), ValueError);  // skip and classes need the dataset
  SplitSpec bad = s;
  bad.classes = {3};
  CHECK_THROWS_WITH(bad.samples(d), Catch::Contains("class 3") && Catch::Contains("ten"));
  bad = s;
  bad.skip = 8;
  CHECK_THROWS_WITH(bad.samples(d), Catch::Contains("skip 8"));
  bad = s;
  bad.classes = {1};
  bad.subset = 1;  // sample 2 has label 2
  CHECK_THROWS_WITH(bad.samples(d), Catch::Contains("select no sample"));
  CHECK_THROWS_WITH(SplitSpec::from_map({{"data.classes", "1,x"}}, "ck.safetensors"),
                    Catch::Contains("ck.safetensors") && Catch::Contains("data.classes"));
}

TEST_CASE("gelu_scalar / gelu_grad_scalar: erf form and its derivative", "[api]") {
  for (double x : {-6.0, -1.5, -0.1, 0.0, 0.3, 2.0, 8.0}) {
    const double phi = 0.5 * (1.0 + std::erf(x / std::sqrt(2.0)));
    CHECK(gelu_scalar(x) == Approx(x * phi).margin(1e-15));
    const double h = 1e-6, num = (gelu_scalar(x + h) - gelu_scalar(x - h)) / (2 * h);
    CHECK(gelu_grad_scalar(x) == Approx(num).margin(1e-8));
  }
}

TEST_CASE("every envit exception derives from envit::Error", "[api]") {
  auto is_error = [](auto&& thrower) {
    try {
      thrower();
    } catch (const Error&) {
      return true;
    } catch (...) {
    }
    return false;
  };
  CHECK(is_error([] { throw ShapeError("s"); }));
  CHECK(is_error([] { throw ValueError("v"); }));
  CHECK(is_error([] { throw IoError("i"); }));
  CHECK(is_error([] { throw NonFiniteError("n"); }));
  CHECK(is_error([] { json::Parser("{").parse(); }));
  CHECK(is_error([] { vit_preset("none"); }));
  CHECK(is_error([] { throw detail::StHeaderError(0, "h"); }));
}
