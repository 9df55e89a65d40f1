// envit/weights/pretrained_load.hpp — initialises a multi-exit ViT from a Pretrained (weights/pretrained.hpp)
// and says what happened: tensors matched, renamed or fused from the source's names, widened from
// BF16/F16/F64, reshaped (the position embedding resampled to the run's patch grid), freshly
// initialised (new exit heads; a classifier the source lacks or, with allow_new_heads, one whose
// class count differs), and source tensors ignored. The architecture (dim, depth, heads, MLP, patch,
// channels, LayerNorm epsilon) must match; a different patch size is an error that says so.
// Fresh tensors keep the values ViTParams::init gave them.
#pragma once
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "envit/weights/pretrained.hpp"
#include "envit/model/params.hpp"
#include "envit/model/pos_embed_resample.hpp"

namespace envit {

struct PretrainedLoadOptions {
  bool allow_new_heads = false;  // replace a classifier whose class count differs (else an error)
};

struct PretrainedReport {
  std::string source, format;
  std::vector<std::string> matched;   // envit names loaded as they are
  std::vector<std::string> renamed;   // from the source's names (and fused)
  std::vector<std::string> widened;   // converted to float32 from another dtype
  std::vector<std::string> reshaped;  // the position embedding, resampled
  std::vector<std::string> fresh;     // initialised fresh (new exit heads, new classifier)
  std::vector<std::string> ignored;   // in the source, not used
  std::string str() const {
    std::ostringstream os;
    os << "loaded " << source << " (" << format << "): " << matched.size() << " tensors, " << renamed.size()
       << " renamed or fused from " << format << " names, " << widened.size() << " converted to F32";
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      os << "\n  " << what << ":";
      for (const std::string& s : v) os << "\n    " << s;
    };
    list("reshaped", reshaped);
    list("new (freshly initialised)", fresh);
    list("ignored", ignored);
    return os.str();
  }
};

// The run configuration for fine-tuning `src`: its architecture, with the run's image size (0: the
// source's), classes and exits (empty: every other block).
inline VitConfig pretrained_run_config(const Pretrained& src, int image_size, int classes, std::vector<int> exits) {
  VitConfig c = src.cfg;
  if (image_size > 0) c.image_size = image_size;
  c.classes = classes;
  c.exits = exits.empty() ? VitConfig::every_other(c.depth) : std::move(exits);
  c.validate();
  return c;
}

template <class T>
PretrainedReport pretrained_load(const Pretrained& src, ViTParams<T>& P, const PretrainedLoadOptions& o = {}) {
  const VitConfig& s = src.cfg;
  const VitConfig& c = P.config();
  const std::string where = "'" + src.source + "'";
  ENVIT_CHECK(s.patch == c.patch, ValueError, where, ": pretrained with ", s.patch, "x", s.patch,
              " patches, the run uses ", c.patch, "x", c.patch,
              ": the patch projection cannot be resampled (position embeddings can: change --image-size instead)");
  ENVIT_CHECK(s.dim == c.dim && s.depth == c.depth && s.heads == c.heads && s.mlp_hidden == c.mlp_hidden &&
                  s.channels == c.channels,
              ValueError, where, ": pretrained architecture (dim ", s.dim, ", depth ", s.depth, ", heads ", s.heads,
              ", mlp ", s.mlp_hidden, ", channels ", s.channels, ") differs from the run's (dim ", c.dim, ", depth ",
              c.depth, ", heads ", c.heads, ", mlp ", c.mlp_hidden, ", channels ", c.channels, ")");
  ENVIT_CHECK(std::abs(s.ln_eps - c.ln_eps) <= 1e-12 * std::abs(s.ln_eps) + 1e-300 || s.ln_eps == c.ln_eps,
              ValueError, where, ": pretrained LayerNorm epsilon ", s.ln_eps, ", the run's ", c.ln_eps);
  PretrainedReport r;
  r.source = src.source;
  r.format = weight_format_name(src.format);
  r.renamed = src.renamed;
  r.widened = src.widened;
  r.ignored = src.ignored;
  std::vector<std::string> used;
  for (const ParamEntry& e : P.table()) {
    T* dst = P.values() + e.offset;
    const StTensor* t = src.weights.find(e.name);
    const bool exit_head = e.name.rfind("exits.", 0) == 0;
    const bool head = e.name.rfind("head.", 0) == 0;
    if (t) used.push_back(e.name);
    if (t && t->shape == e.shape) {
      const float* v = reinterpret_cast<const float*>(t->data.data());
      for (std::size_t i = 0; i < e.numel; ++i) dst[i] = static_cast<T>(v[i]);
      r.matched.push_back(e.name);
      continue;
    }
    if (!t && (exit_head || head)) {
      r.fresh.push_back(e.name + " " + st_shape_str(e.shape) +
                        (exit_head ? " (new exit head)" : " (the source has no classifier)"));
      continue;
    }
    ENVIT_CHECK(t, ValueError, where, ": no tensor for '", e.name, "' ", st_shape_str(e.shape));
    if (e.name == "pos_embed") {
      const int g = pos_embed_grid_side(t->shape[1] - 1), g2 = c.grid();
      std::vector<float> out(e.numel);
      pos_embed_resample(out.data(), reinterpret_cast<const float*>(t->data.data()), g, g2, c.dim);
      for (std::size_t i = 0; i < e.numel; ++i) dst[i] = static_cast<T>(out[i]);
      r.reshaped.push_back("pos_embed " + st_shape_str(t->shape) + " -> " + st_shape_str(e.shape) + " (bicubic, grid " +
                           std::to_string(g) + "x" + std::to_string(g) + " -> " + std::to_string(g2) + "x" +
                           std::to_string(g2) + ")");
      continue;
    }
    if (head || exit_head) {
      ENVIT_CHECK(o.allow_new_heads, ValueError, where, ": '", e.name, "' has shape ", st_shape_str(t->shape),
                  " in the source, the run needs ", st_shape_str(e.shape), " (", c.classes,
                  " classes): pass --allow-new-heads to replace it with a fresh classifier");
      r.fresh.push_back(e.name + " " + st_shape_str(e.shape) + " (replaces the source's " + st_shape_str(t->shape) + ")");
      continue;
    }
    throw ValueError(detail::cat(where, ": '", e.name, "' has shape ", st_shape_str(t->shape), ", the run needs ",
                                 st_shape_str(e.shape)));
  }
  for (const StTensor& t : src.weights.tensors)
    if (std::find(used.begin(), used.end(), t.name) == used.end())
      r.ignored.push_back(t.name + ": the run has no exit there");
  return r;
}

}  // namespace envit
