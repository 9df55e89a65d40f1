// envit/train/cosee.hpp — COSEE's training loss (He et al., AAAI 2025; code: He-Jianing/COSEE):
// sample-weighted exit losses around each sample's exit under sampled thresholds, plus a margin
// loss that calibrates the exit signal. Used by objective_forward for the `cosee` scheme.
//
// Letters: M exits, B samples (every sample reaches every exit: the scheme has no dropout), C
// classes, R thresholds. Per exit j and sample b, with lse = logsumexp(z_jb) and p = softmax(z_jb):
//   s_jb  = sigmoid(-lse)                        the energy exit signal at T = 1 (criteria.hpp)
//   ce_jb = lse - z_jb[y_b]
//   k_b^r = the first non-final exit with s_jb < t_r, else the final exit     (no gradient)
//   W[k, j] = softmax_j(-beta |k - j|),  beta = 10 * step / total_steps
//   L_cls = (1/R) sum_r (1/B) sum_b sum_j W[k_b^r, j] ce_jb
//   per non-final exit j with both correct (argmax == y) and wrong samples in the batch:
//     r_j = max(0, mean_{b correct} s_jb - mean_{b wrong} s_jb + margin)
//   L_R = (1/Q) sum_j r_j over those Q exits (0 when Q = 0)
//   L = L_cls + lambda L_R                       (margin 0.3, lambda 0.1)
// Gradients: dL/dz_jb = (A_jb / B)(p - onehot(y)) + g_jb * ds/dz with A_jb = (1/R) sum_r W[k_b^r, j],
//   ds/dz = -s (1 - s) p, and g_jb = lambda / Q * (+1/n_correct or -1/n_wrong) on exits whose
//   margin term is positive (0 elsewhere). The thresholds t_r are the caller's (the trainer draws
//   them uniformly in the signal range of the previous epoch, keyed by seed and step).
// Data parallelism (BatchShard): B in 1/B is the global batch; the signal range and each exit's
// n_correct and signal sums are taken over every process (so Q, r_j and g_jb are the whole batch's);
// L_R, not a sum over samples, is counted in the loss of the shard that holds position 0.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "envit/core/batch_reduce.hpp"
#include "envit/core/error.hpp"

namespace envit {

struct CoseeConfig {
  double beta_max = 10.0;  // beta_t = beta_max * step / total_steps
  double margin = 0.3;     // calibration margin
  double lambda = 0.1;     // weight of the calibration loss
  int thresholds = 5;      // thresholds drawn per step
};

// What the COSEE loss reports besides the total.
struct CoseeStats {
  double cls = 0, calib = 0;     // L_cls, L_R
  double signal_min = 0, signal_max = 0;  // over the non-final exits' signals of the step
};

// Per-step buffers, sized once for (M exits, max batch).
struct CoseeWorkspace {
  std::vector<double> sig, ce, coef;  // (M, B)
  std::vector<double> w;              // (M, M)
  std::vector<double> thresholds;     // (R) set by the caller before the step
  std::vector<int> correct;           // (M, B)
  std::vector<double> red;            // (2 + 3M) the batch statistics, summed over processes
  CoseeWorkspace() = default;
  CoseeWorkspace(int M, int max_batch, int R) {
    const std::size_t MB = std::size_t(M) * std::size_t(max_batch);
    sig.resize(MB); ce.resize(MB); coef.resize(MB); correct.resize(MB);
    w.resize(std::size_t(M) * std::size_t(M));
    red.resize(2 + 3 * std::size_t(M));
    thresholds.reserve(std::size_t(R));
  }
};

// Loss and logit gradients for M exits' logits z[j] (B, C) each; dz[j] (B, C) overwritten.
// `probs[j]` (B, C) receives softmax(z[j]). Returns the total loss L (this shard's part of it).
template <class T>
double cosee_loss(CoseeStats& st, CoseeWorkspace& cw, T* const* dz, T* const* probs, const T* const* z,
                  const std::int32_t* labels,  // (B)
                  int M, int B, int C, double progress, const CoseeConfig& cc, const BatchShard& shard = {}) {
  const int R = static_cast<int>(cw.thresholds.size());
  ENVIT_CHECK(R >= 1, ValueError, "cosee_loss: no thresholds were set for this step");
  ENVIT_CHECK(cw.sig.size() >= std::size_t(M) * std::size_t(B) && cw.w.size() >= std::size_t(M) * M &&
                  cw.red.size() >= 2 + 3 * std::size_t(M), ShapeError,
              "cosee_loss: workspace planned for fewer exits or samples than M=", M, " B=", B);
  const int Bg = shard.total(B);
  st.signal_min = 1;
  st.signal_max = 0;
  // Signals, per-sample CE, probabilities, correctness.
  for (int j = 0; j < M; ++j)
    for (int b = 0; b < B; ++b) {
      const T* zr = z[j] + std::size_t(b) * C;
      T* pr = probs[j] + std::size_t(b) * C;
      int am = 0;
      for (int c = 1; c < C; ++c) am = zr[c] > zr[am] ? c : am;
      const double m = double(zr[am]);
      double s = 0;
      for (int c = 0; c < C; ++c) s += std::exp(double(zr[c]) - m);
      const double lse = m + std::log(s);
      for (int c = 0; c < C; ++c) pr[c] = T(std::exp(double(zr[c]) - lse));
      const std::size_t k = std::size_t(j) * B + b;
      cw.sig[k] = 1.0 / (1.0 + std::exp(lse));
      cw.ce[k] = lse - double(zr[labels[b]]);
      cw.correct[k] = am == labels[b];
      cw.coef[k] = 0;
      if (j == M - 1) continue;  // the range and the calibration cover the non-final exits (as the source)
      st.signal_min = std::min(st.signal_min, cw.sig[k]);
      st.signal_max = std::max(st.signal_max, cw.sig[k]);
    }
  cw.red[0] = st.signal_max, cw.red[1] = -st.signal_min;
  batch_max(shard.reduce, cw.red.data(), 2);
  st.signal_max = cw.red[0], st.signal_min = -cw.red[1];
  // W[k, j] = softmax_j(-beta |k - j|).
  const double beta = cc.beta_max * std::clamp(progress, 0.0, 1.0);
  for (int k = 0; k < M; ++k) {
    double s = 0;
    for (int j = 0; j < M; ++j) s += cw.w[std::size_t(k) * M + j] = std::exp(-beta * std::abs(k - j));
    for (int j = 0; j < M; ++j) cw.w[std::size_t(k) * M + j] /= s;
  }
  // A_jb = (1/R) sum_r W[k_b^r, j].
  for (int r = 0; r < R; ++r)
    for (int b = 0; b < B; ++b) {
      int k = 0;
      while (k < M - 1 && !(cw.sig[std::size_t(k) * B + b] < cw.thresholds[r])) ++k;
      for (int j = 0; j < M; ++j) cw.coef[std::size_t(j) * B + b] += cw.w[std::size_t(k) * M + j] / R;
    }
  double cls = 0;
  for (std::size_t k = 0; k < std::size_t(M) * B; ++k) cls += cw.coef[k] * cw.ce[k];
  st.cls = cls / Bg;
  // Calibration: per non-final exit, the margin between correct and wrong samples' mean signals.
  // Per exit j: n_correct, the correct and the wrong samples' signal sums (over every process).
  double* ncor = cw.red.data() + 2;
  double* scor = ncor + M;
  double* swro = scor + M;
  for (int j = 0; j < M; ++j) {
    ncor[j] = 0, scor[j] = 0, swro[j] = 0;
    for (int b = 0; b < B; ++b) {
      const std::size_t k = std::size_t(j) * B + b;
      ncor[j] += cw.correct[k];
      (cw.correct[k] ? scor[j] : swro[j]) += cw.sig[k];
    }
  }
  batch_sum(shard.reduce, ncor, 3 * M);
  int Q = 0;
  double calib = 0;
  for (int j = 0; j + 1 < M; ++j) {
    const double nc = ncor[j];
    if (nc > 0 && nc < Bg) {
      ++Q;
      calib += std::max(0.0, scor[j] / nc - swro[j] / (Bg - nc) + cc.margin);
    }
  }
  st.calib = Q > 0 ? calib / Q : 0.0;
  // Gradients.
  for (int j = 0; j < M; ++j) {
    const double nc = ncor[j];
    const bool active = j + 1 < M && nc > 0 && nc < Bg && scor[j] / nc - swro[j] / (Bg - nc) + cc.margin > 0;
    for (int b = 0; b < B; ++b) {
      const std::size_t k = std::size_t(j) * B + b;
      const double g = active ? cc.lambda / Q * (cw.correct[k] ? 1.0 / nc : -1.0 / (Bg - nc)) : 0.0;
      const double a = cw.coef[k] / Bg, ds = -g * cw.sig[k] * (1 - cw.sig[k]);
      const T* pr = probs[j] + std::size_t(b) * C;
      T* d = dz[j] + std::size_t(b) * C;
      for (int c = 0; c < C; ++c) d[c] = T(a * (double(pr[c]) - (c == labels[b])) + ds * double(pr[c]));
    }
  }
  return shard.leader ? st.cls + cc.lambda * st.calib : st.cls;
}

}  // namespace envit
