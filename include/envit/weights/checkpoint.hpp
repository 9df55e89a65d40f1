// envit/weights/checkpoint.hpp — the model side of envit checkpoints (safetensors files): the model
// configuration stored in the metadata, the parameters under their timm names, and loading them
// back into a ViTParams. Inference needs only this header; train/checkpoint.hpp adds the optimiser
// state for resumable checkpoints.
//   tensors:  every parameter under its timm name (F32);
//   metadata: `format` = envit-checkpoint-1, the model config as `config.<field>`, and whatever the
//             caller adds (the trainer: step, epoch, seed, hyper-parameters, normalisation).
#pragma once
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "envit/core/finite.hpp"
#include "envit/io/safetensors.hpp"
#include "envit/model/params.hpp"

namespace envit {

inline constexpr const char* kCheckpointFormat = "envit-checkpoint-1";

// The model's config as read from a checkpoint's metadata (`config.*` keys).
inline VitConfig checkpoint_config(const StFile& f) {
  std::map<std::string, std::string> m;
  for (auto& [k, v] : f.metadata)
    if (k.rfind("config.", 0) == 0) m[k.substr(7)] = v;
  ENVIT_CHECK(!m.empty(), IoError, f.where(), ": no model configuration in the metadata (not an envit checkpoint?)");
  try {
    return VitConfig::from_map(m);
  } catch (const ValueError& e) {
    throw IoError(f.where() + ": " + e.what());
  }
}

// The safetensors content of a weights-only checkpoint: format, config and every parameter.
template <class T>
StFile checkpoint_weights(const ViTParams<T>& P, const std::map<std::string, std::string>& meta) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  StFile f;
  f.metadata = meta;
  f.metadata["format"] = kCheckpointFormat;
  for (auto& [k, v] : P.config().to_map()) f.metadata["config." + k] = v;
  for (const ParamEntry& e : P.table()) f.add<T>(e.name, P.values() + e.offset, e.shape);
  return f;
}

// What load_weights found when matching a file against the model.
struct WeightMatch {
  std::vector<std::string> missing;     // in the model, not in the file
  std::vector<std::string> unexpected;  // in the file, not in the model (optimizer.* ignored)
  std::vector<std::string> mismatched;  // same name, different shape or dtype (with both)
  bool clean() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string report() const {
    std::ostringstream os;
    for (auto& s : missing) os << "\n  missing in file:    " << s;
    for (auto& s : unexpected) os << "\n  not in the model:   " << s;
    for (auto& s : mismatched) os << "\n  shape/dtype differs: " << s;
    return os.str();
  }
};

// Initialises P from the tensors of f by name (fine-tuning from given weights; F32 or F64 in the
// file). Refuses (IoError listing every problem by name and shape) unless the file matches exactly,
// except that with allow_new_heads, exit heads (`head.*`, `exits.*`) that are missing or mis-shaped
// in the file keep P's current (freshly initialised) values — e.g. a new number of classes.
template <class T>
WeightMatch load_weights(const StFile& f, ViTParams<T>& P, bool allow_new_heads) {
  WeightMatch w;
  auto is_head = [](const std::string& n) {
    return n.rfind("head.", 0) == 0 || n.rfind("exits.", 0) == 0 || n.rfind("norm.", 0) == 0;
  };
  std::vector<const ParamEntry*> load;
  for (const ParamEntry& e : P.table()) {
    const StTensor* t = f.find(e.name);
    if (!t) {
      w.missing.push_back(e.name + " " + st_shape_str(e.shape));
      continue;
    }
    if (t->shape != e.shape || (t->dtype != "F32" && t->dtype != "F64")) {
      w.mismatched.push_back(e.name + ": file " + t->dtype + " " + st_shape_str(t->shape) + ", model " +
                             st_shape_str(e.shape));
      continue;
    }
    load.push_back(&e);
  }
  for (const StTensor& t : f.tensors)
    if (t.name.rfind("optimizer.", 0) != 0 && !P.find(t.name))
      w.unexpected.push_back(t.name + " " + st_shape_str(t.shape));
  WeightMatch blocking;
  auto blocks = [&](const std::string& entry) {
    return !(allow_new_heads && is_head(entry.substr(0, entry.find_first_of(" :"))));
  };
  for (auto& s : w.missing) if (blocks(s)) blocking.missing.push_back(s);
  for (auto& s : w.mismatched) if (blocks(s)) blocking.mismatched.push_back(s);
  for (auto& s : w.unexpected) if (blocks(s)) blocking.unexpected.push_back(s);
  ENVIT_CHECK(blocking.clean(), IoError, f.where(), ": weights do not match the model", blocking.report(),
              allow_new_heads ? "" : "\n(allow_new_heads keeps freshly initialised exit heads instead)");
  for (const ParamEntry* e : load) {
    const StTensor& t = *f.find(e->name);
    T* dst = P.values() + e->offset;
    if (t.dtype == "F32") {
      auto v = f.get<float>(e->name);
      for (std::size_t i = 0; i < e->numel; ++i) dst[i] = T(v[i]);
    } else {
      auto v = f.get<double>(e->name);
      for (std::size_t i = 0; i < e->numel; ++i) dst[i] = T(v[i]);
    }
    const std::ptrdiff_t k = first_non_finite(dst, e->numel);
    ENVIT_CHECK(k < 0, IoError, f.where(), ": tensor '", e->name, "' ", st_shape_str(e->shape), " element ", k,
                " is ", k < 0 ? T(0) : dst[k], " (", t.dtype, " in the file)");
  }
  return w;
}

// The model stored in an envit checkpoint, for inference: its config from the metadata, every
// parameter loaded (the file must match exactly), no gradient arena.
template <class T = float>
ViTParams<T> checkpoint_model(const StFile& f) {
  ViTParams<T> P(checkpoint_config(f), /*with_grads=*/false);
  load_weights(f, P, false);
  return P;
}

}  // namespace envit
