// envit/model/params.hpp — the multi-exit ViT's parameters and gradients: one arena each, the same
// layout, a name table with timm's names and shapes (so checkpoints map one to one to timm),
// typed views per component, and timm-style seeded initialisation.
// Exit j < M-1 is `exits.{j}.norm` + `exits.{j}.head`; the final exit is timm's `norm` + `head`.
// With LGViT heads (cfg.exit_head == "lgvit") exit j < M-1 is instead `exits.{j}.mlp.*` +
// `exits.{j}.classifier.*` under the names of the authors' DeiTHighway_v2 modules, BatchNorm running
// statistics included as buffers (ParamEntry::buffer: no gradient, never touched by an optimiser).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "envit/core/arena.hpp"
#include "envit/core/rng.hpp"
#include "envit/model/config.hpp"
#include "envit/model/lgvit_head.hpp"
#include "envit/ops/block.hpp"
#include "envit/ops/exit_head.hpp"
#include "envit/ops/patch_embed.hpp"

namespace envit {

struct ParamEntry {
  std::string name;
  std::vector<std::int64_t> shape;
  std::size_t offset = 0;  // elements into the arena
  std::size_t numel = 0;
  bool decay = false;      // AdamW weight decay applies (matrices only: not biases, norms, tokens, pos)
  bool buffer = false;     // a statistic updated by the forward (BatchNorm running mean/var), not trained
  enum class Init { trunc_normal, zeros, ones } init = Init::zeros;
};

template <class T>
class ViTParams {
 public:
  ViTParams() = default;
  // with_grads = false: values only (inference), no gradient arena; grads() is then nullptr.
  explicit ViTParams(const VitConfig& cfg, bool with_grads = true) : cfg_(cfg) {
    cfg_.validate();
    build_table();
    std::size_t total = 0;
    for (auto& e : table_) total = e.offset + arena_round<T>(e.numel);
    values_ = Arena<T>(total);
    values_.take(total);
    if (with_grads) {
      grads_ = Arena<T>(total);
      grads_.take(total);
    }
    cache_views();
  }
  bool has_grads() const { return grads_.capacity() != 0; }
  // Elements of the values arena (and of the gradient arena) for `cfg`, without allocating them.
  static std::size_t planned_size(const VitConfig& cfg) {
    ViTParams p;
    p.cfg_ = cfg;
    p.cfg_.validate();
    p.build_table();
    std::size_t total = 0;
    for (auto& e : p.table_) total = e.offset + arena_round<T>(e.numel);
    return total;
  }

  const VitConfig& config() const { return cfg_; }
  const std::vector<ParamEntry>& table() const { return table_; }
  const ParamEntry* find(const std::string& name) const {
    for (auto& e : table_) if (e.name == name) return &e;
    return nullptr;
  }
  std::size_t size() const { return values_.capacity(); }  // arena elements incl. padding
  std::size_t count() const {  // true parameter count
    std::size_t n = 0;
    for (auto& e : table_) n += e.numel;
    return n;
  }
  T* values() { return values_.data(); }
  const T* values() const { return values_.data(); }
  T* grads() { return grads_.data(); }
  const T* grads() const { return grads_.data(); }
  void zero_grads() { grads_.zero(); }

  T* value(const std::string& name) { return values_.data() + at(name).offset; }
  T* grad(const std::string& name) { return has_grads() ? grads_.data() + at(name).offset : nullptr; }
  const T* value(const std::string& name) const { return values_.data() + at(name).offset; }

  // Typed views, resolved once at construction (no name lookups in a training step).
  PatchEmbedParams<T> embed() const { return embed_; }
  PatchEmbedGrads<T> embed_grads() { return embed_grads_; }
  BlockParams<T> block(int l) const { return blocks_[l]; }  // l is 0-based
  BlockGrads<T> block_grads(int l) { return block_grads_[l]; }
  ExitHeadParams<T> exit(int j) const { return exits_[j]; }  // j is 0-based
  ExitHeadGrads<T> exit_grads(int j) { return exit_grads_[j]; }
  // LGViT head of early exit j (cfg.lgvit(), j < M-1): values, gradients, running-statistic buffers.
  bool exit_is_lgvit(int j) const { return cfg_.lgvit() && j < cfg_.num_exits() - 1; }
  LgvitKind lgvit_kind(int j) const { return lgvit_kinds_[std::size_t(j)]; }
  LgvitHeadParams<T> lgvit(int j) const { return lg_[std::size_t(j)]; }
  LgvitHeadGrads<T> lgvit_grads(int j) { return lg_grads_[std::size_t(j)]; }
  LgvitHeadBuffers<T> lgvit_buffers(int j) { return lg_buf_[std::size_t(j)]; }

 private:
  void cache_views() {
    embed_ = lookup_embed();
    embed_grads_ = lookup_embed_grads();
    for (int l = 0; l < cfg_.depth; ++l) {
      blocks_.push_back(lookup_block(l));
      block_grads_.push_back(lookup_block_grads(l));
    }
    for (int j = 0; j < cfg_.num_exits(); ++j) {
      if (exit_is_lgvit(j)) {
        exits_.push_back({});
        exit_grads_.push_back({});
        lookup_lgvit(j);
        continue;
      }
      exits_.push_back(lookup_exit(j));
      exit_grads_.push_back(lookup_exit_grads(j));
    }
  }
  void lookup_lgvit(int j) {
    const std::string p = "exits." + std::to_string(j) + ".";
    const LgvitKind k = lgvit_kinds_[std::size_t(j)];
    LgvitHeadParams<T> v{};
    LgvitHeadGrads<T> d{};
    LgvitHeadBuffers<T> b{};
    v.kind = k;
    auto bn = [&](const std::string& n, int i, BatchNormParams<T>& bp, BatchNormGrads<T>& bg) {
      bp = {cv(p + n + ".weight"), cv(p + n + ".bias"), cv(p + n + ".running_mean"), cv(p + n + ".running_var")};
      bg = {g(p + n + ".weight"), g(p + n + ".bias")};
      b.running_mean[i] = mv(p + n + ".running_mean");
      b.running_var[i] = mv(p + n + ".running_var");
    };
    if (lgvit_is_conv(k)) {
      v.c1_w = cv(p + "mlp.conv1.0.weight"); v.c1_b = cv(p + "mlp.conv1.0.bias");
      d.dc1_w = g(p + "mlp.conv1.0.weight"); d.dc1_b = g(p + "mlp.conv1.0.bias");
      bn("mlp.conv1.2", 0, v.bn1, d.bn1);
      if (k == LgvitKind::conv1_1) {
        v.dw_w = cv(p + "mlp.proj.weight"); v.dw_b = cv(p + "mlp.proj.bias");
        d.ddw_w = g(p + "mlp.proj.weight"); d.ddw_b = g(p + "mlp.proj.bias");
        bn("mlp.proj_bn", 1, v.bn2, d.bn2);
      }
      v.c2_w = cv(p + "mlp.conv2.0.weight"); v.c2_b = cv(p + "mlp.conv2.0.bias");
      d.dc2_w = g(p + "mlp.conv2.0.weight"); d.dc2_b = g(p + "mlp.conv2.0.bias");
      bn("mlp.conv2.1", 2, v.bn3, d.bn3);
    } else {
      v.qkv_w = cv(p + "mlp.qkv.weight"); v.proj_w = cv(p + "mlp.proj.weight"); v.proj_b = cv(p + "mlp.proj.bias");
      d.dqkv_w = g(p + "mlp.qkv.weight"); d.dproj_w = g(p + "mlp.proj.weight"); d.dproj_b = g(p + "mlp.proj.bias");
    }
    v.cls_w = cv(p + "classifier.weight"); v.cls_b = cv(p + "classifier.bias");
    d.dcls_w = g(p + "classifier.weight"); d.dcls_b = g(p + "classifier.bias");
    lg_[std::size_t(j)] = v;
    lg_grads_[std::size_t(j)] = d;
    lg_buf_[std::size_t(j)] = b;
  }
  PatchEmbedParams<T> lookup_embed() const {
    return {cv("patch_embed.proj.weight"), cv("patch_embed.proj.bias"), cv("cls_token"), cv("pos_embed")};
  }
  PatchEmbedGrads<T> lookup_embed_grads() {
    return {g("patch_embed.proj.weight"), g("patch_embed.proj.bias"), g("cls_token"), g("pos_embed")};
  }
  BlockParams<T> lookup_block(int l) const {
    std::string p = "blocks." + std::to_string(l) + ".";
    return {cv(p + "norm1.weight"), cv(p + "norm1.bias"), cv(p + "attn.qkv.weight"),
            cv(p + "attn.qkv.bias"), cv(p + "attn.proj.weight"), cv(p + "attn.proj.bias"),
            cv(p + "norm2.weight"), cv(p + "norm2.bias"), cv(p + "mlp.fc1.weight"),
            cv(p + "mlp.fc1.bias"), cv(p + "mlp.fc2.weight"), cv(p + "mlp.fc2.bias")};
  }
  BlockGrads<T> lookup_block_grads(int l) {
    std::string p = "blocks." + std::to_string(l) + ".";
    return {g(p + "norm1.weight"), g(p + "norm1.bias"), g(p + "attn.qkv.weight"),
            g(p + "attn.qkv.bias"), g(p + "attn.proj.weight"), g(p + "attn.proj.bias"),
            g(p + "norm2.weight"), g(p + "norm2.bias"), g(p + "mlp.fc1.weight"),
            g(p + "mlp.fc1.bias"), g(p + "mlp.fc2.weight"), g(p + "mlp.fc2.bias")};
  }
  ExitHeadParams<T> lookup_exit(int j) const {
    std::string p = exit_prefix(j, cfg_.num_exits());
    return {cv(p + "norm.weight"), cv(p + "norm.bias"), cv(p + "head.weight"), cv(p + "head.bias")};
  }
  ExitHeadGrads<T> lookup_exit_grads(int j) {
    std::string p = exit_prefix(j, cfg_.num_exits());
    return {g(p + "norm.weight"), g(p + "norm.bias"), g(p + "head.weight"), g(p + "head.bias")};
  }


 public:
  static std::string exit_prefix(int j, int num_exits) {  // j is 0-based
    return j == num_exits - 1 ? std::string() : "exits." + std::to_string(j) + ".";
  }

  // timm-style initialisation: truncated normal (std 0.02, cut at 2 std) for every weight matrix,
  // the patch projection, cls_token and pos_embed; zero biases; LayerNorm weight 1, bias 0.
  // Each tensor draws from its own Philox stream keyed by (seed, tensor index): reordering code
  // does not change other tensors' values.
  void init(std::uint64_t seed) {
    for (std::size_t k = 0; k < table_.size(); ++k) {
      const ParamEntry& e = table_[k];
      T* v = values_.data() + e.offset;
      if (e.init == ParamEntry::Init::zeros) {
        for (std::size_t i = 0; i < e.numel; ++i) v[i] = T(0);
      } else if (e.init == ParamEntry::Init::ones) {
        for (std::size_t i = 0; i < e.numel; ++i) v[i] = T(1);
      } else {
        CounterRng r(seed, RngStream::init, static_cast<std::uint32_t>(k));
        for (std::size_t i = 0; i < e.numel; ++i) {
          double z;
          do { z = r.normal(); } while (std::abs(z) > 2.0);
          v[i] = static_cast<T>(0.02 * z);
        }
      }
    }
  }

  const ParamEntry& at(const std::string& name) const {
    const ParamEntry* e = find(name);
    ENVIT_CHECK(e != nullptr, ValueError, "ViTParams: no parameter named '", name, "'");
    return *e;
  }

 private:
  const T* cv(const std::string& n) const { return values_.data() + at(n).offset; }
  T* g(const std::string& n) { return has_grads() ? grads_.data() + at(n).offset : nullptr; }
  T* mv(const std::string& n) { return values_.data() + at(n).offset; }

  void add(std::string name, std::vector<std::int64_t> shape, ParamEntry::Init init, bool decay) {
    ParamEntry e;
    e.name = std::move(name);
    e.shape = std::move(shape);
    e.numel = 1;
    for (auto d : e.shape) e.numel *= static_cast<std::size_t>(d);
    e.offset = table_.empty() ? 0 : table_.back().offset + arena_round<T>(table_.back().numel);
    e.init = init;
    e.decay = decay;
    table_.push_back(std::move(e));
  }

  void build_table() {
    using I = ParamEntry::Init;
    const std::int64_t D = cfg_.dim, C = cfg_.classes, F = cfg_.mlp_hidden, P = cfg_.patch;
    add("cls_token", {1, 1, D}, I::trunc_normal, false);
    add("pos_embed", {1, cfg_.tokens(), D}, I::trunc_normal, false);
    add("patch_embed.proj.weight", {D, cfg_.channels, P, P}, I::trunc_normal, true);
    add("patch_embed.proj.bias", {D}, I::zeros, false);
    for (int l = 0; l < cfg_.depth; ++l) {
      std::string p = "blocks." + std::to_string(l) + ".";
      add(p + "norm1.weight", {D}, I::ones, false);
      add(p + "norm1.bias", {D}, I::zeros, false);
      add(p + "attn.qkv.weight", {3 * D, D}, I::trunc_normal, true);
      add(p + "attn.qkv.bias", {3 * D}, I::zeros, false);
      add(p + "attn.proj.weight", {D, D}, I::trunc_normal, true);
      add(p + "attn.proj.bias", {D}, I::zeros, false);
      add(p + "norm2.weight", {D}, I::ones, false);
      add(p + "norm2.bias", {D}, I::zeros, false);
      add(p + "mlp.fc1.weight", {F, D}, I::trunc_normal, true);
      add(p + "mlp.fc1.bias", {F}, I::zeros, false);
      add(p + "mlp.fc2.weight", {D, F}, I::trunc_normal, true);
      add(p + "mlp.fc2.bias", {D}, I::zeros, false);
    }
    const int M = cfg_.num_exits();
    lgvit_kinds_ = cfg_.lgvit() ? lgvit_head_kinds(M - 1) : std::vector<LgvitKind>{};
    lg_.assign(lgvit_kinds_.size(), {});
    lg_grads_.assign(lgvit_kinds_.size(), {});
    lg_buf_.assign(lgvit_kinds_.size(), {});
    for (int j = 0; j < M; ++j) {
      if (exit_is_lgvit(j)) {
        add_lgvit(j);
        continue;
      }
      std::string p = exit_prefix(j, cfg_.num_exits());
      add(p + "norm.weight", {D}, I::ones, false);
      add(p + "norm.bias", {D}, I::zeros, false);
      add(p + "head.weight", {C, D}, I::trunc_normal, true);
      add(p + "head.bias", {C}, I::zeros, false);
    }
  }

  // LGViT head j's entries (names as the authors' DeiTHighway_v2; PyTorch's default BatchNorm
  // init: weight 1, bias 0, running mean 0, running var 1; convolutions like every weight here).
  void add_lgvit(int j) {
    using I = ParamEntry::Init;
    const std::int64_t D = cfg_.dim, C = cfg_.classes;
    const std::string p = "exits." + std::to_string(j) + ".";
    const LgvitKind k = lgvit_kinds_[std::size_t(j)];
    auto bn = [&](const std::string& n) {
      add(p + n + ".weight", {D}, I::ones, false);
      add(p + n + ".bias", {D}, I::zeros, false);
      add(p + n + ".running_mean", {D}, I::zeros, false);
      table_.back().buffer = true;
      add(p + n + ".running_var", {D}, I::ones, false);
      table_.back().buffer = true;
    };
    if (lgvit_is_conv(k)) {
      add(p + "mlp.conv1.0.weight", {D, D, 1, 1}, I::trunc_normal, true);
      add(p + "mlp.conv1.0.bias", {D}, I::zeros, false);
      bn("mlp.conv1.2");
      if (k == LgvitKind::conv1_1) {
        add(p + "mlp.proj.weight", {D, 1, 3, 3}, I::trunc_normal, true);
        add(p + "mlp.proj.bias", {D}, I::zeros, false);
        bn("mlp.proj_bn");
      }
      add(p + "mlp.conv2.0.weight", {D, D, 1, 1}, I::trunc_normal, true);
      add(p + "mlp.conv2.0.bias", {D}, I::zeros, false);
      bn("mlp.conv2.1");
    } else {
      add(p + "mlp.qkv.weight", {3 * D, D}, I::trunc_normal, true);
      add(p + "mlp.proj.weight", {D, D}, I::trunc_normal, true);
      add(p + "mlp.proj.bias", {D}, I::zeros, false);
    }
    add(p + "classifier.weight", {C, D}, I::trunc_normal, true);
    add(p + "classifier.bias", {C}, I::zeros, false);
  }

  VitConfig cfg_;
  std::vector<ParamEntry> table_;
  std::vector<LgvitKind> lgvit_kinds_;
  std::vector<LgvitHeadParams<T>> lg_;
  std::vector<LgvitHeadGrads<T>> lg_grads_;
  std::vector<LgvitHeadBuffers<T>> lg_buf_;
  Arena<T> values_, grads_;
  PatchEmbedParams<T> embed_{};
  PatchEmbedGrads<T> embed_grads_{};
  std::vector<BlockParams<T>> blocks_;
  std::vector<BlockGrads<T>> block_grads_;
  std::vector<ExitHeadParams<T>> exits_;
  std::vector<ExitHeadGrads<T>> exit_grads_;
};

}  // namespace envit
