// INT8 inference (weights/quantize.hpp; Precision::int8) on the small fixed model of the BF16 parity
// fixture (tests/data/bf16_fixture.safetensors, with PyTorch's float32 logits):
//   - INT8 logits, dynamic and static activation scales, stay within kInt8Tol of the logit scale
//     S = max |float32 logit| of PyTorch's float32 logits (the quantization error: about 2^-8
//     relative per operand, accumulated over the blocks; measured worst 1.7e-2 S dynamic, 2.3e-2 S
//     static at this fixture's random weights);
//   - the quantized checkpoint round trip: quantized_checkpoint -> file -> load_quantized gives
//     the same integers and scales and bitwise the same INT8 logits; P's block weights are q * s;
//   - a quantized file with a scale missing, non-finite, zero or of the wrong shape, an INT8 weight
//     of the wrong dtype or holding -128, or unknown quantization metadata is refused with an
//     IoError naming the file and the tensor (or key).
// Runs under every kernel set the host has (infer_int8_isa_<set>): the INT8 products are exact
// integers, so every set gives bitwise the same logits (compared against the portable set's in
// test_gemm_int8 at the GEMM level).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "envit/weights/quantize.hpp"
#include "parity_testing.hpp"

using namespace envit;
using envit::testing::as_double;
using envit::testing::parity_fixture;

namespace {

constexpr double kInt8Tol = 4e-2;  // |int8 logit - torch float32 logit| / S, every logit (both modes)

struct Fixture {
  envit::testing::ParityBatch<float> b;
  ViTParams<float> P;
  std::vector<double> z32;
  double scale = 0;
  explicit Fixture(const StFile& f) : b(envit::testing::parity_batch<float>(f)), P(b.cfg, /*with_grads=*/false) {
    envit::testing::load_params(P, f);
    z32 = as_double<float>(f, "logits32", {b.cfg.num_exits(), b.B, b.cfg.classes});
    for (double v : z32) scale = std::max(scale, std::abs(v));
  }
  std::vector<float> logits(const ViTParams<float>& Pm, const QuantizedModel& Q) const {
    InferenceWorkspace<float> ws(b.cfg, b.B);
    prepack_int8(ws, Pm, Q);
    std::vector<float> z(z32.size());
    infer_all_exits<float>(ws, Pm, b.images.data(), b.B, z.data(), std::ptrdiff_t(b.B) * b.cfg.classes);
    return z;
  }
};

Fixture& fixture() {
  static Fixture fx(parity_fixture("bf16_fixture.safetensors"));
  return fx;
}

const std::array<ActScaling, 4> kDynamic{ActScaling::dynamic, ActScaling::dynamic, ActScaling::dynamic,
                                         ActScaling::dynamic};
const std::array<ActScaling, 4> kStatic{ActScaling::calibrated, ActScaling::calibrated, ActScaling::calibrated,
                                        ActScaling::calibrated};

double max_diff(const std::vector<float>& got, const std::vector<double>& ref, double scale) {
  double d = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) d = std::max(d, std::abs(double(got[i]) - ref[i]));
  return d / scale;
}

std::string tmp_path(const std::string& name) {
  const char* d = std::getenv("TMPDIR");
  return std::string(d && *d ? d : "/tmp") + "/envit_test_int8_" + name + ".safetensors";
}

}  // namespace

TEST_CASE("int8 inference: logits near PyTorch float32 (dynamic and static activation scales)", "[infer][int8]") {
  Fixture& fx = fixture();
  for (const auto& act : {kDynamic, kStatic}) {
    const QuantizedModel Q = quantize_model(fx.P, act, fx.b.images.data(), fx.b.B, fx.b.B);
    for (const Int8Linear& L : Q.linears) {
      if (act[0] == ActScaling::dynamic) CHECK(L.act_scale == 0.0f);
      else CHECK((std::isfinite(L.act_scale) && L.act_scale > 0.0f));
    }
    const std::vector<float> z = fx.logits(fx.P, Q);
    const double d = max_diff(z, fx.z32, fx.scale);
    INFO((act[0] == ActScaling::dynamic ? "dynamic" : "static") << ": max |int8 - float32| = " << d << " S");
    if (std::getenv("ENVIT_PARITY_VERBOSE"))
      std::printf("int8 %s: max |int8 - torch float32| = %.3g S\n", act[0] == ActScaling::dynamic ? "dynamic" : "static", d);
    CHECK(d <= kInt8Tol);
    CHECK(d > 0.0);  // INT8 does change the logits
  }
}

TEST_CASE("int8 inference: a static scale is max |input| / 127 over the calibration images", "[infer][int8]") {
  Fixture& fx = fixture();
  const QuantizedModel Q = quantize_model(fx.P, kStatic, fx.b.images.data(), fx.b.B, 2);
  // Block 0's qkv input is LayerNorm 1 of the embedded tokens: recompute its largest |value|.
  InferenceWorkspace<float> ws(fx.b.cfg, fx.b.B);
  ws.prepack(fx.P);
  float amax = 0.0f;
  ws.packed[0].observe_absmax = &amax;
  std::vector<float> z(fx.z32.size());
  infer_all_exits<float>(ws, fx.P, fx.b.images.data(), fx.b.B, z.data(), std::ptrdiff_t(fx.b.B) * fx.b.cfg.classes);
  CHECK(amax > 0.0f);
  CHECK(Q.linears[0].act_scale == amax / 127.0f);
  CHECK_THROWS_WITH(quantize_model(fx.P, kStatic, nullptr, 0, 1), Catch::Contains("need calibration images"));
}

TEST_CASE("int8 checkpoint: write, read, identical integers, scales and logits", "[infer][int8][io]") {
  Fixture& fx = fixture();
  std::array<ActScaling, 4> mixed{ActScaling::calibrated, ActScaling::dynamic, ActScaling::calibrated,
                                  ActScaling::dynamic};
  const QuantizedModel Q = quantize_model(fx.P, mixed, fx.b.images.data(), fx.b.B, fx.b.B);
  const std::string path = tmp_path("roundtrip");
  safetensors_write(path, quantized_checkpoint(fx.P, Q, {{"note", "test"}}));
  const StFile f = safetensors_read(path);
  CHECK(is_quantized_checkpoint(f));
  CHECK(f.meta("quantization") == "int8");
  CHECK(f.meta("quantization.act.qkv") == "static");
  CHECK(f.meta("quantization.act.proj") == "dynamic");
  CHECK(f.at("blocks.0.attn.qkv.weight").dtype == "I8");
  CHECK(f.at("blocks.0.attn.qkv.weight_scale").dtype == "F32");
  CHECK(f.find("blocks.0.attn.qkv.input_scale") != nullptr);
  CHECK(f.find("blocks.0.attn.proj.input_scale") == nullptr);
  CHECK(f.at("blocks.0.norm1.weight").dtype == "F32");
  const LoadedQuantized lq = load_quantized(f);
  REQUIRE(lq.Q.linears.size() == Q.linears.size());
  for (std::size_t i = 0; i < Q.linears.size(); ++i) {
    CHECK(lq.Q.linears[i].q == Q.linears[i].q);
    CHECK(lq.Q.linears[i].scale == Q.linears[i].scale);
    CHECK(lq.Q.linears[i].act_scale == Q.linears[i].act_scale);
  }
  const Int8Linear& L = lq.Q.linears[2];  // block 0 fc1
  const float* w = lq.P.block(0).fc1_w;
  for (std::ptrdiff_t r = 0; r < L.n; ++r)
    for (std::ptrdiff_t c = 0; c < L.k; ++c)
      REQUIRE(w[r * L.k + c] == float(L.q[std::size_t(r * L.k + c)]) * L.scale[std::size_t(r)]);
  CHECK(lq.P.block(0).fc1_b[0] == fx.P.block(0).fc1_b[0]);
  const std::vector<float> z0 = fx.logits(fx.P, Q), z1 = fx.logits(lq.P, lq.Q);
  CHECK(z0 == z1);
  std::remove(path.c_str());
}

TEST_CASE("int8 checkpoint: bad scales, weights and metadata are refused naming the file and tensor",
          "[infer][int8][io][error]") {
  Fixture& fx = fixture();
  std::array<ActScaling, 4> mixed{ActScaling::calibrated, ActScaling::dynamic, ActScaling::dynamic,
                                  ActScaling::dynamic};
  const QuantizedModel Q = quantize_model(fx.P, mixed, fx.b.images.data(), fx.b.B, fx.b.B);
  const StFile good = quantized_checkpoint(fx.P, Q, {});
  const std::string path = tmp_path("bad");
  // Writes `good` changed by `edit`, reads it back and expects load_quantized to refuse with `msg`.
  auto refused = [&](const std::string& what, auto edit, const std::string& msg) {
    StFile f = good;
    edit(f);
    safetensors_write(path, f);
    const StFile r = safetensors_read(path);
    INFO(what);
    CHECK_THROWS_AS(load_quantized(r), IoError);
    CHECK_THROWS_WITH(load_quantized(r), Catch::Contains(path) && Catch::Contains(msg));
  };
  auto drop = [](const std::string& name) {
    return [name](StFile& f) {
      f.tensors.erase(std::remove_if(f.tensors.begin(), f.tensors.end(), [&](const StTensor& t) { return t.name == name; }),
                      f.tensors.end());
    };
  };
  auto set_float = [](const std::string& name, std::size_t i, float v) {
    return [=](StFile& f) {
      for (StTensor& t : f.tensors)
        if (t.name == name) std::memcpy(t.data.data() + 4 * i, &v, 4);
    };
  };
  auto reshape = [](const std::string& name, std::vector<std::int64_t> shape, std::size_t bytes) {
    return [=](StFile& f) {
      for (StTensor& t : f.tensors)
        if (t.name == name) t.shape = shape, t.data.resize(bytes);
    };
  };
  const std::string ws = "blocks.1.mlp.fc2.weight_scale", is = "blocks.0.attn.qkv.input_scale";
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::int64_t D = fx.b.cfg.dim;
  refused("weight scale missing", drop(ws), "weight scale '" + ws + "' is missing");
  refused("weight scale zero", set_float(ws, 3, 0.0f), "weight scale '" + ws + "' element 3 is 0");
  refused("weight scale negative", set_float(ws, 0, -1.0f), "weight scale '" + ws + "' element 0 is -1");
  refused("weight scale inf", set_float(ws, 1, inf), "weight scale '" + ws + "' element 1 is inf");
  refused("weight scale nan", set_float(ws, 2, nan), "weight scale '" + ws + "' element 2 is nan");
  refused("weight scale wrong shape", reshape(ws, {D - 1}, std::size_t(4 * (D - 1))),
          "weight scale '" + ws + "' has shape [" + std::to_string(D - 1) + "], expected [" + std::to_string(D) + "]");
  refused("input scale missing (static family)", drop(is), "input scale '" + is + "' is missing");
  refused("input scale zero", set_float(is, 0, 0.0f), "input scale '" + is + "' element 0 is 0");
  refused("input scale nan", set_float(is, 0, nan), "input scale '" + is + "' element 0 is nan");
  refused("input scale wrong shape", reshape(is, {2}, 8), "input scale '" + is + "' has shape [2], expected [1]");
  refused("input scale of a dynamic family",
          [&](StFile& f) {
            const float one = 1.0f;
            f.add<float>("blocks.0.attn.proj.input_scale", &one, {1});
          },
          "input scale 'blocks.0.attn.proj.input_scale' present but the proj activations are dynamic");
  refused("weight missing", drop("blocks.0.mlp.fc1.weight"), "quantized weight 'blocks.0.mlp.fc1.weight' is missing");
  refused("weight not I8",
          [&](StFile& f) {
            for (StTensor& t : f.tensors)
              if (t.name == "blocks.0.mlp.fc1.weight") t.dtype = "U8";
          },
          "quantized weight 'blocks.0.mlp.fc1.weight' has dtype U8, expected I8");
  refused("weight holds -128",
          [&](StFile& f) {
            for (StTensor& t : f.tensors)
              if (t.name == "blocks.0.mlp.fc1.weight") t.data[5] = std::byte{0x80};
          },
          "quantized weight 'blocks.0.mlp.fc1.weight' element 5 is -128");
  refused("unknown activation mode", [](StFile& f) { f.metadata["quantization.act.fc1"] = "per-channel"; },
          "'quantization.act.fc1': 'per-channel' (expected dynamic or static)");
  refused("another quantization", [](StFile& f) { f.metadata["quantization"] = "int4"; },
          "'quantization' = 'int4' (expected int8)");
  std::remove(path.c_str());
}
