// Real early exit (batch with compaction, streaming) against the simulation on the complete
// model's logits: the same samples must leave at the same exits with the same predictions, and the
// logits a sample leaves with must equal the complete model's logits at that exit bit for bit.
// That needs batch-invariant kernels (a row's result independent of the batch it is computed in);
// the complete-model logits are also compared across batch sizes directly, and the GEMM's rows at
// the inference shapes. Float runs with the packed GEMM (the default) and, as a separate test, with
// the Eigen backend; double runs on Eigen. The packed float cases also run in BF16
// (InferenceWorkspace::precision): the agreement must hold bitwise there too.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "envit/infer/early_exit.hpp"
#include "envit/infer/simulate.hpp"
#include "alloc_counter.hpp"
#include "testing.hpp"

using namespace envit;

namespace {

// 8x8x3 images, patch 2 -> 17 tokens; D 32, 4 heads, F 64, 5 classes; 5 blocks with exits after
// blocks 1, 2, 4, 5 (block 3 has none). Every GEMM here runs single-threaded.
VitConfig small_config() {
  VitConfig c;
  c.image_size = 8; c.channels = 3; c.patch = 2;
  c.dim = 32; c.depth = 5; c.heads = 4; c.mlp_hidden = 64; c.classes = 5;
  c.exits = {1, 2, 4, 5};
  c.validate();
  return c;
}
// 16x16x3, patch 2 -> 65 tokens; D 64, F 256, 7 classes, 3 blocks: the MLP and qkv GEMMs are large
// enough to be split over two threads (by rows or columns depending on the batch).
VitConfig medium_config() {
  VitConfig c;
  c.image_size = 16; c.channels = 3; c.patch = 2;
  c.dim = 64; c.depth = 3; c.heads = 4; c.mlp_hidden = 256; c.classes = 7;
  c.exits = {1, 2, 3};
  c.validate();
  return c;
}

// Uniform parameters (larger for the heads) so exits disagree and confidences spread over (0.3, 1).
template <class T>
struct Model {
  VitConfig cfg;
  ViTParams<T> P;
  int N;
  std::vector<T> images;
  Model(const VitConfig& c, int n) : cfg(c), P(c), N(n) {
    for (const ParamEntry& e : P.table()) {
      const double a = e.name.find("head") != std::string::npos ? 1.0 : 0.5;
      envit::testing::fill_uniform(P.values() + e.offset, e.numel, 100 + e.offset, -a, a);
      if (e.name.find("norm") != std::string::npos && e.name.find("weight") != std::string::npos)
        for (std::size_t i = 0; i < e.numel; ++i) P.values()[e.offset + i] += T(1);
    }
    images.resize(std::size_t(N) * cfg.channels * cfg.image_size * cfg.image_size);
    envit::testing::fill_uniform(images.data(), images.size(), 9);
  }
  int M() const { return cfg.num_exits(); }
  int C() const { return cfg.classes; }
};

struct Diff {
  long differ = 0;        // entries that are not bitwise equal
  double max_abs = 0;     // largest |a - b|
  double max_rel = 0;     // largest |a - b| / |b|
  std::size_t first = 0;  // first differing entry
};
template <class T>
Diff bit_diff(const T* a, const T* b, std::size_t n) {
  Diff d;
  for (std::size_t i = 0; i < n; ++i) {
    if (std::memcmp(a + i, b + i, sizeof(T)) == 0) continue;
    if (d.differ++ == 0) d.first = i;
    const double e = std::abs(double(a[i]) - double(b[i]));
    d.max_abs = std::max(d.max_abs, e);
    d.max_rel = std::max(d.max_rel, e / std::max(std::abs(double(b[i])), 1e-300));
  }
  return d;
}
std::string describe(const Diff& d, std::size_t n) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "%ld of %zu entries differ (first at %zu), max |diff| %.3g, max rel %.3g",
                d.differ, n, d.first, d.max_abs, d.max_rel);
  return buf;
}

template <class T>
std::vector<T> all_exit_logits(InferenceWorkspace<T>& ws, Model<T>& m, int batch) {
  std::vector<T> z(std::size_t(m.M()) * m.N * m.C());
  infer_all_exits_dataset<T>(ws, m.P, m.images.data(), m.N, z.data(), batch);
  return z;
}

struct Agreement {
  int decision_mismatches = 0;  // samples whose (exit, pred) differ from the simulation
  long logit_entries_differ = 0;
  double logit_max_abs = 0;
  std::string first;            // description of the first mismatching sample
};

// Real early exit in chunks of `batch` (0 = streaming with early_exit_one) against the simulation
// on the complete model's logits `ref` (M, N, C).
template <class T>
Agreement real_vs_sim(InferenceWorkspace<T>& ws, Model<T>& m, const std::vector<T>& ref,
                      const ExitCriterion& crit, int batch, ExitDecisions* sim_out = nullptr) {
  const int M = m.M(), N = m.N, C = m.C();
  ExitScores s = exit_scores(ref.data(), M, N, C, crit);
  ExitDecisions d = exit_decide(s, crit);
  std::vector<int> ex(std::size_t(N), -1), pr(std::size_t(N), -1);
  std::vector<T> lg(std::size_t(N) * C);
  if (batch == 0) {
    const std::size_t isz = ws.image_size();
    for (int i = 0; i < N; ++i) {
      ExitResult r = early_exit_one<T>(ws, m.P, m.images.data() + i * isz, crit, lg.data() + std::size_t(i) * C);
      ex[i] = r.exit;
      pr[i] = r.pred;
    }
  } else {
    early_exit_dataset<T>(ws, m.P, m.images.data(), N, batch, crit, {ex.data(), pr.data(), lg.data()});
  }
  Agreement a;
  for (int i = 0; i < N; ++i) {
    if (ex[i] != d.exit[i] || pr[i] != d.pred[i]) {
      if (a.decision_mismatches++ == 0) {
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      "sample %d: simulated exit %d pred %d (simulated score there %.17g), real exit %d pred %d",
                      i, d.exit[i], d.pred[i], s.score_at(d.exit[i], i), ex[i], pr[i]);
        a.first = buf;
      }
      continue;
    }
    Diff ld = bit_diff(lg.data() + std::size_t(i) * C, ref.data() + (std::size_t(d.exit[i]) * N + i) * C, std::size_t(C));
    a.logit_entries_differ += ld.differ;
    a.logit_max_abs = std::max(a.logit_max_abs, ld.max_abs);
  }
  if (sim_out) *sim_out = d;
  return a;
}

// Confidence thresholds 0, 0.5, 0.9, 1.01 plus thresholds equal to observed exit-1 and exit-0
// scores: a sample whose score ties the threshold leaves only if its score is bit-identical.
template <class T>
std::vector<ExitCriterion> criteria_for(const Model<T>& m, const std::vector<T>& ref, bool all_rules) {
  const int M = m.M(), N = m.N, C = m.C();
  ExitScores s = exit_scores(ref.data(), M, N, C, ExitRule::confidence);
  std::vector<ExitCriterion> v;
  for (double t : {0.0, 0.5, 0.9, 1.01}) v.push_back(ExitCriterion::confidence(t));
  v.push_back(ExitCriterion::confidence(s.score_at(1, N / 2)));
  v.push_back(ExitCriterion::confidence(s.score_at(0, N - 1)));
  std::vector<double> per_exit(std::size_t(M - 1), 0.95);
  per_exit[0] = 0.99;
  per_exit.back() = 0.6;
  v.push_back(ExitCriterion::confidence(per_exit));
  if (all_rules) {
    ExitScores e = exit_scores(ref.data(), M, N, C, ExitRule::entropy, true);
    for (double t : {0.2, 0.5, 0.8}) v.push_back(ExitCriterion::entropy(t));
    v.push_back(ExitCriterion::entropy(e.score_at(1, 3)));
    v.push_back(ExitCriterion::entropy(1.0, false));
    for (int p : {1, 2, 3}) v.push_back(ExitCriterion::patience(p));
    // beem (weights rising with the exit): thresholds 0 (everyone leaves at exit 0), between, and
    // an observed running score (a tie).
    std::vector<double> w(static_cast<std::size_t>(M));
    for (int j = 0; j < M; ++j) w[j] = 0.3 + 0.25 * j;
    ExitScores b = exit_scores(ref.data(), M, N, C, ExitCriterion::beem(0.0, w));
    for (double t : {0.0, 0.6}) v.push_back(ExitCriterion::beem(t, w));
    v.push_back(ExitCriterion::beem(b.score_at(1, N / 2), w));
    // energy: strict `<`; thresholds at observed signals (that sample must not leave there).
    ExitScores en = exit_scores(ref.data(), M, N, C, ExitRule::energy);
    v.push_back(ExitCriterion::energy(0.1));
    v.push_back(ExitCriterion::energy(en.score_at(1, N / 2)));
  }
  return v;
}

std::string crit_str(const ExitCriterion& c) {
  std::string s = exit_rule_name(c.rule);
  s += " [";
  for (std::size_t k = 0; k < c.thresholds.size(); ++k) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%s%.17g", k ? ", " : "", c.thresholds[k]);
    s += buf;
  }
  return s + "]";
}

// The whole agreement suite for one scalar type / backend / config / precision.
template <class T>
void check_agreement(const VitConfig& cfg, int N, bool all_rules, Precision precision = Precision::fp32) {
  Model<T> m(cfg, N);
  InferenceWorkspace<T> ws(cfg, 8);
  ws.precision = precision;
  if constexpr (std::is_same_v<T, float>)
    if (precision == Precision::int8) ws.prepack(m.P);  // INT8 runs on weights packed for it (dynamic scales)
  const int M = m.M(), C = m.C();
  const std::vector<T> ref = all_exit_logits(ws, m, 8);

  // Complete-model logits do not depend on the batch they were computed in.
  for (int b : {1, 3, 5}) {
    std::vector<T> z = all_exit_logits(ws, m, b);
    Diff d = bit_diff(z.data(), ref.data(), z.size());
    INFO("complete model at batch " << b << " vs batch 8: " << describe(d, z.size()));
    CHECK(d.differ == 0);
  }

  for (const ExitCriterion& crit : criteria_for(m, ref, all_rules)) {
    for (int batch : {0, 1, 3, 8}) {
      ExitDecisions sim;
      Agreement a = real_vs_sim(ws, m, ref, crit, batch, &sim);
      INFO(crit_str(crit) << ", batch " << (batch == 0 ? std::string("1 (streaming)") : std::to_string(batch))
                          << ": " << a.decision_mismatches << " decision mismatches (" << a.first << "), "
                          << a.logit_entries_differ << " exit-logit entries differ, max |diff| "
                          << a.logit_max_abs);
      CHECK(a.decision_mismatches == 0);
      CHECK(a.logit_entries_differ == 0);
      if (crit.rule == ExitRule::confidence && crit.thresholds.size() == 1 && crit.thresholds[0] > 1.0) {
        // Nobody leaves early; predictions are the complete model's final argmax.
        for (int i = 0; i < N; ++i) {
          CHECK(sim.exit[i] == M - 1);
          CHECK(sim.pred[i] == exit_argmax(ref.data() + (std::size_t(M - 1) * N + i) * C, C));
        }
      }
      if (crit.rule == ExitRule::confidence && crit.thresholds.size() == 1 && crit.thresholds[0] == 0.0)
        for (int i = 0; i < N; ++i) CHECK(sim.exit[i] == 0);
    }
  }
}

}  // namespace

struct BackendGuard {  // restores the float GEMM backend on scope exit
  GemmBackend keep = gemm_backend();
  explicit BackendGuard(GemmBackend b) { set_gemm_backend(b); }
  ~BackendGuard() { set_gemm_backend(keep); }
};

TEST_CASE("early exit agrees with the simulation exactly: double", "[infer][agree][double]") {
  check_agreement<double>(small_config(), 24, true);
}
TEST_CASE("early exit agrees with the simulation exactly: float, packed GEMM", "[infer][agree][packed]") {
  BackendGuard g(GemmBackend::packed);
  check_agreement<float>(small_config(), 24, true);
}
TEST_CASE("early exit agrees with the simulation exactly: float, Eigen GEMM", "[infer][agree][eigen]") {
  BackendGuard g(GemmBackend::eigen);
  check_agreement<float>(small_config(), 24, true);
}
TEST_CASE("early exit agrees with the simulation exactly: float, packed GEMM, bf16", "[infer][agree][packed][bf16]") {
  BackendGuard g(GemmBackend::packed);
  check_agreement<float>(small_config(), 24, true, Precision::bf16);
}
TEST_CASE("early exit agrees with the simulation exactly: float, int8", "[infer][agree][packed][int8]") {
  BackendGuard g(GemmBackend::packed);
  check_agreement<float>(small_config(), 24, true, Precision::int8);
}
TEST_CASE("early exit agrees with threaded GEMMs: float, int8", "[infer][agree][threads][int8]") {
  check_agreement<float>(medium_config(), 10, false, Precision::int8);
}
TEST_CASE("early exit agrees with threaded GEMMs: double", "[infer][agree][threads][double]") {
  check_agreement<double>(medium_config(), 10, false);
}
TEST_CASE("early exit agrees with threaded GEMMs: float, packed GEMM", "[infer][agree][threads][packed]") {
  BackendGuard g(GemmBackend::packed);
  check_agreement<float>(medium_config(), 10, false);
}
TEST_CASE("early exit agrees with threaded GEMMs: float, Eigen GEMM", "[infer][agree][threads][eigen]") {
  BackendGuard g(GemmBackend::eigen);
  check_agreement<float>(medium_config(), 10, false);
}
TEST_CASE("early exit agrees with threaded GEMMs: float, packed GEMM, bf16", "[infer][agree][threads][packed][bf16]") {
  BackendGuard g(GemmBackend::packed);
  check_agreement<float>(medium_config(), 10, false, Precision::bf16);
}

// The precision is the workspace's: bf16 changes the arithmetic, fp32 is what it was whatever the
// process-wide setting around the call, pre-packed BF16 weights give the bits of per-call packing,
// and every pass leaves the process-wide setting as it found it (also when it throws).
TEST_CASE("inference precision: bf16 changes the logits, fp32 does not; the setting is restored", "[infer][bf16]") {
  BackendGuard g(GemmBackend::packed);
  Model<float> m(medium_config(), 6);
  const int B = 6;
  InferenceWorkspace<float> ws(m.cfg, B);
  REQUIRE(matmul_precision() == Precision::fp32);
  const std::vector<float> fp32 = all_exit_logits(ws, m, B);
  ws.precision = Precision::bf16;
  const std::vector<float> bf16 = all_exit_logits(ws, m, B);
  CHECK(matmul_precision() == Precision::fp32);
  const Diff d = bit_diff(bf16.data(), fp32.data(), fp32.size());
  // BF16 keeps 8 of FP32's 24 mantissa bits: nearly every logit moves, by far more than FP32 rounding
  // (~1e-6 relative) and far less than the logits' scale (~1).
  INFO("bf16 vs fp32: " << describe(d, fp32.size()));
  CHECK(d.differ > long(fp32.size()) / 2);
  CHECK(d.max_abs > 1e-4);
  CHECK(d.max_abs < 0.5);

  {  // a process-wide bf16 setting does not reach an fp32 workspace, and comes back after each pass
    const PrecisionScope outer(Precision::bf16);
    ws.precision = Precision::fp32;
    const std::vector<float> z = all_exit_logits(ws, m, B);
    CHECK(bit_diff(z.data(), fp32.data(), z.size()).differ == 0);
    CHECK(matmul_precision() == Precision::bf16);
  }
  CHECK(matmul_precision() == Precision::fp32);

  ws.precision = Precision::bf16;
  ws.prepack(m.P);  // BF16 panels, once
  CHECK(ws.packed.front().precision == Precision::bf16);
  const std::vector<float> packed = all_exit_logits(ws, m, B);
  Diff dp = bit_diff(packed.data(), bf16.data(), bf16.size());
  INFO("bf16 pre-packed vs packed per call: " << describe(dp, bf16.size()));
  CHECK(dp.differ == 0);
  ws.precision = Precision::fp32;  // panels packed for bf16 are not used by an fp32 pass
  const std::vector<float> again = all_exit_logits(ws, m, B);
  CHECK(bit_diff(again.data(), fp32.data(), fp32.size()).differ == 0);

  ws.precision = Precision::bf16;  // a pass that throws restores the setting too
  std::vector<int> ex(B), pr(B);
  CHECK_THROWS_AS(early_exit_batch<float>(ws, m.P, m.images.data(), B,
                                          ExitCriterion::confidence(std::vector<double>{0.5, 0.5, 0.5, 0.5}),
                                          {ex.data(), pr.data(), nullptr}),
                  ShapeError);
  CHECK(matmul_precision() == Precision::fp32);
}

// Why exit heads run one sample at a time: the head's GEMM has M = live samples. Row r of
// C = A B^T computed with M = m rows vs inside M = 8 rows (full-precision data; low-precision test
// data sums exactly in double and hides reordering). The packed float GEMM must be invariant.
// The block GEMMs (M = rows * tokens) are checked the same way.
template <class T>
Diff gemm_row_invariance(std::ptrdiff_t m, std::ptrdiff_t Mbig, std::ptrdiff_t N, std::ptrdiff_t K) {
  std::vector<T> A(std::size_t(Mbig * K)), B(std::size_t(N * K)), Cb(std::size_t(Mbig * N)), Cs(std::size_t(Mbig * N));
  for (std::size_t i = 0; i < A.size(); ++i) A[i] = T(std::sin(0.7 * double(i) + 0.3) * 1.2345678901234567);
  for (std::size_t i = 0; i < B.size(); ++i) B[i] = T(std::cos(1.3 * double(i) + 0.1) * 0.3141592653589793);
  gemm<T>(Trans::N, Trans::T, Mbig, N, K, T(1), A.data(), K, B.data(), K, T(0), Cb.data(), N);
  for (std::ptrdiff_t o = 0; o + m <= Mbig; o += m)
    gemm<T>(Trans::N, Trans::T, m, N, K, T(1), A.data() + o * K, K, B.data(), K, T(0), Cs.data() + o * N, N);
  const std::size_t n = std::size_t((Mbig / m) * m * N);
  return bit_diff(Cs.data(), Cb.data(), n);
}

// Every backend and type: a row's result at the inference shapes (exit heads on 1 vs 8 samples,
// block GEMMs on one sample's tokens vs a batch's) is bitwise the larger call's.
TEST_CASE("GEMM is row-invariant at the inference shapes", "[infer][invariance]") {
  struct S { const char* what; std::ptrdiff_t m, Mbig, N, K; };
  const S shapes[] = {S{"head D32 C5", 1, 8, 5, 32},         S{"head D32 C5", 3, 8, 5, 32},
                      S{"head D192 C10", 1, 64, 10, 192},    S{"head D192 C10", 7, 63, 10, 192},
                      S{"qkv 17 tokens", 17, 136, 96, 32},   S{"fc1 65 tokens", 65, 520, 256, 64},
                      S{"fc2 50 tokens", 50, 400, 192, 768}, S{"qkv 50 tokens", 150, 400, 576, 192}};
  for (GemmBackend b : {GemmBackend::packed, GemmBackend::eigen}) {
    BackendGuard g(b);
    for (S s : shapes) {
      const std::size_t n = std::size_t((s.Mbig / s.m) * s.m * s.N);
      Diff df = gemm_row_invariance<float>(s.m, s.Mbig, s.N, s.K);
      INFO((b == GemmBackend::packed ? "packed" : "Eigen") << " float, " << s.what << ": M " << s.m << " vs "
                                                          << s.Mbig << ": " << describe(df, n));
      CHECK(df.differ == 0);
    }
  }
  for (S s : shapes) {
    const std::size_t n = std::size_t((s.Mbig / s.m) * s.m * s.N);
    Diff dd = gemm_row_invariance<double>(s.m, s.Mbig, s.N, s.K);
    INFO("double, " << s.what << ": M " << s.m << " vs " << s.Mbig << ": " << describe(dd, n));
    CHECK(dd.differ == 0);
  }
}

TEST_CASE("batch mode compacts: later blocks run only on the samples still in flight", "[infer][compact]") {
  Model<double> m(small_config(), 8);
  InferenceWorkspace<double> ws(m.cfg, 8);
  const std::vector<double> ref = all_exit_logits(ws, m, 8);
  for (double t : {0.0, 0.5, 0.9, 1.01}) {
    ExitCriterion crit = ExitCriterion::confidence(t);
    ExitDecisions d = exit_decide(exit_scores(ref.data(), m.M(), m.N, m.C(), ExitRule::confidence), crit);
    std::vector<int> ex(8), pr(8);
    early_exit_batch<double>(ws, m.P, m.images.data(), 8, crit, {ex.data(), pr.data(), nullptr});
    CHECK(ex == d.exit);
    CHECK(pr == d.pred);
    for (int l = 0; l < m.cfg.depth; ++l) {
      // Block l (0-based) runs on every sample whose exit sits at or after block l + 1.
      int expect = 0;
      for (int i = 0; i < 8; ++i) expect += m.cfg.exits[std::size_t(d.exit[i])] >= l + 1;
      INFO("threshold " << t << " block " << l);
      CHECK(ws.block_rows[std::size_t(l)] == expect);
    }
  }
  // With t = 0 only block 1 runs (everyone leaves at exit 0, after block 1).
  std::vector<int> ex(8), pr(8);
  early_exit_batch<double>(ws, m.P, m.images.data(), 8, ExitCriterion::confidence(0.0), {ex.data(), pr.data(), nullptr});
  CHECK(ws.block_rows == std::vector<int>{8, 0, 0, 0, 0});
}

template <class T>
long allocs_per_call() {
  Model<T> m(small_config(), 8);
  InferenceWorkspace<T> ws(m.cfg, 8);
  std::vector<T> all(std::size_t(m.M()) * 8 * m.C()), lg(std::size_t(8) * m.C()), one(std::size_t(m.C()));
  std::vector<int> ex(8), pr(8);
  const ExitCriterion crit = ExitCriterion::confidence(0.5), pat = ExitCriterion::patience(2);
  auto run = [&] {
    infer_all_exits<T>(ws, m.P, m.images.data(), 8, all.data(), 8 * m.C());
    early_exit_batch<T>(ws, m.P, m.images.data(), 8, crit, {ex.data(), pr.data(), lg.data()});
    early_exit_batch<T>(ws, m.P, m.images.data(), 5, pat, {ex.data(), pr.data(), lg.data()});
    early_exit_one<T>(ws, m.P, m.images.data(), crit, one.data());
  };
  run();  // warm-up: grows the packed GEMM's thread-local pack buffers, starts OpenMP's threads
  envit::testing::g_allocs = 0;
  envit::testing::g_count_allocs = true;
  run();
  envit::testing::g_count_allocs = false;
  return envit::testing::g_allocs.load();
}

TEST_CASE("early exit allocates nothing per call after the first", "[infer][alloc]") {
  {  // the counter itself sees an allocation
    envit::testing::g_allocs = 0;
    envit::testing::g_count_allocs = true;
    std::vector<double>* v = new std::vector<double>(10);
    envit::testing::g_count_allocs = false;
    delete v;
    CHECK(envit::testing::g_allocs.load() == 2);
  }
  {
    BackendGuard g(GemmBackend::packed);
    CHECK(allocs_per_call<float>() == 0);
  }
  {
    BackendGuard g(GemmBackend::eigen);
    CHECK(allocs_per_call<float>() == 0);
  }
  CHECK(allocs_per_call<double>() == 0);
}

TEST_CASE("early exit argument checks", "[infer][errors]") {
  Model<double> m(small_config(), 2);
  InferenceWorkspace<double> ws(m.cfg, 4);
  std::vector<int> ex(8), pr(8);
  std::vector<double> z(std::size_t(m.M()) * 8 * m.C());
  ExitOutput<double> out{ex.data(), pr.data(), nullptr};
  CHECK_THROWS_AS(early_exit_batch<double>(ws, m.P, m.images.data(), 5, ExitCriterion::confidence(0.5), out), ShapeError);
  CHECK_THROWS_AS(early_exit_batch<double>(ws, m.P, m.images.data(), 0, ExitCriterion::confidence(0.5), out), ShapeError);
  CHECK_THROWS_AS(early_exit_batch<double>(ws, m.P, m.images.data(), 2,
                                           ExitCriterion::confidence(std::vector<double>{0.5, 0.5}), out),
                  ShapeError);  // 2 thresholds for 4 exits
  CHECK_THROWS_AS(early_exit_batch<double>(ws, m.P, m.images.data(), 2, ExitCriterion::confidence(0.5),
                                           ExitOutput<double>{nullptr, pr.data(), nullptr}),
                  ValueError);
  CHECK_THROWS_AS(infer_all_exits<double>(ws, m.P, m.images.data(), 2, z.data(), 1), ShapeError);
  VitConfig other = m.cfg;
  other.classes = 6;
  InferenceWorkspace<double> ws2(other, 4);
  CHECK_THROWS_AS(early_exit_batch<double>(ws2, m.P, m.images.data(), 2, ExitCriterion::confidence(0.5), out),
                  ShapeError);
  CHECK_THROWS_AS(InferenceWorkspace<double>(m.cfg, 0), ValueError);
  CHECK_THROWS_AS(early_exit_dataset<double>(ws, m.P, m.images.data(), 2, 5, ExitCriterion::confidence(0.5), out),
                  ValueError);
}

TEST_CASE("block scratch in sample chunks: bitwise the same logits and exits, less memory", "[infer][chunks]") {
  BackendGuard g(GemmBackend::packed);
  const int threads0 = envit::num_threads();
  for (int threads : {1, 2}) {
    envit::set_num_threads(threads);
    Model<float> m(medium_config(), 10);
    const std::ptrdiff_t N = m.cfg.tokens();
    InferenceWorkspace<float> whole(m.cfg, 8, 8 * N);  // one block call per batch
    REQUIRE(whole.block_batch == 8);
    const std::vector<float> ref = all_exit_logits(whole, m, 8);
    // 1 sample per call; 3 per call (batch 8: chunks 3, 3, 2); 2 token rows round up to 1 sample.
    for (std::ptrdiff_t rows : {N, 3 * N - 1, std::ptrdiff_t(2)}) {
      InferenceWorkspace<float> ws(m.cfg, 8, rows);
      const int expect = int((rows + N - 1) / N);
      CHECK(ws.block_batch == expect);
      CHECK(ws.bytes() < whole.bytes());
      for (int b : {1, 5, 8}) {
        const std::vector<float> z = all_exit_logits(ws, m, b);
        Diff d = bit_diff(z.data(), ref.data(), z.size());
        INFO(threads << " threads, " << rows << " block rows, batch " << b << ": " << describe(d, z.size()));
        CHECK(d.differ == 0);
      }
      ws.prepack(m.P);
      for (int batch : {0, 3, 8}) {
        Agreement a = real_vs_sim(ws, m, ref, ExitCriterion::confidence(0.6), batch);
        INFO(rows << " block rows, early exit at batch " << batch << ": " << a.first);
        CHECK(a.decision_mismatches == 0);
        CHECK(a.logit_entries_differ == 0);
      }
    }
  }
  envit::set_num_threads(threads0);
  // The default plans >= 4096 token rows, capped at the max batch.
  Model<float> m(medium_config(), 2);
  const std::ptrdiff_t N = m.cfg.tokens();
  CHECK(InferenceWorkspace<float>(m.cfg, 3).block_batch == std::min<std::ptrdiff_t>(3, (4096 + N - 1) / N));
  CHECK(InferenceWorkspace<float>(m.cfg, 100000).block_batch == (4096 + N - 1) / N);
  CHECK_THROWS_AS(InferenceWorkspace<float>(m.cfg, 4, 0), ValueError);
}

TEST_CASE("prepacked block weights: bitwise the same logits and exits, and a snapshot of the weights",
          "[infer][prepack]") {
  BackendGuard g(GemmBackend::packed);
  const int threads0 = envit::num_threads();
  for (int threads : {1, 2}) {
    envit::set_num_threads(threads);
    Model<float> m(medium_config(), 10);
    InferenceWorkspace<float> ws(m.cfg, 8);
    const std::vector<float> ref = all_exit_logits(ws, m, 8);
    ws.prepack(m.P);
    REQUIRE(ws.packed.size() == std::size_t(4 * m.cfg.depth));
    CHECK(ws.block_params(m.P, 1).fc1_wp == &ws.packed[6]);
    for (int b : {1, 3, 8}) {
      const std::vector<float> z = all_exit_logits(ws, m, b);
      Diff d = bit_diff(z.data(), ref.data(), z.size());
      INFO(threads << " threads, prepacked, batch " << b << ": " << describe(d, z.size()));
      CHECK(d.differ == 0);
    }
    const ExitCriterion crit = ExitCriterion::confidence(0.6);
    for (int batch : {0, 3, 8}) {
      Agreement a = real_vs_sim(ws, m, ref, crit, batch);
      INFO("prepacked early exit, batch " << batch << ": " << a.first);
      CHECK(a.decision_mismatches == 0);
      CHECK(a.logit_entries_differ == 0);
    }
    // Another parameter set of the same shape does not use this workspace's packed weights.
    Model<float> other(medium_config(), 10);
    envit::testing::fill_uniform(other.P.values(), other.P.size(), 4242, -0.5, 0.5);
    CHECK(ws.block_params(other.P, 0).qkv_wp == nullptr);
    // The packed copy is a snapshot: after the weights change, a re-pack gives the new model's
    // logits (equal to the unpacked pass on the new weights).
    m.P.values()[m.P.table()[4].offset] += 0.25f;
    ws.unpack();
    const std::vector<float> ref2 = all_exit_logits(ws, m, 8);
    CHECK(bit_diff(ref2.data(), ref.data(), ref.size()).differ > 0);
    ws.prepack(m.P);
    const std::vector<float> z2 = all_exit_logits(ws, m, 8);
    CHECK(bit_diff(z2.data(), ref2.data(), z2.size()).differ == 0);
  }
  envit::set_num_threads(threads0);
  // A configuration mismatch is refused.
  Model<float> m(medium_config(), 2);
  VitConfig c2 = medium_config();
  c2.mlp_hidden = 128;
  InferenceWorkspace<float> ws(c2, 2);
  CHECK_THROWS_AS(ws.prepack(m.P), ShapeError);
}
