// envit/weights/pretrained.hpp — reads a pretrained ViT from the layouts PyTorch users have and renames
// it to envit's (timm's) names in float32, with the architecture it implies:
//   hf           a Hugging Face directory (config.json + model.safetensors) of ViTModel or
//                ViTForImageClassification: optional `vit.` prefix, separate query/key/value fused
//                into qkv (in that order), sizes and LayerNorm epsilon from config.json, normalisation
//                from preprocessor_config.json when present; the pooler is ignored and reported.
//   torchvision  a vit_b_16-style state dict saved as safetensors (conv_proj, class_token,
//                encoder.pos_embedding, in_proj_weight, ln_1/ln_2, mlp.0/mlp.3, encoder.ln, heads.head).
//   timm         a timm VisionTransformer state dict saved as safetensors (envit's own names).
//   envit        an envit checkpoint (timm names + config and normalisation in the metadata).
// F32, F64, F16 and BF16 tensors are converted to F32. Sources without a config (timm, torchvision,
// a bare HF model.safetensors) cannot tell the number of attention heads or the LayerNorm epsilon:
// they come from PretrainedFlags, and a missing one is an IoError naming the flag.
// `exits.*` tensors (envit's extra exit heads, written by `envit convert --to`) pass through in
// every layout. Not handled: pickled .bin/.pth files (save them as safetensors first), relative
// position embeddings, register tokens, global-average pooling heads.
#pragma once
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <climits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/data/channel_stats.hpp"
#include "envit/io/half.hpp"
#include "envit/io/json.hpp"
#include "envit/io/safetensors.hpp"
#include "envit/model/config.hpp"
#include "envit/model/pos_embed_resample.hpp"

namespace envit {

enum class WeightFormat { detect, envit, timm, hf, torchvision };

inline const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::envit: return "envit";
    case WeightFormat::timm: return "timm";
    case WeightFormat::hf: return "hf";
    case WeightFormat::torchvision: return "torchvision";
    default: return "detect";
  }
}
inline WeightFormat parse_weight_format(const std::string& s) {
  for (WeightFormat f : {WeightFormat::detect, WeightFormat::envit, WeightFormat::timm, WeightFormat::hf,
                         WeightFormat::torchvision})
    if (s == weight_format_name(f)) return f;
  if (s == "auto" || s.empty()) return WeightFormat::detect;
  throw ValueError("unknown weight format '" + s + "' (expected detect, envit, timm, hf or torchvision)");
}

// What a config-less source cannot tell; 0 / negative = not given.
struct PretrainedFlags {
  int heads = 0;        // --heads
  double ln_eps = -1;   // --ln-eps
};

// A pretrained ViT in envit's names. cfg.exits = {depth}; cfg.classes = the classifier's rows, or 0
// when the source has no classifier (cfg is then not valid() until a run sets the classes).
struct Pretrained {
  WeightFormat format = WeightFormat::detect;
  std::string source;                 // the path given
  VitConfig cfg;
  StFile weights;                     // F32, envit/timm names
  std::vector<std::string> renamed;   // "source name(s) -> envit name"
  std::vector<std::string> widened;   // "envit name (BF16)": converted to F32 on load
  std::vector<std::string> ignored;   // "source name: why"
  std::vector<double> mean, std;      // the source's input normalisation (empty: not recorded)
  std::string norm_origin;            // where mean/std came from
  bool has_head() const { return weights.find("head.weight") != nullptr; }
};

namespace detail {

inline bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// A JSON file (config.json, preprocessor_config.json) read with the full JSON grammar, and typed
// access to its top-level members: a missing member or one of the wrong type is an IoError naming
// the file, the key, what was expected and what the file holds.
struct JsonFile {
  std::string where;  // "'dir/config.json'"
  json::Value root;

  const json::Value* find(const char* key) const { return root.find(key); }
  // "the string \"768\"", "the number -768.0", "true", "an array", ...
  static std::string describe(const json::Value& v) {
    using K = json::Value::Kind;
    switch (v.kind) {
      case K::null: return "null";
      case K::boolean: return v.boolean ? "true" : "false";
      case K::integer: return "the integer " + std::to_string(v.integer);
      case K::number: {
        std::string s = "the number ";
        json::write_number(s, v.number);
        return s;
      }
      case K::string: {
        std::size_t n = v.str.size() <= 40 ? v.str.size() : 37;  // cut at a UTF-8 character boundary
        while (n < v.str.size() && (static_cast<unsigned char>(v.str[n]) & 0xC0) == 0x80) --n;
        std::string s = "the string ";
        json::write_string(s, v.str.substr(0, n) + (n < v.str.size() ? "..." : ""));
        return s;
      }
      case K::array: return "an array";
      default: return "an object";
    }
  }
  [[noreturn]] void wrong(const char* key, const char* expected, const json::Value& v) const {
    throw IoError(detail::cat(where, ": '", key, "' is ", describe(v), ", expected ", expected));
  }
  const json::Value& need(const char* key, const char* expected) const {
    const json::Value* v = find(key);
    ENVIT_CHECK(v != nullptr, IoError, where, ": no '", key, "' (expected ", expected, ")");
    return *v;
  }
  int as_int(const char* key, const json::Value& v) const {
    constexpr const char* what = "an integer in [0, 2147483647]";
    if (v.kind != json::Value::Kind::integer || v.integer > std::uint64_t(INT_MAX)) wrong(key, what, v);
    return static_cast<int>(v.integer);
  }
  int integer(const char* key) const { return as_int(key, need(key, "an integer")); }
  int integer_or(const char* key, int fallback) const {
    const json::Value* v = find(key);
    return v ? as_int(key, *v) : fallback;
  }
  double number(const char* key) const {
    const json::Value& v = need(key, "a number");
    if (v.kind != json::Value::Kind::integer && v.kind != json::Value::Kind::number) wrong(key, "a number", v);
    return v.number;
  }
  std::string string_or(const char* key, const std::string& fallback) const {
    const json::Value* v = find(key);
    if (!v) return fallback;
    if (v->kind != json::Value::Kind::string) wrong(key, "a string", *v);
    return v->str;
  }
  bool boolean_or(const char* key, bool fallback) const {
    const json::Value* v = find(key);
    if (!v) return fallback;
    if (v->kind != json::Value::Kind::boolean) wrong(key, "true or false", *v);
    return v->boolean;
  }
  std::vector<int> integers(const char* key) const {
    const json::Value& v = need(key, "an array of integers");
    if (v.kind != json::Value::Kind::array) wrong(key, "an array of integers", v);
    std::vector<int> out;
    for (const json::Value& x : v.items) out.push_back(as_int(key, x));
    return out;
  }
  std::vector<double> numbers(const char* key) const {
    const json::Value& v = need(key, "an array of numbers");
    if (v.kind != json::Value::Kind::array) wrong(key, "an array of numbers", v);
    std::vector<double> out;
    for (const json::Value& x : v.items) {
      if (x.kind != json::Value::Kind::integer && x.kind != json::Value::Kind::number)
        wrong(key, "an array of numbers", x);
      out.push_back(x.number);
    }
    return out;
  }
};

// Reads and parses `path`; the top level must be an object. A UTF-8 byte-order mark is skipped.
inline JsonFile read_json_file(const std::string& path) {
  JsonFile f;
  f.where = "'" + path + "'";
  std::ifstream in(path, std::ios::binary);
  ENVIT_CHECK(in.good(), IoError, "cannot open ", f.where);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ENVIT_CHECK(!in.bad(), IoError, "cannot read ", f.where);
  const std::size_t bom = text.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0;
  try {
    f.root = json::parse(std::string_view(text).substr(bom), json::Grammar::full);
  } catch (const json::ParseError& e) {
    throw IoError(detail::cat(f.where, ": not valid JSON at byte ", e.pos + bom, ": ", e.what()));
  }
  ENVIT_CHECK(f.root.kind == json::Value::Kind::object, IoError, f.where, ": not a JSON object (the file holds ",
              JsonFile::describe(f.root), ")");
  return f;
}

// Largest i + 1 such that some tensor is named `prefix` + i + "." ...; 0 if none.
inline int count_indexed(const StFile& f, const std::string& prefix) {
  int n = 0;
  for (const StTensor& t : f.tensors) {
    if (t.name.rfind(prefix, 0) != 0) continue;
    std::size_t a = prefix.size(), b = a;
    while (b < t.name.size() && std::isdigit(static_cast<unsigned char>(t.name[b]))) ++b;
    if (b == a || b >= t.name.size() || t.name[b] != '.') continue;
    n = std::max(n, std::stoi(t.name.substr(a, b - a)) + 1);
  }
  return n;
}

// One envit tensor from one source tensor or several concatenated along dim 0 (q, k, v -> qkv).
struct PtRule {
  std::string target;
  std::vector<std::string> sources;
  bool optional = false;  // absent in the source: skipped (the classifier)
};

inline std::vector<PtRule> pt_rules(WeightFormat fmt, const std::string& p, int depth, const StFile& src) {
  std::vector<PtRule> r;
  auto one = [&](std::string t, std::string s, bool opt = false) { r.push_back({std::move(t), {std::move(s)}, opt}); };
  auto wb = [&](const std::string& t, const std::string& s, bool opt = false) {
    one(t + ".weight", s + ".weight", opt);
    one(t + ".bias", s + ".bias", opt);
  };
  if (fmt == WeightFormat::hf) {
    one("cls_token", p + "embeddings.cls_token");
    one("pos_embed", p + "embeddings.position_embeddings");
    wb("patch_embed.proj", p + "embeddings.patch_embeddings.projection");
    for (int l = 0; l < depth; ++l) {
      const std::string b = "blocks." + std::to_string(l) + ".", s = p + "encoder.layer." + std::to_string(l) + ".";
      const std::string a = s + "attention.attention.";
      wb(b + "norm1", s + "layernorm_before");
      r.push_back({b + "attn.qkv.weight", {a + "query.weight", a + "key.weight", a + "value.weight"}, false});
      r.push_back({b + "attn.qkv.bias", {a + "query.bias", a + "key.bias", a + "value.bias"}, false});
      wb(b + "attn.proj", s + "attention.output.dense");
      wb(b + "norm2", s + "layernorm_after");
      wb(b + "mlp.fc1", s + "intermediate.dense");
      wb(b + "mlp.fc2", s + "output.dense");
    }
    wb("norm", p + "layernorm");
    wb("head", "classifier", true);
  } else if (fmt == WeightFormat::torchvision) {
    one("cls_token", "class_token");
    one("pos_embed", "encoder.pos_embedding");
    wb("patch_embed.proj", "conv_proj");
    for (int l = 0; l < depth; ++l) {
      const std::string b = "blocks." + std::to_string(l) + ".", s = "encoder.layers.encoder_layer_" + std::to_string(l) + ".";
      const bool numbered = src.find(s + "mlp.0.weight") != nullptr;  // torchvision >= 0.13; older: linear_1/2
      wb(b + "norm1", s + "ln_1");
      one(b + "attn.qkv.weight", s + "self_attention.in_proj_weight");
      one(b + "attn.qkv.bias", s + "self_attention.in_proj_bias");
      wb(b + "attn.proj", s + "self_attention.out_proj");
      wb(b + "norm2", s + "ln_2");
      wb(b + "mlp.fc1", s + (numbered ? "mlp.0" : "mlp.linear_1"));
      wb(b + "mlp.fc2", s + (numbered ? "mlp.3" : "mlp.linear_2"));
    }
    wb("norm", "encoder.ln");
    wb("head", "heads.head", true);
  } else {  // timm and envit: the names are envit's
    for (const char* n : {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                          "norm.weight", "norm.bias"})
      one(n, n);
    for (int l = 0; l < depth; ++l) {
      const std::string b = "blocks." + std::to_string(l) + ".";
      for (const char* n : {"norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"}) wb(b + n, b + n);
    }
    wb("head", "head", true);
  }
  return r;
}

// Source tensors a layout knows and envit does not use, with the reason reported.
inline std::string pt_known_unused(WeightFormat fmt, const std::string& p, const std::string& name) {
  if (name.rfind("optimizer.", 0) == 0) return "optimizer state (not needed to initialise)";
  if (fmt == WeightFormat::hf) {
    if (name.rfind(p + "pooler.", 0) == 0) return "ViTModel's tanh pooler (unused: the classifier reads the class token)";
    if (name == p + "embeddings.mask_token") return "masked-image-modelling token (unused)";
  }
  return {};
}

}  // namespace detail

// Which layout `path` holds: a directory with config.json is hf; a safetensors file by its names.
inline WeightFormat pretrained_detect(const std::string& path) {
  if (detail::is_dir(path)) {
    ENVIT_CHECK(io::file_exists(path + "/config.json"), IoError, "'", path,
                "' is a directory without config.json (expected a Hugging Face model directory)");
    return WeightFormat::hf;
  }
  StFile f = safetensors_read(path);
  if (f.meta_or("format", "").rfind("envit-checkpoint", 0) == 0) return WeightFormat::envit;
  auto has = [&](const std::string& n) { return f.find(n) != nullptr; };
  if (has("conv_proj.weight")) return WeightFormat::torchvision;
  if (has("embeddings.patch_embeddings.projection.weight") || has("vit.embeddings.patch_embeddings.projection.weight"))
    return WeightFormat::hf;
  if (has("patch_embed.proj.weight")) return WeightFormat::timm;
  std::string names;
  for (std::size_t i = 0; i < f.tensors.size() && i < 5; ++i) names += (i ? ", " : "") + f.tensors[i].name;
  throw IoError(detail::cat(f.where(), ": not a ViT layout envit knows (no patch embedding named as in timm, ",
                            "Hugging Face or torchvision; first tensors: ", names, "); pass --init-format"));
}

// Reads `path` in layout `fmt` (detect: pretrained_detect). Throws IoError naming the file for a
// missing or unexpected tensor, shapes that do not form a ViT, a config that contradicts the
// weights, or a missing flag.
inline Pretrained pretrained_read(const std::string& path, WeightFormat fmt = WeightFormat::detect,
                                  const PretrainedFlags& flags = {}) {
  if (fmt == WeightFormat::detect) fmt = pretrained_detect(path);
  Pretrained out;
  out.format = fmt;
  out.source = path;
  std::optional<detail::JsonFile> hfc;  // config.json of a Hugging Face directory
  std::string st_path = path;
  if (detail::is_dir(path)) {
    ENVIT_CHECK(fmt == WeightFormat::hf, IoError, "'", path, "' is a directory; only the hf format is a directory");
    hfc = detail::read_json_file(path + "/config.json");
    st_path = path + "/model.safetensors";
    ENVIT_CHECK(io::file_exists(st_path), IoError, "'", path, "': no model.safetensors (a pytorch_model.bin must ",
                "be saved as safetensors first: model.save_pretrained(dir, safe_serialization=True))");
  }
  const StFile src = safetensors_read(st_path);
  const std::string where = src.where();
  // An INT8 checkpoint (weights/quantize.hpp) holds INT8 weights with their scales: the readers
  // here take FP32 weights only; convert or fine-tune the FP32 checkpoint it was made from.
  ENVIT_CHECK(src.metadata.find("quantization") == src.metadata.end(), IoError, where,
              ": an INT8-quantized checkpoint (__metadata__ quantization = '", src.metadata.at("quantization"),
              "', written by envit quantize); this reads FP32 checkpoints only: use the checkpoint it was "
              "quantized from (envit eval runs the quantized one)");
  const std::string p = fmt == WeightFormat::hf && src.find("vit.embeddings.cls_token") ? "vit." : "";
  const int depth = fmt == WeightFormat::hf ? detail::count_indexed(src, p + "encoder.layer.")
                    : fmt == WeightFormat::torchvision ? detail::count_indexed(src, "encoder.layers.encoder_layer_")
                                                       : detail::count_indexed(src, "blocks.");
  ENVIT_CHECK(depth > 0, IoError, where, ": no transformer blocks found for the ", weight_format_name(fmt), " layout");
  if (fmt == WeightFormat::torchvision)
    ENVIT_CHECK(!src.find("heads.pre_logits.weight"), IoError, where,
                ": torchvision's representation_size pre-logits layer is not supported");

  // Rename (and fuse) into out.weights.
  std::set<std::string> used;
  std::vector<std::string> missing;
  for (const detail::PtRule& r : detail::pt_rules(fmt, p, depth, src)) {
    std::vector<const StTensor*> ts;
    for (const std::string& s : r.sources)
      if (const StTensor* t = src.find(s)) ts.push_back(t);
    if (ts.size() != r.sources.size()) {
      if (ts.empty() && r.optional) continue;
      for (const std::string& s : r.sources)
        if (!src.find(s)) missing.push_back(s);
      continue;
    }
    std::vector<std::int64_t> shape = ts[0]->shape;
    std::vector<float> v;
    for (const StTensor* t : ts) {
      ENVIT_CHECK(!t->shape.empty() && std::vector<std::int64_t>(t->shape.begin() + 1, t->shape.end()) ==
                                           std::vector<std::int64_t>(shape.begin() + 1, shape.end()),
                  IoError, where, ": tensors fused into '", r.target, "' differ in shape (", r.sources[0], " ",
                  st_shape_str(shape), ", ", t->name, " ", st_shape_str(t->shape), ")");
      std::vector<float> x = st_to_float(*t, where);
      v.insert(v.end(), x.begin(), x.end());
      used.insert(t->name);
      if (t->dtype != "F32") out.widened.push_back(r.target + " (" + t->dtype + ")");
    }
    shape[0] *= static_cast<std::int64_t>(ts.size());
    out.weights.add<float>(r.target, v.data(), shape);
    if (r.sources.size() != 1 || r.sources[0] != r.target) {
      std::string s;
      for (std::size_t i = 0; i < r.sources.size(); ++i) s += (i ? " + " : "") + r.sources[i];
      out.renamed.push_back(s + " -> " + r.target);
    }
  }
  std::vector<std::string> unexpected;
  for (const StTensor& t : src.tensors) {
    if (used.count(t.name)) continue;
    if (t.name.rfind("exits.", 0) == 0) {  // envit's extra exit heads pass through
      std::vector<float> v = st_to_float(t, where);
      out.weights.add<float>(t.name, v.data(), t.shape);
      continue;
    }
    std::string why = detail::pt_known_unused(fmt, p, t.name);
    if (why.empty()) unexpected.push_back(t.name + " " + st_shape_str(t.shape));
    else if (t.name.rfind("optimizer.", 0) != 0) out.ignored.push_back(t.name + ": " + why);
  }
  if (!missing.empty() || !unexpected.empty()) {
    std::ostringstream os;
    os << where << ": not a " << weight_format_name(fmt) << " ViT layout envit can import";
    for (auto& s : missing) os << "\n  missing:    " << s;
    for (auto& s : unexpected) os << "\n  unexpected: " << s;
    throw IoError(os.str());
  }

  // The architecture the weights imply.
  const StTensor& pw = out.weights.at("patch_embed.proj.weight");
  ENVIT_CHECK(pw.shape.size() == 4 && pw.shape[2] == pw.shape[3], IoError, where, ": patch projection has shape ",
              st_shape_str(pw.shape), ", expected (dim, channels, patch, patch)");
  VitConfig& c = out.cfg;
  c.dim = int(pw.shape[0]);
  c.channels = int(pw.shape[1]);
  c.patch = int(pw.shape[2]);
  c.depth = depth;
  c.exits = {depth};
  const StTensor& fc1 = out.weights.at("blocks.0.mlp.fc1.weight");
  ENVIT_CHECK(fc1.shape.size() == 2, IoError, where, ": blocks.0.mlp.fc1.weight has shape ", st_shape_str(fc1.shape));
  c.mlp_hidden = int(fc1.shape[0]);
  const StTensor& pe = out.weights.at("pos_embed");
  const int side = pe.shape.size() == 3 ? pos_embed_grid_side(pe.shape[1] - 1) : -1;
  ENVIT_CHECK(side > 0 && pe.shape[0] == 1 && pe.shape[2] == c.dim, IoError, where, ": position embedding has shape ",
              st_shape_str(pe.shape), ", expected (1, 1 + G*G, ", c.dim, ") for one class token and a square grid");
  c.image_size = side * c.patch;
  const StTensor* hw = out.weights.find("head.weight");
  c.classes = hw && hw->shape.size() == 2 ? int(hw->shape[0]) : 0;

  if (hfc) {
    const detail::JsonFile& j = *hfc;
    const std::string act = j.string_or("hidden_act", "gelu");
    ENVIT_CHECK(act == "gelu", IoError, j.where, ": hidden_act '", act, "' (envit's MLP uses the exact gelu)");
    const int hs = j.integer("hidden_size"), nl = j.integer("num_hidden_layers"), im = j.integer("intermediate_size"),
              ps = j.integer("patch_size"), is = j.integer("image_size"), nc = j.integer_or("num_channels", 3);
    ENVIT_CHECK(hs == c.dim && nl == c.depth && im == c.mlp_hidden && ps == c.patch && nc == c.channels, IoError,
                j.where, ": hidden_size ", hs, ", num_hidden_layers ", nl, ", intermediate_size ", im,
                ", patch_size ", ps, ", num_channels ", nc, " disagree with the weights (dim ", c.dim, ", depth ",
                c.depth, ", mlp ", c.mlp_hidden, ", patch ", c.patch, ", channels ", c.channels, ")");
    ENVIT_CHECK(is == c.image_size, IoError, j.where, ": image_size ", is, " but the position embedding holds a ",
                side, "x", side, " grid of ", c.patch, "-pixel patches (", c.image_size, ")");
    c.heads = j.integer("num_attention_heads");
    c.ln_eps = j.number("layer_norm_eps");
    if (const json::Value* e = j.find("envit_exits"); e && e->kind == json::Value::Kind::array)
      c.exits = j.integers("envit_exits");  // written by pretrained_save_hf
    c.exit_head = j.string_or("envit_exit_head", "linear");  // written by pretrained_save_hf for LGViT heads
    ENVIT_CHECK(c.exit_head == "linear" || c.exit_head == "lgvit", IoError, j.where, ": envit_exit_head '",
                c.exit_head, "' (expected linear or lgvit)");
    if (io::file_exists(path + "/preprocessor_config.json")) {
      const detail::JsonFile pc = detail::read_json_file(path + "/preprocessor_config.json");
      if (pc.find("image_mean") && pc.find("image_std") && pc.boolean_or("do_normalize", true)) {
        out.mean = pc.numbers("image_mean");
        out.std = pc.numbers("image_std");
        out.norm_origin = path + "/preprocessor_config.json";
      }
    }
  } else if (fmt == WeightFormat::envit) {
    std::map<std::string, std::string> m;
    for (auto& [k, v] : src.metadata)
      if (k.rfind("config.", 0) == 0) m[k.substr(7)] = v;
    VitConfig e;
    try {
      e = VitConfig::from_map(m);
    } catch (const ValueError& err) {
      throw IoError(where + ": " + err.what());
    }
    c.heads = e.heads;
    c.ln_eps = e.ln_eps;
    c.exits = e.exits;
    c.exit_head = e.exit_head;  // LGViT heads (and their BatchNorm statistics) load under their own names
    if (src.has_meta("data.mean") && src.has_meta("data.std")) {
      ChannelStats st;
      try {
        st = ChannelStats::from_map(src.metadata, c.channels, where);
      } catch (const ValueError& err) {
        throw IoError(err.what());
      }
      out.mean = st.mean;
      out.std = st.std;
      out.norm_origin = where + " metadata";
    }
  } else {
    ENVIT_CHECK(flags.heads > 0, IoError, where, ": a ", weight_format_name(fmt),
                " state dict does not record the number of attention heads: pass --heads (ViT-B/16: 12)");
    ENVIT_CHECK(flags.ln_eps >= 0, IoError, where, ": a ", weight_format_name(fmt),
                " state dict does not record the LayerNorm epsilon: pass --ln-eps (timm and torchvision ViTs: 1e-6)");
  }
  if (flags.heads > 0) {
    ENVIT_CHECK(!hfc && fmt != WeightFormat::envit ? true : flags.heads == c.heads, IoError, where,
                ": --heads ", flags.heads, " contradicts the source's ", c.heads);
    c.heads = flags.heads;
  }
  if (flags.ln_eps >= 0) {
    ENVIT_CHECK(!hfc && fmt != WeightFormat::envit ? true : flags.ln_eps == c.ln_eps, IoError, where,
                ": --ln-eps ", flags.ln_eps, " contradicts the source's ", c.ln_eps);
    c.ln_eps = flags.ln_eps;
  }
  ENVIT_CHECK(c.heads > 0 && c.dim % c.heads == 0, IoError, where, ": ", c.heads, " heads do not divide dim ", c.dim);
  return out;
}

}  // namespace envit
