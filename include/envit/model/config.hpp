// envit/model/config.hpp — the multi-exit ViT's configuration: shapes, exits, LayerNorm eps.
// Validated once (validate()); every other component trusts a validated config.
// Serialises to/from a flat string map (stored in checkpoint metadata).
#pragma once
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "envit/core/error.hpp"

namespace envit {

struct VitConfig {
  int image_size = 28;   // square images: image_size x image_size
  int channels = 1;
  int patch = 4;
  int dim = 192;         // D
  int depth = 12;        // L blocks
  int heads = 3;         // H
  int mlp_hidden = 768;  // F
  int classes = 10;      // C
  std::vector<int> exits;  // 1-based blocks s_1 < ... < s_M = L after which an exit sits
  double ln_eps = 1e-6;    // timm's ViT uses 1e-6
  // Early exits' heads: "linear" (LayerNorm + Linear on the class token) or "lgvit" (LGViT's
  // local/global feature heads, model/lgvit_head.hpp; the final exit keeps LayerNorm + Linear).
  std::string exit_head = "linear";

  bool lgvit() const { return exit_head == "lgvit"; }

  int grid() const { return image_size / patch; }
  int patches() const { return grid() * grid(); }
  int tokens() const { return patches() + 1; }  // + class token
  int head_dim() const { return dim / heads; }
  int num_exits() const { return static_cast<int>(exits.size()); }

  // Exits after every other block (6 exits on 12 blocks); an odd depth also gets its last block.
  static std::vector<int> every_other(int depth) {
    std::vector<int> e;
    for (int l = 2; l <= depth; l += 2) e.push_back(l);
    if (e.empty() || e.back() != depth) e.push_back(depth);
    return e;
  }
  // The small configuration used throughout envit's docs: 28x28x1, patch 4 (50 tokens), dim 192,
  // depth 12, 3 heads, MLP 768, exits after every other block.
  static VitConfig tiny28(int classes = 10) {
    VitConfig c;
    c.classes = classes;
    c.exits = every_other(c.depth);
    return c;
  }
  // ViT-B/16 at 224x224x3 (86M parameters), exits after every other block.
  static VitConfig vit_b16(int classes = 1000) {
    VitConfig c{224, 3, 16, 768, 12, 12, 3072, classes, {}, 1e-6};
    c.exits = every_other(c.depth);
    return c;
  }

  void validate() const {
    ENVIT_CHECK(image_size > 0 && channels > 0 && patch > 0 && dim > 0 && depth > 0 &&
                    heads > 0 && mlp_hidden > 0 && classes > 1,
                ValueError, "VitConfig: all sizes must be positive and classes > 1 (got ", str(), ")");
    ENVIT_CHECK(image_size % patch == 0, ValueError, "VitConfig: image size ", image_size,
                " is not divisible by patch size ", patch);
    ENVIT_CHECK(dim % heads == 0, ValueError, "VitConfig: dim ", dim,
                " is not divisible by heads ", heads);
    ENVIT_CHECK(!exits.empty(), ValueError, "VitConfig: at least one exit is required");
    for (std::size_t j = 0; j < exits.size(); ++j) {
      ENVIT_CHECK(exits[j] >= 1 && exits[j] <= depth, ValueError, "VitConfig: exit ", j,
                  " at block ", exits[j], " is out of range 1..", depth);
      ENVIT_CHECK(j == 0 || exits[j] > exits[j - 1], ValueError,
                  "VitConfig: exit layers must be strictly increasing, got ", exits_str());
    }
    ENVIT_CHECK(exits.back() == depth, ValueError, "VitConfig: the last exit must sit after the last block (",
                depth, "), got ", exits_str());
    ENVIT_CHECK(ln_eps >= 0, ValueError, "VitConfig: ln_eps must be >= 0, got ", ln_eps);
    ENVIT_CHECK(exit_head == "linear" || exit_head == "lgvit", ValueError,
                "VitConfig: exit_head must be linear or lgvit, got '", exit_head, "'");
    ENVIT_CHECK(!lgvit() || dim % 8 == 0, ValueError, "VitConfig: LGViT's attention heads need dim divisible by 8, got ",
                dim);
  }

  std::string exits_str() const {
    std::string s;
    for (std::size_t j = 0; j < exits.size(); ++j) {
      if (j) s += ',';
      s += std::to_string(exits[j]);
    }
    return s;
  }
  std::string str() const {
    std::ostringstream os;
    os << "image " << image_size << "x" << image_size << "x" << channels << ", patch " << patch
       << ", dim " << dim << ", depth " << depth << ", heads " << heads << ", mlp " << mlp_hidden
       << ", classes " << classes << ", exits [" << exits_str() << "], ln_eps " << ln_eps;
    if (exit_head != "linear") os << ", exit heads " << exit_head;
    return os.str();
  }

  // exit_head appears only when it is not "linear" (checkpoints of linear-head models keep their keys).
  std::map<std::string, std::string> to_map() const {
    std::ostringstream eps;
    eps.precision(17);
    eps << ln_eps;
    std::map<std::string, std::string> m{{"image_size", std::to_string(image_size)}, {"channels", std::to_string(channels)},
            {"patch", std::to_string(patch)},           {"dim", std::to_string(dim)},
            {"depth", std::to_string(depth)},           {"heads", std::to_string(heads)},
            {"mlp_hidden", std::to_string(mlp_hidden)}, {"classes", std::to_string(classes)},
            {"exits", exits_str()},                     {"ln_eps", eps.str()}};
    if (exit_head != "linear") m["exit_head"] = exit_head;
    return m;
  }
  static VitConfig from_map(const std::map<std::string, std::string>& m) {
    auto get = [&](const char* k) -> const std::string& {
      auto it = m.find(k);
      ENVIT_CHECK(it != m.end(), ValueError, "VitConfig: missing field '", k, "'");
      return it->second;
    };
    auto to_int = [&](const char* k) {
      const std::string& v = get(k);
      try {
        std::size_t pos = 0;
        int x = std::stoi(v, &pos);
        if (pos == v.size()) return x;
      } catch (const std::exception&) {
      }
      throw ValueError(detail::cat("VitConfig: field '", k, "' is not an integer: '", v, "'"));
    };
    VitConfig c;
    c.image_size = to_int("image_size");
    c.channels = to_int("channels");
    c.patch = to_int("patch");
    c.dim = to_int("dim");
    c.depth = to_int("depth");
    c.heads = to_int("heads");
    c.mlp_hidden = to_int("mlp_hidden");
    c.classes = to_int("classes");
    c.exits = parse_exits(get("exits"));
    try {
      c.ln_eps = std::stod(get("ln_eps"));
    } catch (const std::exception&) {
      throw ValueError(detail::cat("VitConfig: field 'ln_eps' is not a number: '", get("ln_eps"), "'"));
    }
    if (auto it = m.find("exit_head"); it != m.end()) c.exit_head = it->second;
    c.validate();
    return c;
  }
  // "2,4,6" -> {2,4,6}
  static std::vector<int> parse_exits(const std::string& s) {
    std::vector<int> e;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
      try {
        std::size_t pos = 0;
        int v = std::stoi(item, &pos);
        ENVIT_CHECK(pos == item.size(), ValueError, "");
        e.push_back(v);
      } catch (const std::exception&) {
        throw ValueError(detail::cat("exit list '", s, "': '", item, "' is not an integer"));
      }
    }
    return e;
  }
};

// A named starting point: the model and the training settings it was tuned with. The one table
// of presets; `envit train --preset`, the benchmarks and bench/side_by_side.py read it (the
// latter through vit_presets_json(), printed by the program). classes is the preset's own
// (10 or 1000); a dataset with another class count overrides it, as does its image size.
struct VitPreset {
  const char* name;
  const char* about;
  VitConfig config;
  int epochs;                  // training length the preset was sized for
  double lr;                   // peak AdamW learning rate
  long long warmup_steps;      // linear warm-up
  int crop_pad;                // random-crop padding (0: off)
  long long tuned_steps;       // optimizer steps of the run the settings were tuned with (0: not stated)
  long long min_steps;         // default-schedule floor: a shorter run's epochs are raised to reach it
                               // (0: none; `envit train`, docs/usage.md "Schedules that follow the data")
};

// The readme preset's step floor, chosen from the runs in docs/usage.md ("Schedules that follow the data").
inline constexpr long long kReadmeMinSteps = 1200;

inline const std::vector<VitPreset>& vit_presets() {
  static const std::vector<VitPreset> table = [] {
    VitConfig readme{28, 1, 7, 96, 6, 3, 192, 10, {}, 1e-6};
    readme.exits = VitConfig::every_other(readme.depth);
    return std::vector<VitPreset>{
        {"readme", "small ViT for the README's Fashion-MNIST run (patch 7, dim 96, depth 6)", readme, 18, 2e-3, 400, 0,
         7722, kReadmeMinSteps},  // 18 epochs x 429 steps: 55,000 images (60,000 - --val 5000), batch 128
        {"tiny28", "28x28x1, patch 4, dim 192, depth 12, 3 heads, MLP 768", VitConfig::tiny28(), 30, 1e-3, 1000, 2,
         14040, 0},  // 30 epochs x 468 steps: 60,000 images, batch 128; no floor measured
        {"vit-b16", "ViT-B/16 at 224x224x3 (86M parameters)", VitConfig::vit_b16(), 10, 5e-5, 500, 0,
         0, 0}};  // a fine-tuning starting point: no floor (short fine-tuning runs are the norm)
  }();
  return table;
}

inline std::vector<std::string> vit_preset_names() {
  std::vector<std::string> n;
  for (const VitPreset& p : vit_presets()) n.push_back(p.name);
  return n;
}

// The preset called `name`; ValueError naming the known presets otherwise.
inline const VitPreset& vit_preset(const std::string& name) {
  std::string known;
  for (const VitPreset& p : vit_presets()) {
    if (name == p.name) return p;
    if (!known.empty()) known += ", ";
    known += p.name;
  }
  throw ValueError(detail::cat("unknown preset '", name, "' (expected one of ", known, ")"));
}

// The table as one JSON object {name: {image_size, channels, patch, dim, depth, heads, mlp_hidden,
// classes, exits: [...], epochs, lr, warmup_steps, crop_pad}, ...} (names and numbers only).
inline std::string vit_presets_json() {
  std::ostringstream os;
  os.precision(17);
  os << "{";
  bool first = true;
  for (const VitPreset& p : vit_presets()) {
    const VitConfig& c = p.config;
    os << (first ? "" : ",") << "\"" << p.name << "\":{\"image_size\":" << c.image_size
       << ",\"channels\":" << c.channels << ",\"patch\":" << c.patch << ",\"dim\":" << c.dim
       << ",\"depth\":" << c.depth << ",\"heads\":" << c.heads << ",\"mlp_hidden\":" << c.mlp_hidden
       << ",\"classes\":" << c.classes << ",\"exits\":[" << c.exits_str() << "],\"epochs\":" << p.epochs
       << ",\"lr\":" << p.lr << ",\"warmup_steps\":" << p.warmup_steps << ",\"crop_pad\":" << p.crop_pad << "}";
    first = false;
  }
  os << "}";
  return os.str();
}

}  // namespace envit
