// envit/weights/pretrained_export.hpp — writes a multi-exit ViT as a Hugging Face directory that
// transformers' ViTForImageClassification.from_pretrained loads:
//   config.json              ViTConfig fields (sizes, layer_norm_eps, image/patch size, id2label),
//                            plus "envit_exits" (the exit blocks) and, for LGViT heads,
//                            "envit_exit_head": "lgvit" (transformers ignores unknown keys)
//   model.safetensors        `vit.`-prefixed HF names, qkv split into query/key/value, `classifier`;
//                            F32; metadata "format": "pt" (what transformers checks) and the envit
//                            config as `config.*`
//   preprocessor_config.json ViTImageProcessor with the run's normalisation (when given)
// The intermediate exit heads travel as extra tensors under their envit names
// (`exits.{j}.norm.weight`, `exits.{j}.head.weight`, ...): transformers reports them as unused
// weights and loads the rest; envit's importer reads them back. docs/formats.md lists the names.
// The timm export is an envit weights-only checkpoint (train/checkpoint.hpp): timm names already.
#pragma once
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "envit/io/json.hpp"
#include "envit/io/safetensors.hpp"
#include "envit/model/params.hpp"

namespace envit {

template <class T>
void pretrained_save_hf(const std::string& dir, const ViTParams<T>& P, const std::vector<double>& mean = {},
                        const std::vector<double>& std = {}, const std::vector<std::string>& class_names = {}) {
  const VitConfig& c = P.config();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  ENVIT_CHECK(!ec, IoError, "cannot create directory '", dir, "': ", ec.message());
  StFile f;
  f.set_meta("format", "pt");
  for (auto& [k, v] : c.to_map()) f.set_meta("config." + k, v);
  auto put = [&](const std::string& hf_name, const std::string& name) {
    const ParamEntry& e = P.at(name);
    std::vector<float> v(P.values() + e.offset, P.values() + e.offset + e.numel);
    f.add<float>(hf_name, v.data(), e.shape);
  };
  const std::string p = "vit.";
  put(p + "embeddings.cls_token", "cls_token");
  put(p + "embeddings.position_embeddings", "pos_embed");
  put(p + "embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight");
  put(p + "embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias");
  const std::size_t D = static_cast<std::size_t>(c.dim);
  for (int l = 0; l < c.depth; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".", s = p + "encoder.layer." + std::to_string(l) + ".";
    for (const char* wb : {".weight", ".bias"}) {
      put(s + "layernorm_before" + wb, b + "norm1" + wb);
      put(s + "attention.output.dense" + wb, b + "attn.proj" + wb);
      put(s + "layernorm_after" + wb, b + "norm2" + wb);
      put(s + "intermediate.dense" + wb, b + "mlp.fc1" + wb);
      put(s + "output.dense" + wb, b + "mlp.fc2" + wb);
    }
    const T* w = P.value(b + "attn.qkv.weight");  // (3D, D): rows q, k, v
    const T* bias = P.value(b + "attn.qkv.bias");  // (3D)
    const char* part[3] = {"query", "key", "value"};
    for (std::size_t k = 0; k < 3; ++k) {
      std::vector<float> wv(w + k * D * D, w + (k + 1) * D * D), bv(bias + k * D, bias + (k + 1) * D);
      const std::string n = s + "attention.attention." + part[k];
      f.add<float>(n + ".weight", wv.data(), {c.dim, c.dim});
      f.add<float>(n + ".bias", bv.data(), {c.dim});
    }
  }
  put(p + "layernorm.weight", "norm.weight");
  put(p + "layernorm.bias", "norm.bias");
  put("classifier.weight", "head.weight");
  put("classifier.bias", "head.bias");
  for (const ParamEntry& e : P.table())
    if (e.name.rfind("exits.", 0) == 0) put(e.name, e.name);
  safetensors_write(dir + "/model.safetensors", f);

  // Laid out as transformers' save_pretrained writes it (json.dumps, indent 2).
  json::Writer j(2);
  j.begin_object();
  j.key("architectures").begin_array().value("ViTForImageClassification").end_array();
  j.key("model_type").value("vit");
  j.key("hidden_size").value(c.dim);
  j.key("num_hidden_layers").value(c.depth);
  j.key("num_attention_heads").value(c.heads);
  j.key("intermediate_size").value(c.mlp_hidden);
  j.key("hidden_act").value("gelu");
  j.key("hidden_dropout_prob").value(0.0);
  j.key("attention_probs_dropout_prob").value(0.0);
  j.key("initializer_range").value(0.02);
  j.key("layer_norm_eps").value(c.ln_eps);
  j.key("image_size").value(c.image_size);
  j.key("patch_size").value(c.patch);
  j.key("num_channels").value(c.channels);
  j.key("qkv_bias").value(true);
  j.key("encoder_stride").value(c.patch);
  std::vector<std::string> labels;
  for (int k = 0; k < c.classes; ++k)
    labels.push_back(k < static_cast<int>(class_names.size()) ? class_names[k] : "LABEL_" + std::to_string(k));
  j.key("id2label").begin_object();
  for (int k = 0; k < c.classes; ++k) j.key(std::to_string(k)).value(labels[k]);
  j.end_object();
  std::map<std::string, int> last;  // a repeated class name maps to its last id, listed once
  for (int k = 0; k < c.classes; ++k) last[labels[k]] = k;
  j.key("label2id").begin_object();
  for (int k = 0; k < c.classes; ++k)
    if (auto it = last.find(labels[k]); it != last.end()) {
      j.key(labels[k]).value(it->second);
      last.erase(it);
    }
  j.end_object();
  j.key("envit_exits").values(c.exits);
  if (c.exit_head != "linear") j.key("envit_exit_head").value(c.exit_head);
  j.end_object();
  auto write = [&](const std::string& path, const std::string& text) {
    std::ofstream o(path, std::ios::trunc);
    o << text << "\n";
    ENVIT_CHECK(o.good(), IoError, "cannot write '", path, "'");
  };
  write(dir + "/config.json", j.str());
  if (!mean.empty()) {
    json::Writer pc(2);
    pc.begin_object();
    pc.key("do_normalize").value(true);
    pc.key("do_rescale").value(true);
    pc.key("do_resize").value(true);
    pc.key("image_mean").values(mean);
    pc.key("image_std").values(std);
    pc.key("image_processor_type").value("ViTImageProcessor");
    pc.key("resample").value(2);
    pc.key("rescale_factor").value(1.0 / 255.0);
    pc.key("size").begin_object().key("height").value(c.image_size).key("width").value(c.image_size).end_object();
    pc.end_object();
    write(dir + "/preprocessor_config.json", pc.str());
  }
}

}  // namespace envit
