// envit/infer/macs.hpp — multiply-accumulate (MAC) counts of the multi-exit ViT, from the config's
// shapes alone, and the paper's speed-up ratio (eq. 19).
//
// What is counted: only the multiply-accumulates of matrix products (one MAC = one a*b added to
// an accumulator). NOT counted: LayerNorm, GELU, softmax, the 1/sqrt(E) scale, residual adds,
// bias adds, the class token and position-embedding adds, gathers/compaction copies, and the
// exit criterion itself. These are O(N*D) per block against O(N*D^2) for the products (about
// 1% at tiny28, less at ViT-B), and tools such as fvcore/thop also count matmul MACs only.
//
// Per sample, with N = tokens (patches + 1), D = dim, F = MLP hidden, H heads of E = D/H, C classes,
// Np patches, K = channels * patch^2:
//   embed   = Np * K * D            patch projection (conv as GEMM: (Np,K) x (K,D))
//   qkv     = N * D * 3D            scores = H * N * N * E = N^2 D     attn_v = N^2 D
//   proj    = N * D * D             fc1 = N * D * F                    fc2 = N * F * D
//   block   = qkv + scores + attn_v + proj + fc1 + fc2 = N (4 D^2 + 2 D F) + 2 N^2 D
//   head    = D * C                 one exit classifier (LayerNorm ignored, Linear on the class token)
// LGViT heads (cfg.exit_head == "lgvit", early exits only; the final exit keeps `head`), with
// P = patches and P' = G'^2 the subsampled tokens (G' = (G - 1) / s + 1):
//   conv1_1 = 2 P D^2 + 9 P D + D C  two 1x1 convolutions, the 3x3 depthwise one, the classifier
//   conv2_1 = 2 P D^2 + D C
//   attn_rs = P' D 3D + 2 P'^2 D + P' D^2 + D C   qkv, scores and attn_v (8 heads), proj, classifier
// (BatchNorm, GELU, the token mean and the subsampling copy are not counted, as above.) At ViT-B/16
// a conv1_1 head is 16% of a block.
//
// Cumulative cost of a sample that leaves at exit j (0-based here; exit j sits after block s_j):
//   C_j = embed + s_j * block + sum_{k <= j} exit_head[k]     ((j + 1) * head for linear heads)
// every exit up to and including j was evaluated on that sample (the criterion needs its logits).
//
// Baseline of eq. 19 (N x C_L): the cost of the ORIGINAL model WITHOUT early exits,
//   C_full = embed + L * block + head          (all blocks + only the final head)
// because the paper's Table 2 states the speed-up is "compared to the original model without early
// exit mechanisms". With this convention a run where every sample reaches the last exit has a
// speed-up slightly BELOW 1 (C_full / C_{M-1} < 1): the intermediate heads are pure overhead then.
// (The other convention, baseline = C_{M-1}, is available as VitMacs::to_exit(M-1) and the
// generic macs_speedup(baseline, ...) overload.)
#pragma once
#include <cstdint>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/model/config.hpp"
#include "envit/model/lgvit_head.hpp"

namespace envit {

// One LGViT head's MACs per sample (see the file comment).
inline std::int64_t lgvit_head_macs(const VitConfig& cfg, LgvitKind k) {
  const std::int64_t D = cfg.dim, C = cfg.classes, P = cfg.patches();
  switch (k) {
    case LgvitKind::conv1_1: return 2 * P * D * D + 9 * P * D + D * C;
    case LgvitKind::conv2_1: return 2 * P * D * D + D * C;
    default: {
      const std::int64_t g = (cfg.grid() - 1) / lgvit_stride(k) + 1, Pf = g * g;
      return Pf * D * 3 * D + 2 * Pf * Pf * D + Pf * D * D + D * C;
    }
  }
}

struct VitMacs {
  // Per sample. All values are MACs (multiply-accumulates), not FLOPs (= 2 x MACs).
  std::int64_t embed = 0;
  std::int64_t qkv = 0, scores = 0, attn_v = 0, proj = 0, fc1 = 0, fc2 = 0;  // one block
  std::int64_t block = 0;  // sum of the six above
  std::int64_t head = 0;   // one linear exit head (the final exit's)
  std::vector<std::int64_t> exit_head;  // (M) each exit's head: `head`, or an LGViT head's cost
  int depth = 0;
  std::vector<int> exits;  // s_j, 1-based block after which exit j sits

  int num_exits() const { return static_cast<int>(exits.size()); }

  // C_j: a sample leaving at exit j (0-based) ran the embedding, blocks 1..s_j and heads 0..j.
  std::int64_t to_exit(int j) const {
    ENVIT_CHECK(j >= 0 && j < num_exits(), ValueError, "VitMacs::to_exit: exit ", j,
                " out of range 0..", num_exits() - 1);
    std::int64_t heads = 0;
    for (int k = 0; k <= j; ++k) heads += exit_head[std::size_t(k)];
    return embed + std::int64_t(exits[j]) * block + heads;
  }
  // The model without early exits: every block, the final head only (eq. 19's baseline).
  std::int64_t full() const { return embed + std::int64_t(depth) * block + head; }
};

inline VitMacs vit_macs(const VitConfig& cfg) {
  cfg.validate();
  const std::int64_t N = cfg.tokens(), D = cfg.dim, F = cfg.mlp_hidden, C = cfg.classes;
  const std::int64_t Np = cfg.patches(), K = std::int64_t(cfg.channels) * cfg.patch * cfg.patch;
  VitMacs m;
  m.embed = Np * K * D;
  m.qkv = N * D * 3 * D;
  m.scores = N * N * D;  // H heads x (N x E) x (E x N), H * E = D
  m.attn_v = N * N * D;  // H heads x (N x N) x (N x E)
  m.proj = N * D * D;
  m.fc1 = N * D * F;
  m.fc2 = N * F * D;
  m.block = m.qkv + m.scores + m.attn_v + m.proj + m.fc1 + m.fc2;
  m.head = D * C;
  m.depth = cfg.depth;
  m.exits = cfg.exits;
  m.exit_head.assign(cfg.exits.size(), m.head);
  if (cfg.lgvit()) {
    const std::vector<LgvitKind> kinds = lgvit_head_kinds(cfg.num_exits() - 1);
    for (std::size_t j = 0; j < kinds.size(); ++j) m.exit_head[j] = lgvit_head_macs(cfg, kinds[j]);
  }
  return m;
}

// Eq. 19 with explicit costs: speed-up = (sum_j n_j) * baseline / sum_j n_j * cost[j].
// counts[j] = samples that left at exit j (M entries). Throws ValueError if no sample was counted.
inline double macs_speedup(std::int64_t baseline, const std::int64_t* cost, const std::int64_t* counts,
                           int M) {
  std::int64_t n = 0;
  double spent = 0;
  for (int j = 0; j < M; ++j) {
    ENVIT_CHECK(counts[j] >= 0, ValueError, "macs_speedup: negative count ", counts[j], " at exit ", j);
    n += counts[j];
    spent += double(counts[j]) * double(cost[j]);
  }
  ENVIT_CHECK(n > 0, ValueError, "macs_speedup: the exit histogram is empty");
  return double(n) * double(baseline) / spent;
}

// Eq. 19 with envit's convention: baseline C_full, cost C_j of VitMacs::to_exit.
inline double macs_speedup(const VitMacs& m, const std::vector<std::int64_t>& counts) {
  ENVIT_CHECK(static_cast<int>(counts.size()) == m.num_exits(), ShapeError,
              "macs_speedup: histogram has ", counts.size(), " bins, the model has ", m.num_exits(),
              " exits");
  std::vector<std::int64_t> cost(counts.size());
  for (int j = 0; j < m.num_exits(); ++j) cost[j] = m.to_exit(j);
  return macs_speedup(m.full(), cost.data(), counts.data(), m.num_exits());
}

// Mean MACs per sample under an exit histogram: sum_j n_j C_j / sum_j n_j.
inline double macs_mean(const VitMacs& m, const std::vector<std::int64_t>& counts) {
  ENVIT_CHECK(static_cast<int>(counts.size()) == m.num_exits(), ShapeError, "macs_mean: histogram has ",
              counts.size(), " bins, the model has ", m.num_exits(), " exits");
  std::int64_t n = 0;
  double spent = 0;
  for (int j = 0; j < m.num_exits(); ++j) {
    n += counts[j];
    spent += double(counts[j]) * double(m.to_exit(j));
  }
  ENVIT_CHECK(n > 0, ValueError, "macs_mean: the exit histogram is empty");
  return spent / double(n);
}

}  // namespace envit
