// envit/weights/quantize.hpp — post-training INT8 quantization of a trained model for inference, and
// its file (docs/formats.md, "Quantized checkpoints"):
//   quantize_model      the four Linear layers of every block (families qkv, proj, fc1, fc2):
//                       weights symmetric INT8 per output channel (core/int8.hpp); the activations
//                       entering each layer per family either per-row dynamic (scale computed from
//                       each token row as the product runs) or per-tensor static, calibrated as
//                       max |input| over N images run through the FP32 model (calibration images
//                       come from the training or validation split, never the test split: the
//                       caller's choice, made in `envit quantize`).
//   quantized_checkpoint / load_quantized   the safetensors file: INT8 weights, their scales and
//                       the static input scales beside them, every other tensor FP32; loading
//                       refuses missing, non-finite, zero or mis-shaped scales naming file and tensor.
//   prepack_int8        packs a workspace's block weights from the INT8 values as stored (exactly
//                       the file's integers and scales) and sets it to Precision::int8; the
//                       inference passes of infer/early_exit.hpp then run unchanged.
// What stays in higher precision (FP32): patch embedding, attention's QK^T and PV, LayerNorm,
// softmax, GELU, residual sums and the exit heads (docs/method.md gives the measurements).
// Not here: the INT8 products (kernels/gemm.hpp, kernels/gemm_int8*.hpp).
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "envit/core/int8.hpp"
#include "envit/infer/early_exit.hpp"
#include "envit/io/safetensors.hpp"
#include "envit/weights/checkpoint.hpp"

namespace envit {

inline constexpr const char* kQuantizationInt8 = "int8";
// The families, in the order of a block's four packed weights (InferenceWorkspace::packed).
inline constexpr const char* kInt8Families[4] = {"qkv", "proj", "fc1", "fc2"};

enum class ActScaling { dynamic, calibrated };  // per row at run time, or one static scale
inline const char* act_scaling_name(ActScaling a) { return a == ActScaling::dynamic ? "dynamic" : "static"; }
inline ActScaling parse_act_scaling(const std::string& s, const std::string& what) {
  if (s == "dynamic") return ActScaling::dynamic;
  if (s == "static") return ActScaling::calibrated;
  throw ValueError(what + ": '" + s + "' (expected dynamic or static)");
}

// One quantized Linear: W ~ q * scale[row]; act_scale: the static input scale, 0 for dynamic.
struct Int8Linear {
  std::vector<std::int8_t> q;  // (n, k)
  std::vector<float> scale;    // (n)
  float act_scale = 0.0f;
  std::ptrdiff_t n = 0, k = 0;
};

struct QuantizedModel {
  std::array<ActScaling, 4> act{ActScaling::dynamic, ActScaling::dynamic, ActScaling::dynamic, ActScaling::dynamic};
  int calib_images = 0;
  std::vector<Int8Linear> linears;  // 4 per block: qkv, proj, fc1, fc2
};

// The timm name of block l's Linear weight of family f (0..3).
inline std::string int8_weight_name(int l, int f) {
  static constexpr const char* suffix[4] = {"attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight"};
  return "blocks." + std::to_string(l) + "." + suffix[f];
}
// "<...>.weight" -> "<...>.weight_scale" and "<...>.input_scale".
inline std::string int8_weight_scale_name(const std::string& w) { return w + "_scale"; }
inline std::string int8_input_scale_name(const std::string& w) {
  return w.substr(0, w.size() - std::string("weight").size()) + "input_scale";
}

namespace detail {
inline const float* block_linear(const ViTParams<float>& P, int l, int f) {
  const BlockParams<float> b = P.block(l);
  return f == 0 ? b.qkv_w : f == 1 ? b.proj_w : f == 2 ? b.fc1_w : b.fc2_w;
}
inline std::pair<std::ptrdiff_t, std::ptrdiff_t> block_linear_shape(const VitConfig& c, int f) {
  const std::ptrdiff_t D = c.dim, F = c.mlp_hidden;
  return f == 0 ? std::pair{3 * D, D} : f == 1 ? std::pair{D, D} : f == 2 ? std::pair{F, D} : std::pair{D, F};
}
}  // namespace detail

// Quantizes P's block Linear weights per output channel; for the families with static activation
// scales, runs the FP32 model over `calib` (n images, (n, C, H, W) normalised as for inference) in
// batches of `batch` and sets each layer's input scale to max |input| / 127. n may be 0 only when
// every family is dynamic.
inline QuantizedModel quantize_model(const ViTParams<float>& P, const std::array<ActScaling, 4>& act,
                                     const float* calib, int n, int batch) {
  const VitConfig& c = P.config();
  QuantizedModel Q;
  Q.act = act;
  Q.calib_images = n;
  bool any_static = false;
  for (ActScaling a : act) any_static |= a == ActScaling::calibrated;
  ENVIT_CHECK(!any_static || (n > 0 && calib != nullptr), ValueError,
              "quantize_model: static activation scales need calibration images (got ", n, ")");
  std::vector<float> amax(std::size_t(4) * c.depth, 0.0f);
  if (n > 0 && any_static) {
    const int b = std::max(1, std::min(batch, n));
    InferenceWorkspace<float> ws(c, b);
    ws.precision = Precision::fp32;
    ws.prepack(P);
    for (std::size_t i = 0; i < ws.packed.size(); ++i) ws.packed[i].observe_absmax = &amax[i];
    std::vector<float> logits(std::size_t(c.num_exits()) * std::size_t(n) * std::size_t(c.classes));
    infer_all_exits_dataset<float>(ws, P, calib, n, logits.data(), b);
  }
  Q.linears.resize(std::size_t(4) * c.depth);
  for (int l = 0; l < c.depth; ++l)
    for (int f = 0; f < 4; ++f) {
      Int8Linear& L = Q.linears[std::size_t(4 * l + f)];
      std::tie(L.n, L.k) = detail::block_linear_shape(c, f);
      L.q.resize(std::size_t(L.n * L.k));
      L.scale.resize(std::size_t(L.n));
      quantize_weight_int8(L.q.data(), L.scale.data(), detail::block_linear(P, l, f), L.n, L.k);
      L.act_scale = act[f] == ActScaling::calibrated ? int8_scale(amax[std::size_t(4 * l + f)]) : 0.0f;
    }
  return Q;
}

// Packs ws's block weights from Q (the INT8 values and scales as they are) for P (whose block
// weights must be Q's dequantized values, as load_quantized gives, or the FP32 weights Q was made
// from) and sets ws.precision = int8. Allocates.
inline void prepack_int8(InferenceWorkspace<float>& ws, const ViTParams<float>& P, const QuantizedModel& Q) {
  const VitConfig& c = P.config();
  ENVIT_CHECK(Q.linears.size() == std::size_t(4) * c.depth, ShapeError, "prepack_int8: ", Q.linears.size(),
              " quantized layers for a model of depth ", c.depth, " (expected ", 4 * c.depth, ")");
  ws.prepack(P);  // checks the shapes and records P; the FP32 panels are replaced below
  ws.precision = Precision::int8;
  for (int l = 0; l < c.depth; ++l)
    for (int f = 0; f < 4; ++f) {
      const Int8Linear& L = Q.linears[std::size_t(4 * l + f)];
      const auto [n, k] = detail::block_linear_shape(c, f);
      ENVIT_CHECK(L.n == n && L.k == k, ShapeError, "prepack_int8: ", int8_weight_name(l, f), " is (", L.n, ", ",
                  L.k, "), the model's (", n, ", ", k, ")");
      ws.packed[std::size_t(4 * l + f)].pack_int8(detail::block_linear(P, l, f), L.q.data(), L.scale.data(), n, k,
                                                  L.act_scale);
    }
}

// The quantized checkpoint: P's tensors with each block Linear weight replaced by its INT8 values
// (dtype I8), `<name>_scale` (F32, (n)) beside it and, for static families, `<...>.input_scale`
// (F32, (1)); metadata as checkpoint_weights plus `quantization` = int8,
// `quantization.act.<family>` = dynamic|static and `quantization.calib_images`.
inline StFile quantized_checkpoint(const ViTParams<float>& P, const QuantizedModel& Q,
                                   const std::map<std::string, std::string>& meta) {
  StFile src = checkpoint_weights(P, meta);
  StFile f;
  f.metadata = src.metadata;
  f.metadata["quantization"] = kQuantizationInt8;
  for (int fam = 0; fam < 4; ++fam)
    f.metadata[std::string("quantization.act.") + kInt8Families[fam]] = act_scaling_name(Q.act[std::size_t(fam)]);
  f.metadata["quantization.calib_images"] = std::to_string(Q.calib_images);
  std::map<std::string, const Int8Linear*> qmap;
  for (int l = 0; l < P.config().depth; ++l)
    for (int fam = 0; fam < 4; ++fam) qmap[int8_weight_name(l, fam)] = &Q.linears[std::size_t(4 * l + fam)];
  for (StTensor& t : src.tensors) {
    auto it = qmap.find(t.name);
    if (it == qmap.end()) {
      f.tensors.push_back(std::move(t));
      continue;
    }
    const Int8Linear& L = *it->second;
    f.add<std::int8_t>(t.name, L.q.data(), {L.n, L.k});
    f.add<float>(int8_weight_scale_name(t.name), L.scale.data(), {L.n});
    if (L.act_scale > 0.0f) f.add<float>(int8_input_scale_name(t.name), &L.act_scale, {1});
  }
  return f;
}

inline bool is_quantized_checkpoint(const StFile& f) { return f.has_meta("quantization"); }

struct LoadedQuantized {
  ViTParams<float> P;  // block Linear weights dequantized (q * scale), everything else as stored
  QuantizedModel Q;
};

// Reads a quantized checkpoint. Refused (IoError naming the file and the tensor or key): another
// quantization than int8, an unknown activation mode, a quantized weight that is missing, not I8,
// mis-shaped or holds -128; a weight or input scale that is missing, not F32, of the wrong shape,
// non-finite or not positive; an input scale where the family is dynamic.
inline LoadedQuantized load_quantized(const StFile& f) {
  const std::string where = f.where();
  const std::string kind = f.meta_or("quantization", "");
  ENVIT_CHECK(kind == kQuantizationInt8, IoError, where, ": __metadata__ 'quantization' = '", kind,
              "' (expected int8)");
  const VitConfig cfg = checkpoint_config(f);
  QuantizedModel Q;
  for (int fam = 0; fam < 4; ++fam) {
    const std::string key = std::string("quantization.act.") + kInt8Families[fam];
    ENVIT_CHECK(f.has_meta(key), IoError, where, ": __metadata__ has no key '", key, "'");
    try {
      Q.act[std::size_t(fam)] = parse_act_scaling(f.meta(key), where + ": __metadata__ '" + key + "'");
    } catch (const ValueError& e) {
      throw IoError(e.what());
    }
  }
  if (f.has_meta("quantization.calib_images")) Q.calib_images = int(f.meta_int("quantization.calib_images"));
  auto scales = [&](const std::string& name, std::int64_t n, const char* what) {
    const StTensor* t = f.find(name);
    ENVIT_CHECK(t, IoError, where, ": ", what, " '", name, "' is missing");
    ENVIT_CHECK(t->dtype == "F32", IoError, where, ": ", what, " '", name, "' has dtype ", t->dtype, ", expected F32");
    ENVIT_CHECK(t->shape == std::vector<std::int64_t>{n}, IoError, where, ": ", what, " '", name, "' has shape ",
                st_shape_str(t->shape), ", expected ", st_shape_str({n}));
    std::vector<float> v = f.get<float>(name);
    for (std::size_t i = 0; i < v.size(); ++i)
      ENVIT_CHECK(std::isfinite(v[i]) && v[i] > 0.0f, IoError, where, ": ", what, " '", name, "' element ", i, " is ",
                  v[i], " (expected finite and > 0)");
    return v;
  };
  StFile plain;  // the FP32 checkpoint the quantized one stands for
  plain.metadata = f.metadata;
  plain.source = f.source;
  std::map<std::string, int> quantized;
  for (int l = 0; l < cfg.depth; ++l)
    for (int fam = 0; fam < 4; ++fam) quantized[int8_weight_name(l, fam)] = 4 * l + fam;
  Q.linears.resize(std::size_t(4) * cfg.depth);
  for (const auto& [name, i] : quantized) {
    const int fam = i % 4;
    Int8Linear& L = Q.linears[std::size_t(i)];
    std::tie(L.n, L.k) = detail::block_linear_shape(cfg, fam);
    const StTensor* t = f.find(name);
    ENVIT_CHECK(t, IoError, where, ": quantized weight '", name, "' is missing");
    ENVIT_CHECK(t->dtype == "I8", IoError, where, ": quantized weight '", name, "' has dtype ", t->dtype,
                ", expected I8");
    ENVIT_CHECK(t->shape == (std::vector<std::int64_t>{L.n, L.k}), IoError, where, ": quantized weight '", name,
                "' has shape ", st_shape_str(t->shape), ", expected ", st_shape_str({L.n, L.k}));
    L.q = f.get<std::int8_t>(name);
    for (std::size_t e = 0; e < L.q.size(); ++e)
      ENVIT_CHECK(L.q[e] != -128, IoError, where, ": quantized weight '", name, "' element ", e,
                  " is -128 (symmetric INT8 uses [-127, 127])");
    L.scale = scales(int8_weight_scale_name(name), L.n, "weight scale");
    const std::string in = int8_input_scale_name(name);
    if (Q.act[std::size_t(fam)] == ActScaling::calibrated) {
      L.act_scale = scales(in, 1, "input scale")[0];
    } else {
      ENVIT_CHECK(!f.find(in), IoError, where, ": input scale '", in, "' present but the ", kInt8Families[fam],
                  " activations are dynamic (__metadata__ quantization.act.", kInt8Families[fam], ")");
    }
    std::vector<float> w(L.q.size());
    for (std::ptrdiff_t r = 0; r < L.n; ++r)
      for (std::ptrdiff_t c = 0; c < L.k; ++c) w[std::size_t(r * L.k + c)] = float(L.q[std::size_t(r * L.k + c)]) * L.scale[std::size_t(r)];
    plain.add<float>(name, w.data(), {L.n, L.k});
  }
  for (const StTensor& t : f.tensors) {
    if (quantized.count(t.name)) continue;
    const bool scale_of_quantized =
        (t.name.size() > 13 && t.name.compare(t.name.size() - 13, 13, ".weight_scale") == 0 &&
         quantized.count(t.name.substr(0, t.name.size() - 6))) ||
        (t.name.size() > 12 && t.name.compare(t.name.size() - 12, 12, ".input_scale") == 0 &&
         quantized.count(t.name.substr(0, t.name.size() - 11) + "weight"));
    if (!scale_of_quantized) plain.tensors.push_back(t);
  }
  LoadedQuantized out{ViTParams<float>(cfg, /*with_grads=*/false), std::move(Q)};
  load_weights(plain, out.P, false);
  return out;
}

}  // namespace envit
