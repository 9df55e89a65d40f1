// envit/weights/onnx_export.hpp — writes a multi-exit ViT as an ONNX model (opset 17, IR version 8,
// standard operators only) that ONNX Runtime, OpenVINO or TensorRT can run. Two graphs:
//   all exits   input  image (batch, C, H, W) float, normalised as in training (docs/formats.md);
//               outputs logits_0 .. logits_{M-1}, (batch, C) float each: every exit's logits, the
//               complete model. The batch dimension is dynamic ("batch").
//   early exit  inputs image (1, C, H, W) float and threshold () float; outputs prediction (1)
//               int64, exit (1) int64 (0-based exit index) and logits (1, C) float of that exit.
//               Exit j's score (confidence: max softmax; entropy: softmax entropy, divided by log C
//               when normalised) is compared with the threshold in a nested `If`: the branch that
//               exits returns, the other runs blocks s_j + 1 .. s_{j+1} and decides at exit j + 1,
//               so only the blocks up to the exit taken are computed. Batch 1: a batch is run one
//               image at a time (as envit's early_exit_one streams).
// Exit heads: LayerNorm + Linear (Gemm) on the class token, or LGViT's local and global heads in
// eval mode (model/lgvit_head.hpp; see OnnxVit::lgvit_head).
// Operators: Conv (the patch projection; LGViT's 1x1 and depthwise 3x3 convolutions), Reshape,
// Transpose, Shape, Concat, Expand, Add, Gather, LayerNormalization, MatMul, Mul, Div, Softmax,
// Erf (exact GELU), Gemm (exit heads); LGViT heads add Slice, BatchNormalization and ReduceMean; the
// early-exit graph adds ReduceMax or LogSoftmax/ReduceSum/Neg/Max, GreaterOrEqual or LessOrEqual,
// ArgMax, Identity and If. Weights (and BatchNorm running statistics) are initializers (raw
// little-endian float32) of the main graph under envit's (timm's) names, matrices transposed for
// MatMul carry the suffix `.T`; If branches read them from the enclosing scope.
// Refused (ValueError naming the rule): exit rules other than confidence and entropy.
// The file is written with io/protobuf_writer.hpp (docs/formats.md says why not libprotobuf).
// Letters: B batch, N tokens, D dim, H heads, E = D/H, F MLP width, C classes, M exits.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/infer/criteria.hpp"
#include "envit/io/file.hpp"
#include "envit/io/protobuf_writer.hpp"
#include "envit/model/lgvit_head.hpp"
#include "envit/model/params.hpp"
#include "envit/version.hpp"

namespace envit {

// ---- A minimal in-memory ONNX model and its encoding (field numbers from onnx/onnx.proto) ----
namespace onnx {

enum DataType : int { kFloat = 1, kInt64 = 7, kBool = 9 };
inline constexpr std::int64_t kIrVersion = 8;  // ONNX 1.12's IR version, the one that introduced opset 17
inline constexpr std::int64_t kOpset = 17;

struct Tensor {
  std::string name;
  std::vector<std::int64_t> dims;
  int type = kFloat;
  std::string raw;  // little-endian values
};
struct Graph;
struct Attr {
  enum Kind : int { kFloatAttr = 1, kInt = 2, kGraph = 5, kInts = 7 };  // AttributeProto.AttributeType
  std::string name;
  Kind kind = kInt;
  std::int64_t i = 0;
  float f = 0;
  std::vector<std::int64_t> ints;
  std::shared_ptr<Graph> g;
};
struct Node {
  std::string op, name;
  std::vector<std::string> in, out;
  std::vector<Attr> attrs;
};
// A graph input or output: element type and shape; a dimension < 0 is the symbolic "batch".
struct Value {
  std::string name;
  int type = kFloat;
  std::vector<std::int64_t> dims;
};
struct Graph {
  std::string name;
  std::vector<Node> nodes;
  std::vector<Tensor> inits;
  std::vector<Value> inputs, outputs;
};

inline Attr attr_i(std::string n, std::int64_t v) { return {std::move(n), Attr::kInt, v, 0, {}, {}}; }
inline Attr attr_f(std::string n, float v) { return {std::move(n), Attr::kFloatAttr, 0, v, {}, {}}; }
inline Attr attr_ints(std::string n, std::vector<std::int64_t> v) { return {std::move(n), Attr::kInts, 0, 0, std::move(v), {}}; }
inline Attr attr_graph(std::string n, std::shared_ptr<Graph> g) { return {std::move(n), Attr::kGraph, 0, 0, {}, std::move(g)}; }

// TensorProto: dims 1, data_type 2, name 8, raw_data 9.
inline std::string encode_tensor(const Tensor& t) {
  ProtoWriter w;
  for (std::int64_t d : t.dims) w.varint(1, d);
  w.varint(2, t.type).bytes(8, t.name).bytes(9, t.raw);
  return w.take();
}
// ValueInfoProto{name 1, type 2: TypeProto{tensor_type 1: {elem_type 1, shape 2: {dim 1: {dim_value 1 | dim_param 2}}}}}
inline std::string encode_value(const Value& v) {
  ProtoWriter shape;
  for (std::int64_t d : v.dims) {
    ProtoWriter dim;
    if (d < 0) dim.bytes(2, "batch");
    else dim.varint(1, d);
    shape.message(1, dim);
  }
  ProtoWriter tensor, type, w;
  tensor.varint(1, v.type).message(2, shape);
  type.message(1, tensor);
  w.bytes(1, v.name).message(2, type);
  return w.take();
}
inline std::string encode_graph(const Graph& g);
// AttributeProto: name 1, f 2, i 3, g 6, ints 8, type 20.
inline std::string encode_attr(const Attr& a) {
  ProtoWriter w;
  w.bytes(1, a.name);
  switch (a.kind) {
    case Attr::kFloatAttr: w.fixed_float(2, a.f); break;
    case Attr::kInt: w.varint(3, a.i); break;
    case Attr::kGraph: w.bytes(6, encode_graph(*a.g)); break;
    case Attr::kInts: for (std::int64_t x : a.ints) w.varint(8, x); break;
  }
  w.varint(20, a.kind);
  return w.take();
}
// NodeProto: input 1, output 2, name 3, op_type 4, attribute 5.
inline std::string encode_node(const Node& n) {
  ProtoWriter w;
  for (auto& s : n.in) w.bytes(1, s);
  for (auto& s : n.out) w.bytes(2, s);
  w.bytes(3, n.name).bytes(4, n.op);
  for (auto& a : n.attrs) w.bytes(5, encode_attr(a));
  return w.take();
}
// GraphProto: node 1, name 2, initializer 5, input 11, output 12.
inline std::string encode_graph(const Graph& g) {
  ProtoWriter w;
  for (auto& n : g.nodes) w.bytes(1, encode_node(n));
  w.bytes(2, g.name);
  for (auto& t : g.inits) w.bytes(5, encode_tensor(t));
  for (auto& v : g.inputs) w.bytes(11, encode_value(v));
  for (auto& v : g.outputs) w.bytes(12, encode_value(v));
  return w.take();
}
// ModelProto: ir_version 1, producer_name 2, producer_version 3, graph 7, opset_import 8
// (OperatorSetIdProto{domain 1, version 2}), metadata_props 14 (StringStringEntryProto{key 1, value 2}).
// The graph's bytes are appended last so the largest part is built once.
inline std::string encode_model(const Graph& g, const std::map<std::string, std::string>& meta) {
  ProtoWriter w, opset;
  opset.bytes(1, "").varint(2, kOpset);
  w.varint(1, kIrVersion).bytes(2, "envit").bytes(3, ENVIT_VERSION_STRING).message(8, opset);
  for (auto& [k, v] : meta) {
    ProtoWriter e;
    e.bytes(1, k).bytes(2, v);
    w.message(14, e);
  }
  w.bytes(7, encode_graph(g));
  return w.take();
}

inline Tensor tensor_f32(std::string name, std::vector<std::int64_t> dims, const float* v, std::size_t n) {
  Tensor t{std::move(name), std::move(dims), kFloat, std::string(n * sizeof(float), '\0')};
  std::memcpy(t.raw.data(), v, t.raw.size());
  return t;
}
inline Tensor tensor_i64(std::string name, std::vector<std::int64_t> dims, const std::vector<std::int64_t>& v) {
  Tensor t{std::move(name), std::move(dims), kInt64, std::string(v.size() * sizeof(std::int64_t), '\0')};
  std::memcpy(t.raw.data(), v.data(), t.raw.size());
  return t;
}

// Adds nodes to one graph; initializers and fresh names belong to the root graph, so If branches
// (built by their own Builder on the same root) reference the root's weights and constants.
class Builder {
 public:
  Builder(Graph& g, Graph& root, int& counter) : g_(g), root_(root), counter_(counter) {}
  Graph& graph() { return g_; }

  std::string op(const std::string& type, std::vector<std::string> in, std::vector<Attr> attrs = {},
                 std::string out = "") {
    if (out.empty()) out = fresh(type);
    g_.nodes.push_back({type, out + ".node", std::move(in), {out}, std::move(attrs)});
    return out;
  }
  std::string fresh(const std::string& stem) { return stem + "_" + std::to_string(counter_++); }

  // An initializer of the root graph (weights keep their given names).
  std::string init(Tensor t) {
    std::string n = t.name;
    root_.inits.push_back(std::move(t));
    return n;
  }
  // Constants, one initializer per distinct value.
  std::string i64(const std::vector<std::int64_t>& v, bool scalar = false) {
    std::string key = scalar ? "s" : "v";
    for (std::int64_t x : v) key += "_" + std::to_string(x);
    return cached("const_i64" + key, [&](const std::string& n) {
      return tensor_i64(n, scalar ? std::vector<std::int64_t>{} : std::vector<std::int64_t>{std::int64_t(v.size())}, v);
    });
  }
  std::string f32(float v) {
    return cached("const_f32_" + std::to_string(std::bit_cast<std::uint32_t>(v)),
                  [&](const std::string& n) { return tensor_f32(n, {}, &v, 1); });
  }

 private:
  template <class Make>
  std::string cached(const std::string& name, Make make) {
    for (const Tensor& t : root_.inits)
      if (t.name == name) return name;
    return init(make(name));
  }
  Graph& g_;
  Graph& root_;
  int& counter_;
};

}  // namespace onnx

// ---- The ViT as ONNX nodes ----

enum class OnnxGraphKind { all_exits, early_exit };

struct OnnxExportOptions {
  OnnxGraphKind kind = OnnxGraphKind::all_exits;
  ExitRule rule = ExitRule::confidence;  // early exit only: confidence or entropy
  bool entropy_normalized = true;        // entropy rule: score divided by log C (envit's default)
  std::map<std::string, std::string> metadata;  // extra metadata_props (e.g. the normalisation)
};

// Throws ValueError naming the rule when the early-exit graph is asked for another rule than
// confidence or entropy.
inline void onnx_check_rule(const OnnxExportOptions& o) {
  if (o.kind == OnnxGraphKind::early_exit && o.rule != ExitRule::confidence && o.rule != ExitRule::entropy)
    throw ValueError(detail::cat("ONNX export: exit rule '", exit_rule_name(o.rule),
                                 "' is not exported; the early-exit graph implements confidence and entropy"));
}
namespace detail {

template <class T>
class OnnxVit {
 public:
  OnnxVit(const ViTParams<T>& P, onnx::Graph& root) : P_(P), c_(P.config()), root_(root) {}

  // Named weight as an initializer (once); transposed (r, c) -> (c, r) for MatMul when `transpose`.
  std::string weight(onnx::Builder& b, const std::string& name, bool transpose = false) {
    const std::string out = transpose ? name + ".T" : name;
    for (const auto& t : root_.inits)
      if (t.name == out) return out;
    const ParamEntry& e = P_.at(name);
    const T* v = P_.values() + e.offset;
    std::vector<float> f(e.numel);
    std::vector<std::int64_t> dims = e.shape;
    if (transpose) {
      const std::size_t r = std::size_t(e.shape[0]), cols = std::size_t(e.shape[1]);
      for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < cols; ++j) f[j * r + i] = float(v[i * cols + j]);
      dims = {e.shape[1], e.shape[0]};
    } else {
      for (std::size_t i = 0; i < e.numel; ++i) f[i] = float(v[i]);
    }
    return b.init(onnx::tensor_f32(out, dims, f.data(), f.size()));
  }

  // image (B, C, H, W) -> tokens (B, N, D): Conv(stride P) -> (B, D, G, G) -> (B, D, G*G) -> (B, G*G, D),
  // the class token expanded to (B, 1, D) in front, plus the position embedding.
  std::string embed(onnx::Builder& b, const std::string& image) {
    using namespace onnx;
    const std::int64_t D = c_.dim, P = c_.patch;
    std::string conv = b.op("Conv", {image, weight(b, "patch_embed.proj.weight"), weight(b, "patch_embed.proj.bias")},
                            {attr_ints("kernel_shape", {P, P}), attr_ints("strides", {P, P})});
    std::string flat = b.op("Reshape", {conv, b.i64({0, D, -1})});
    std::string tok = b.op("Transpose", {flat}, {attr_ints("perm", {0, 2, 1})});
    std::string batch = b.op("Shape", {image}, {attr_i("start", 0), attr_i("end", 1)});
    std::string cls_shape = b.op("Concat", {batch, b.i64({1, D})}, {attr_i("axis", 0)});
    std::string cls = b.op("Expand", {weight(b, "cls_token"), cls_shape});
    std::string x = b.op("Concat", {cls, tok}, {attr_i("axis", 1)});
    return b.op("Add", {x, weight(b, "pos_embed")});
  }

  std::string layernorm(onnx::Builder& b, const std::string& x, const std::string& prefix) {
    return b.op("LayerNormalization", {x, weight(b, prefix + "weight"), weight(b, prefix + "bias")},
                {onnx::attr_i("axis", -1), onnx::attr_f("epsilon", float(c_.ln_eps))});
  }
  // x (..., K) W^T + b with W (Nout, K) stored transposed.
  std::string linear(onnx::Builder& b, const std::string& x, const std::string& prefix) {
    return b.op("Add", {b.op("MatMul", {x, weight(b, prefix + "weight", true)}), weight(b, prefix + "bias")});
  }
  // Exact GELU: x * 0.5 * (1 + erf(x / sqrt 2)).
  std::string gelu(onnx::Builder& b, const std::string& x) {
    std::string e = b.op("Erf", {b.op("Div", {x, b.f32(float(std::sqrt(2.0)))})});
    return b.op("Mul", {b.op("Mul", {x, b.op("Add", {e, b.f32(1.0f)})}), b.f32(0.5f)});
  }

  // Multi-head self-attention in timm's layout on x (B, T, D): qkv = x Wqkv^T (+ bqkv when
  // `qkv_bias`) reshaped (B, T, 3, H, E), softmax(q k^T / sqrt E) v, heads concatenated, then the
  // output projection. ops/attention.hpp.
  std::string attention(onnx::Builder& b, const std::string& x, const std::string& qkv, bool qkv_bias,
                        const std::string& proj, std::int64_t H) {
    using namespace onnx;
    const std::int64_t D = c_.dim, E = D / H;
    std::string m = b.op("MatMul", {x, weight(b, qkv + "weight", true)});
    if (qkv_bias) m = b.op("Add", {m, weight(b, qkv + "bias")});                          // (B, T, 3D)
    std::string r = b.op("Reshape", {m, b.i64({0, 0, 3, H, E})});                       // (B, T, 3, H, E)
    std::string t = b.op("Transpose", {r}, {attr_ints("perm", {2, 0, 3, 1, 4})});        // (3, B, H, T, E)
    auto part = [&](std::int64_t k) { return b.op("Gather", {t, b.i64({k}, true)}, {attr_i("axis", 0)}); };
    std::string q = part(0), k = part(1), v = part(2);                                  // (B, H, T, E)
    std::string kt = b.op("Transpose", {k}, {attr_ints("perm", {0, 1, 3, 2})});
    std::string s = b.op("Mul", {b.op("MatMul", {q, kt}), b.f32(float(1.0 / std::sqrt(double(E))))});
    std::string a = b.op("Softmax", {s}, {attr_i("axis", -1)});                          // (B, H, T, T)
    std::string o = b.op("Transpose", {b.op("MatMul", {a, v})}, {attr_ints("perm", {0, 2, 1, 3})});  // (B, T, H, E)
    return linear(b, b.op("Reshape", {o, b.i64({0, 0, D})}), proj);                     // (B, T, D)
  }

  // Pre-LN block l (0-based): x1 = x + proj(attn(LN1 x)), y = x1 + fc2(GELU(fc1(LN2 x1))).
  std::string block(onnx::Builder& b, const std::string& x, int l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    std::string att = attention(b, layernorm(b, x, p + "norm1."), p + "attn.qkv.", true, p + "attn.proj.", c_.heads);
    std::string x1 = b.op("Add", {x, att});
    std::string hid = gelu(b, linear(b, layernorm(b, x1, p + "norm2."), p + "mlp.fc1."));
    return b.op("Add", {x1, linear(b, hid, p + "mlp.fc2.")});
  }

  // Exit j's logits (B, C) from the block output h (B, N, D): LayerNorm + Linear on the class
  // token, or exit j's LGViT head.
  std::string exit_head(onnx::Builder& b, const std::string& h, int j, const std::string& out = "") {
    using namespace onnx;
    if (P_.exit_is_lgvit(j)) return lgvit_head(b, h, j, out);
    const std::string p = ViTParams<T>::exit_prefix(j, c_.num_exits());
    std::string cls = b.op("Gather", {h, b.i64({0}, true)}, {attr_i("axis", 1)});  // (B, D)
    std::string n = layernorm(b, cls, p + "norm.");
    return b.op("Gemm", {n, weight(b, p + "head.weight"), weight(b, p + "head.bias")}, {attr_i("transB", 1)}, out);
  }

  // BatchNormalization in inference mode (running statistics) on x (B, D, G, G): BatchNorm2d as
  // ops/batchnorm.hpp's eval mode, eps 1e-5.
  std::string batchnorm(onnx::Builder& b, const std::string& x, const std::string& prefix) {
    return b.op("BatchNormalization",
                {x, weight(b, prefix + "weight"), weight(b, prefix + "bias"), weight(b, prefix + "running_mean"),
                 weight(b, prefix + "running_var")},
                {onnx::attr_f("epsilon", float(kLgvitBnEps))});
  }

  // LGViT head of early exit j in eval mode (model/lgvit_head.hpp), on the raw block output h
  // (B, N, D): X = the patch tokens (B, P, D), cls = h[:, 0];
  //   conv1_1 / conv2_1 on X as the map (B, D, G, G): Conv 1x1 -> GELU -> BatchNormalization
  //     [conv1_1: Conv 3x3 group D pad 1 -> GELU -> BatchNormalization] -> Conv 1x1 ->
  //     BatchNormalization, + X; ReduceMean over the G x G map -> (B, D)
  //   attn_r{s}: X on the grid (B, G, G, D), Slice step s on both grid axes -> (B, P', D),
  //     8-head attention (qkv without bias); ReduceMean over the P' tokens -> (B, D)
  // logits = Gemm(mean + cls, classifier).
  std::string lgvit_head(onnx::Builder& b, const std::string& h, int j, const std::string& out) {
    using namespace onnx;
    const LgvitKind k = P_.lgvit_kind(j);
    const std::string p = "exits." + std::to_string(j) + ".";
    const std::int64_t D = c_.dim, G = c_.grid(), N = c_.tokens();
    std::string cls = b.op("Gather", {h, b.i64({0}, true)}, {attr_i("axis", 1)});             // (B, D)
    std::string x = b.op("Slice", {h, b.i64({1}), b.i64({N}), b.i64({1})});                    // (B, P, D)
    std::string pooled;
    if (lgvit_is_conv(k)) {
      std::string map = b.op("Reshape", {b.op("Transpose", {x}, {attr_ints("perm", {0, 2, 1})}), b.i64({0, D, G, G})});
      auto conv1x1 = [&](const std::string& in, const std::string& w) {                        // (B, D, G, G)
        return b.op("Conv", {in, weight(b, w + "weight"), weight(b, w + "bias")}, {attr_ints("kernel_shape", {1, 1})});
      };
      std::string u = batchnorm(b, gelu(b, conv1x1(map, p + "mlp.conv1.0.")), p + "mlp.conv1.2.");
      if (k == LgvitKind::conv1_1) {
        std::string dw = b.op("Conv", {u, weight(b, p + "mlp.proj.weight"), weight(b, p + "mlp.proj.bias")},
                              {attr_i("group", D), attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {1, 1, 1, 1})});
        u = batchnorm(b, gelu(b, dw), p + "mlp.proj_bn.");
      }
      std::string y = b.op("Add", {batchnorm(b, conv1x1(u, p + "mlp.conv2.0."), p + "mlp.conv2.1."), map});
      pooled = b.op("ReduceMean", {y}, {attr_ints("axes", {2, 3}), attr_i("keepdims", 0)});
    } else {
      const std::int64_t s = lgvit_stride(k);
      std::string grid = b.op("Reshape", {x, b.i64({0, G, G, D})});                            // (B, G, G, D)
      std::string sub = b.op("Slice", {grid, b.i64({0, 0}), b.i64({G, G}), b.i64({1, 2}), b.i64({s, s})});
      std::string xs = b.op("Reshape", {sub, b.i64({0, -1, D})});                              // (B, P', D)
      std::string y = attention(b, xs, p + "mlp.qkv.", false, p + "mlp.proj.", kLgvitAttnHeads);
      pooled = b.op("ReduceMean", {y}, {attr_ints("axes", {1}), attr_i("keepdims", 0)});
    }
    std::string z = b.op("Add", {pooled, cls});                                                // (B, D)
    return b.op("Gemm", {z, weight(b, p + "classifier.weight"), weight(b, p + "classifier.bias")},
                {attr_i("transB", 1)}, out);
  }

  // Blocks [from, to) (0-based) on h.
  std::string blocks(onnx::Builder& b, std::string h, int from, int to) {
    for (int l = from; l < to; ++l) h = block(b, h, l);
    return h;
  }

  // Exit score of logits z (1, C) under the rule, (1).
  std::string score(onnx::Builder& b, const std::string& z, const OnnxExportOptions& o) {
    using namespace onnx;
    if (o.rule == ExitRule::confidence)  // max_c softmax(z)_c
      return b.op("ReduceMax", {b.op("Softmax", {z}, {attr_i("axis", 1)})}, {attr_ints("axes", {1}), attr_i("keepdims", 0)});
    // entropy: -sum_c p_c log p_c (clamped at 0, as envit does for rounding), / log C when normalised
    std::string pl = b.op("Mul", {b.op("Softmax", {z}, {attr_i("axis", 1)}), b.op("LogSoftmax", {z}, {attr_i("axis", 1)})});
    std::string h = b.op("Max", {b.op("Neg", {b.op("ReduceSum", {pl, b.i64({1})}, {attr_i("keepdims", 0)})}), b.f32(0.0f)});
    return o.entropy_normalized ? b.op("Div", {h, b.f32(float(std::log(double(c_.classes))))}) : h;
  }

  // Outputs (prediction, exit, logits) of a branch that leaves at exit j with logits z.
  void leave(onnx::Builder& b, const std::string& z, int j, const std::vector<std::string>& out) {
    b.op("ArgMax", {z}, {onnx::attr_i("axis", 1), onnx::attr_i("keepdims", 0)}, out[0]);
    b.op("Identity", {b.i64({j})}, {}, out[1]);
    b.op("Identity", {z}, {}, out[2]);
  }

  // The decision at exit j given the state h after block s_j and its logits z, writing `out`:
  // the last exit always leaves; otherwise If(score passes threshold) { leave } else { run the
  // blocks up to exit j + 1 and decide there }.
  void decide(onnx::Builder& b, const std::string& h, const std::string& z, int j, const OnnxExportOptions& o,
              const std::vector<std::string>& out, int& counter) {
    using namespace onnx;
    const int M = c_.num_exits();
    if (j == M - 1) return leave(b, z, j, out);
    const std::string s = score(b, z, o);
    const std::string cond = b.op(o.rule == ExitRule::confidence ? "GreaterOrEqual" : "LessOrEqual", {s, "threshold"});
    auto branch = [&](const std::string& name) {
      auto g = std::make_shared<Graph>();
      g->name = name + "_exit" + std::to_string(j);
      g->outputs = outputs(name + std::to_string(j));
      return g;
    };
    auto then_g = branch("leave"), else_g = branch("continue");
    Builder bt(*then_g, root_, counter), be(*else_g, root_, counter);
    leave(bt, z, j, names(*then_g));
    const std::string h2 = blocks(be, h, c_.exits[std::size_t(j)], c_.exits[std::size_t(j) + 1]);
    decide(be, h2, exit_head(be, h2, j + 1), j + 1, o, names(*else_g), counter);
    b.graph().nodes.push_back({"If", "if_exit" + std::to_string(j), {cond}, out,
                               {attr_graph("then_branch", then_g), attr_graph("else_branch", else_g)}});
  }

  std::vector<onnx::Value> outputs(const std::string& suffix) const {
    return {{"prediction" + suffix, onnx::kInt64, {1}},
            {"exit" + suffix, onnx::kInt64, {1}},
            {"logits" + suffix, onnx::kFloat, {1, c_.classes}}};
  }
  static std::vector<std::string> names(const onnx::Graph& g) {
    std::vector<std::string> n;
    for (const auto& v : g.outputs) n.push_back(v.name);
    return n;
  }

 private:
  const ViTParams<T>& P_;
  const VitConfig& c_;
  onnx::Graph& root_;
};

}  // namespace detail

// The ONNX graph of P (see the file comment), unencoded.
template <class T>
onnx::Graph onnx_graph(const ViTParams<T>& P, const OnnxExportOptions& o = {}) {
  const VitConfig& c = P.config();
  onnx_check_rule(o);
  onnx::Graph g;
  int counter = 0;
  onnx::Builder b(g, g, counter);
  detail::OnnxVit<T> vit(P, g);
  const std::int64_t C = c.channels, S = c.image_size;
  if (o.kind == OnnxGraphKind::all_exits) {
    g.name = "envit_all_exits";
    g.inputs = {{"image", onnx::kFloat, {-1, C, S, S}}};
    std::string h = vit.embed(b, "image");
    int done = 0;
    for (int j = 0; j < c.num_exits(); ++j) {
      h = vit.blocks(b, h, done, c.exits[std::size_t(j)]);
      done = c.exits[std::size_t(j)];
      const std::string name = "logits_" + std::to_string(j);
      vit.exit_head(b, h, j, name);
      g.outputs.push_back({name, onnx::kFloat, {-1, c.classes}});
    }
    return g;
  }
  g.name = std::string("envit_early_exit_") + exit_rule_name(o.rule);
  g.inputs = {{"image", onnx::kFloat, {1, C, S, S}}, {"threshold", onnx::kFloat, {}}};
  g.outputs = vit.outputs("");
  const std::string h = vit.blocks(b, vit.embed(b, "image"), 0, c.exits[0]);
  vit.decide(b, h, vit.exit_head(b, h, 0), 0, o, {"prediction", "exit", "logits"}, counter);
  return g;
}

// metadata_props written with every export: the envit config (`config.*`), the graph kind and rule.
template <class T>
std::map<std::string, std::string> onnx_metadata(const ViTParams<T>& P, const OnnxExportOptions& o) {
  std::map<std::string, std::string> m = o.metadata;
  for (auto& [k, v] : P.config().to_map()) m["config." + k] = v;
  m["envit.graph"] = o.kind == OnnxGraphKind::all_exits ? "all_exits" : "early_exit";
  if (o.kind == OnnxGraphKind::early_exit) {
    m["envit.exit_rule"] = exit_rule_name(o.rule);
    if (o.rule == ExitRule::entropy) m["envit.entropy_normalized"] = o.entropy_normalized ? "true" : "false";
  }
  return m;
}

// Writes P to `path` as an ONNX model (atomically: io::AtomicWriter). Throws ValueError for what
// cannot be exported (onnx_check_rule) and IoError naming the file if it cannot be written.
template <class T>
void onnx_save(const std::string& path, const ViTParams<T>& P, const OnnxExportOptions& o = {}) {
  const std::string bytes = onnx::encode_model(onnx_graph(P, o), onnx_metadata(P, o));
  io::AtomicWriter out(path);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

}  // namespace envit
