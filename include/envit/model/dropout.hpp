// envit/model/dropout.hpp — EnViT's exit-aware structured dropout (paper eqs. 4-10):
// per-block skip probabilities and per-sample masks drawn from a counter-based generator.
// A mask bit is a pure function of (seed, step, block, sample): independent of thread count,
// call order and batch assembly, and reproducible after a resume from the step counter alone.
// Skipping itself (gather / run / scatter) lives in model/vit.hpp.
#pragma once
#include <cstdint>
#include <vector>

#include "envit/core/error.hpp"
#include "envit/core/rng.hpp"

namespace envit {

// Eq. 10: p_l = 0 for 0 < l <= s_1; p_l = (j-1)/(M-1) * p_M for s_{j-1} < l <= s_j (j = 2..M).
// Returns p for blocks 1..L at indices 0..L-1. With one exit (M = 1) every p_l is 0.
inline std::vector<double> exit_aware_probs(int depth, const std::vector<int>& exits, double p_max) {
  ENVIT_CHECK(p_max >= 0.0 && p_max < 1.0, ValueError, "exit_aware_probs: p_M must be in [0, 1), got ",
              p_max);
  ENVIT_CHECK(!exits.empty() && exits.back() == depth, ValueError,
              "exit_aware_probs: the last exit must be block ", depth);
  const int M = static_cast<int>(exits.size());
  std::vector<double> p(static_cast<std::size_t>(depth), 0.0);
  for (int j = 2; j <= M; ++j)  // 1-based exit index as in the paper
    for (int l = exits[j - 2] + 1; l <= exits[j - 1]; ++l)
      p[l - 1] = double(j - 1) / double(M - 1) * p_max;
  return p;
}

// Executed-sample lists, one per block: exec[l] holds the sorted batch positions that run block l
// (0-based). Capacity is reserved once for the max batch; draw() never allocates after that.
struct LayerMasks {
  std::vector<std::vector<std::int32_t>> exec;  // (L) lists, each sorted, unique, < batch
  int batch = 0;
  // Data parallelism: these `batch` samples are positions first .. first+batch-1 of a global batch
  // of global_batch samples (0: the batch is the whole batch). Mask bits are keyed by the global
  // position and the objective divides by global_batch, so per-shard losses and gradients sum to
  // the single-process ones.
  std::int64_t first = 0;
  int global_batch = 0;
  int norm_batch() const { return global_batch > 0 ? global_batch : batch; }

  LayerMasks() = default;
  LayerMasks(int depth, int max_batch) : exec(static_cast<std::size_t>(depth)) {
    for (auto& e : exec) e.reserve(static_cast<std::size_t>(max_batch));
  }
  int depth() const { return static_cast<int>(exec.size()); }
  // Every sample executes every block (no dropout, or inference).
  void all(int b) {
    batch = b;
    for (auto& e : exec) {
      e.resize(static_cast<std::size_t>(b));
      for (int i = 0; i < b; ++i) e[i] = i;
    }
  }
  // Eq. 4: sample i skips block l when u(seed, step, l, i) < p_l  (m = 1 means skip).
  // With first/global_batch: the shard [first, first+b) of a global batch of global_batch samples.
  void draw(std::uint64_t seed, std::uint64_t step, const std::vector<double>& p, int b,
            std::int64_t first_sample = 0, int global = 0) {
    ENVIT_CHECK(p.size() == exec.size(), ShapeError, "LayerMasks::draw: ", p.size(),
                " probabilities for ", exec.size(), " blocks");
    ENVIT_CHECK(first_sample >= 0 && (global == 0 || first_sample + b <= global), ValueError,
                "LayerMasks::draw: shard [", first_sample, ", ", first_sample + b, ") outside the global batch of ",
                global);
    batch = b;
    first = first_sample;
    global_batch = global;
    const std::uint64_t key = seed ^ (0x9E3779B97F4A7C15ull * ((step >> 32) + 1));
    for (std::size_t l = 0; l < exec.size(); ++l) {
      auto& e = exec[l];
      e.clear();
      for (int i = 0; i < b; ++i) {
        double u = uniform_at(key, RngStream::dropout, static_cast<std::uint32_t>(step),
                              static_cast<std::uint32_t>(l), static_cast<std::uint32_t>(first_sample + i));
        if (!(u < p[l])) e.push_back(i);
      }
    }
  }
  // Throws unless these masks fit a model of `depth` blocks: one list per block, 1 <= batch, and
  // every exec[l] strictly increasing within [0, batch). The message starts with `where` and names
  // the block, the position in its list and the offending sample. Allocates nothing unless it throws.
  void check(int depth, const char* where) const {
    ENVIT_CHECK(static_cast<int>(exec.size()) == depth, ShapeError, where, ": masks for ", exec.size(),
                " blocks, the model has ", depth);
    ENVIT_CHECK(batch >= 1, ValueError, where, ": masks.batch is ", batch, ", expected at least 1");
    for (std::size_t l = 0; l < exec.size(); ++l) {
      const auto& e = exec[l];
      ENVIT_CHECK(e.size() <= static_cast<std::size_t>(batch), ValueError, where, ": masks.exec[", l, "] (block ",
                  l + 1, ") lists ", e.size(), " samples for a batch of ", batch);
      for (std::size_t i = 0; i < e.size(); ++i) {
        ENVIT_CHECK(e[i] >= 0 && e[i] < batch, ValueError, where, ": masks.exec[", l, "] (block ", l + 1,
                    ") position ", i, ": sample ", e[i], " out of range, expected 0..", batch - 1);
        if (i == 0) continue;
        ENVIT_CHECK(e[i] != e[i - 1], ValueError, where, ": masks.exec[", l, "] (block ", l + 1, ") position ", i,
                    ": duplicate sample ", e[i]);
        ENVIT_CHECK(e[i] > e[i - 1], ValueError, where, ": masks.exec[", l, "] (block ", l + 1, ") position ", i,
                    ": not sorted, sample ", e[i], " after ", e[i - 1], " (each list must be increasing)");
      }
    }
  }
  // True when no sample skips any block (then the dropped pass equals the complete model).
  bool complete() const {
    for (auto& e : exec)
      if (static_cast<int>(e.size()) != batch) return false;
    return true;
  }
  // Fraction of (sample, block) pairs executed.
  double executed_fraction() const {
    if (exec.empty() || batch == 0) return 1.0;
    std::size_t n = 0;
    for (auto& e : exec) n += e.size();
    return double(n) / (double(batch) * double(exec.size()));
  }
};

// first[i] = the first block (0-based) sample i skips, or the depth when it skips none.
// first: masks.batch ints.
inline void first_skips(const LayerMasks& masks, int* first) {
  const int B = masks.batch, L = masks.depth();
  for (int i = 0; i < B; ++i) first[i] = L;
  for (int l = L - 1; l >= 0; --l) {  // from the last block down: the earliest skip wins
    const auto& e = masks.exec[l];
    std::size_t k = 0;
    for (int i = 0; i < B; ++i) {
      if (k < e.size() && e[k] == i) ++k;
      else first[i] = l;
    }
  }
}

}  // namespace envit
