// tests/kernels/test_gemm_bf16.cpp — the BF16 matrix product (core/precision.hpp; GemmKernelSet::run_bf16 of
// kernels/gemm_types.hpp) of the kernel set in use: gemm<float> and gemm_weight_t<float> under
// Precision::bf16 against double references, exactness on integer operands, rounding (nearest even,
// ties included), alpha/beta/epilogue semantics, pre-packed weights, threads, row invariance,
// determinism and the no-allocation property; plus, for every set the CPU runs, its BF16 product
// called directly, and the FP32 identity of the AVX-512 family (avx512, avx512_bf16, amx: bitwise
// equal FP32 results).
// tests/gemm.cmake registers the executable once per kernel set (gemm_bf16_<set>, ENVIT_ISA=<set>),
// and the FP32 comparison of the AVX-512 family once more alone (gemm_fp32_avx512_family), skipped
// where the CPU has no BF16 set to compare.
// When ENVIT_ISA names a set this CPU cannot run (amx on a CPU without AMX, or whose kernel refuses
// the tile state), the executable prints why and exits with 77 before any test runs, which ctest
// reports as skipped (SKIP_RETURN_CODE 77), never as passed.
//
// Bounds, per element of C (u = 2^-24, the FP32 unit roundoff; ra, rb: the operands rounded to BF16;
// T = |alpha| * sum_k |ra_ik rb_kj| + |beta| * |c0_ij|; ref_r: the double product of ra, rb):
//   (A, worst case) |c - ref_r| <= (K + 8) u T / (1 - (K + 8) u)
//       Each product of two BF16 values is exact in FP32 (8 + 8 significant bits; vdpbf16ps and
//       tdpbf16ps also form exact products), so the only errors are FP32 roundings of the sums.
//       Whatever the order (one FMA chain, vdpbf16ps's two additions per pair, AMX's tile sums,
//       K blocks added into C), every term passes through at most K additions, plus alpha's
//       multiplication, beta's multiply-add and the K-block accumulations into C (at most 8 in
//       all here), each with relative error <= u: Higham's recursive-summation bound
//       gamma_n = n u / (1 - n u) with n = K + 8, c0 = 1. Holds for every input.
//   (B, statistical) |c - ref_r| <= 16 sqrt(K + 8) u T
//       Higham & Mary's probabilistic bound (SIAM J. Sci. Comput. 2019): with rounding errors
//       independent and of mean zero, the error exceeds lambda sqrt(n) u T with probability at most
//       2 exp(-lambda^2 / 2) (1e-55 for lambda = 16). Errors grow with sqrt(K), and a single
//       missing, doubled or misplaced term (about T / K for these inputs) exceeds it at every K
//       used here (K = 3072: the bound is 888 u T = 5.3e-5 T, a term ~3e-4 T).
//   (C, against the unrounded operands) |c - ref| <= min(A, B) + |alpha| (2^-7 + 2^-16) sum|a b|
//       BF16 keeps 8 significant bits (p = 8, unit roundoff 2^-8): rounding to nearest changes an
//       operand by at most 2^-8 of itself, a product of two rounded operands by at most
//       (1 + 2^-8)^2 - 1 = 2^-7 + 2^-16 of itself.
// Subnormals: AVX512-BF16 and AMX flush BF16 subnormal inputs and FP32 subnormal results to zero
// (DAZ/FTZ) while the emulated product does not. The inputs here are uniform in [-1, 1) or small
// integers and never come near 2^-126 (a product of two of them is at least ~2^-40 unless zero), so
// every set is held to the same bounds; the absolute floor of 2^-100 only covers exact zeros.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "envit/core/bf16.hpp"
#include "envit/core/precision.hpp"
#include "envit/kernels/gemm.hpp"
#include "kernel_set_skip.hpp"
#include "testing.hpp"

namespace {

using envit::GemmBackend;
using envit::Precision;
using envit::PrecisionScope;
using envit::Trans;
using idx = std::ptrdiff_t;
constexpr double kU = 0x1p-24;

// Before any test: a set ENVIT_ISA names but this CPU cannot run is a skip (exit 77), not a failure.
const int g_skip_check = envit::testing::exit_if_kernel_set_unrunnable();

const char* tname(Trans t) { return t == Trans::N ? "N" : "T"; }

struct Guard {  // restores backend, thread count and precision after a test
  GemmBackend b = envit::gemm_backend();
  int t = envit::num_threads();
  Precision p = envit::matmul_precision();
  ~Guard() { envit::set_gemm_backend(b), envit::set_num_threads(t), envit::set_matmul_precision(p); }
};

enum class Fill { uniform, integers };

// One GEMM problem with padded leading dimensions (padding of A and B holds NaN, padding of C a
// sentinel that must survive; C holds NaN when beta == 0, which must not be read).
struct Bf {
  Trans ta, tb;
  idx M, N, K, lda, ldb, ldc;
  float alpha, beta;
  std::vector<float> A, B, C0;

  Bf(Trans ta_, Trans tb_, idx M_, idx N_, idx K_, float alpha_, float beta_, idx pad, std::uint64_t seed,
     Fill fill = Fill::uniform)
      : ta(ta_), tb(tb_), M(M_), N(N_), K(K_), alpha(alpha_), beta(beta_) {
    const idx ar = ta == Trans::N ? M : K, ac = ta == Trans::N ? K : M;
    const idx br = tb == Trans::N ? K : N, bc = tb == Trans::N ? N : K;
    lda = std::max<idx>(ac + pad, 1), ldb = std::max<idx>(bc + pad, 1), ldc = std::max<idx>(N + pad, 1);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    A.assign(std::size_t(std::max<idx>(ar * lda, 1)), nan);
    B.assign(std::size_t(std::max<idx>(br * ldb, 1)), nan);
    C0.assign(std::size_t(std::max<idx>(M * ldc, 1)), -777.0f);
    auto fill_rows = [&](std::vector<float>& v, idx rows, idx cols, idx ld, std::uint64_t s) {
      for (idx r = 0; r < rows; ++r) {
        float* x = v.data() + r * ld;
        envit::testing::fill_uniform(x, std::size_t(cols), s * 1000003 + std::uint64_t(r));
        if (fill == Fill::integers)  // integers in [-8, 8]: exact in BF16, sums exact in FP32
          for (idx j = 0; j < cols; ++j) x[j] = std::nearbyint(8.0f * x[j]);
      }
    };
    fill_rows(A, ar, ac, lda, seed * 3 + 1);
    fill_rows(B, br, bc, ldb, seed * 3 + 2);
    if (beta != 0.0f) fill_rows(C0, M, N, ldc, seed * 3 + 3);
    else
      for (idx i = 0; i < M; ++i) std::fill(C0.begin() + i * ldc, C0.begin() + i * ldc + N, nan);
  }
  float a(idx i, idx k) const { return ta == Trans::N ? A[i * lda + k] : A[k * lda + i]; }
  float b(idx k, idx j) const { return tb == Trans::N ? B[k * ldb + j] : B[j * ldb + k]; }

  std::vector<float> run(const envit::GemmEpilogue* epi = nullptr) const {
    PrecisionScope ps(Precision::bf16);
    std::vector<float> C = C0;
    envit::gemm<float>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc, epi);
    return C;
  }
  // The kernel set's run_bf16 called directly (single-threaded, as a thread tile).
  std::vector<float> run_set(const envit::GemmKernelSet& ks) const {
    std::vector<float> C = C0;
    ks.run_bf16(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc, nullptr, nullptr, 0, 0);
    return C;
  }

  // Bounds A, B (against the rounded operands) and C (against the unrounded ones); the padding of C.
  void check(const std::vector<float>& C, const char* what = "") const {
    std::size_t bad = 0;
    double worst = 0, worst_got = 0, worst_ref = 0;
    idx wi = -1, wj = -1;
    const double n = double(K + 8);
    std::vector<double> ra(static_cast<std::size_t>(K)), ua(static_cast<std::size_t>(K));
    for (idx i = 0; i < M; ++i) {
      for (idx k = 0; k < K; ++k) ua[std::size_t(k)] = a(i, k), ra[std::size_t(k)] = envit::round_to_bf16(a(i, k));
      for (idx j = 0; j < N; ++j) {
        double sr = 0, s = 0, sar = 0, sa = 0;
        for (idx k = 0; k < K; ++k) {
          const double bj = b(k, j), rbj = envit::round_to_bf16(b(k, j));
          sr += ra[std::size_t(k)] * rbj, sar += std::abs(ra[std::size_t(k)] * rbj);
          s += ua[std::size_t(k)] * bj, sa += std::abs(ua[std::size_t(k)] * bj);
        }
        const double c0 = beta == 0.0f ? 0.0 : double(C0[std::size_t(i * ldc + j)]);
        const double t = std::abs(double(alpha)) * sar + std::abs(double(beta) * c0);
        const double bound_a = n * kU * t / (1.0 - n * kU), bound_b = 16.0 * std::sqrt(n) * kU * t;
        const double tol_r = std::min(bound_a, bound_b) + 0x1p-100;
        const double tol_u = tol_r + std::abs(double(alpha)) * (0x1p-7 + 0x1p-16) * sa;
        const double ref_r = double(alpha) * sr + double(beta) * c0, ref = double(alpha) * s + double(beta) * c0;
        const double got = C[std::size_t(i * ldc + j)];
        const double r = std::isfinite(got) ? std::max(std::abs(got - ref_r) / tol_r, std::abs(got - ref) / tol_u)
                                            : 1e300;
        if (r > 1.0) ++bad;
        if (r > worst) worst = r, wi = i, wj = j, worst_got = got, worst_ref = ref_r;
      }
    }
    std::size_t pad_bad = 0;
    for (idx i = 0; i < M; ++i)
      for (idx j = N; j < ldc; ++j) pad_bad += C[std::size_t(i * ldc + j)] != -777.0f;
    INFO(what << "bf16 gemm " << tname(ta) << tname(tb) << " M=" << M << " N=" << N << " K=" << K << " alpha="
              << alpha << " beta=" << beta << " lda=" << lda << " ldb=" << ldb << " ldc=" << ldc << ": " << bad
              << " bad elements; worst |err|/tol = " << worst << " at (" << wi << ", " << wj << ") got " << worst_got
              << " ref (rounded operands) " << worst_ref << "; " << pad_bad << " padding elements of C overwritten");
    CHECK(bad == 0);
    CHECK(pad_bad == 0);
  }
};

struct AlphaBeta { float alpha, beta; };
const AlphaBeta kAlphaBeta[] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-1.5f, 0.25f}, {0.5f, 0.0f}, {2.0f, -1.0f}};
const Trans kTrans[] = {Trans::N, Trans::T};

bool bitwise_equal(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("bf16 gemm: the kernel set in use names its BF16 product", "[gemm][bf16]") {
  const envit::GemmKernelSet& ks = envit::gemm_kernels();
  const std::string name = ks.name, how = ks.bf16 ? ks.bf16 : "";
  INFO("kernel set " << name << ", bf16 " << how << ", BF16 register tile " << ks.bf16_mr << " x " << ks.bf16_nr);
  CHECK(ks.run_bf16 != nullptr);
  CHECK(ks.pack_weight_t_bf16 != nullptr);
  CHECK(ks.packed_weight_bf16_bytes != nullptr);
  CHECK(ks.bf16_mr > 0);
  CHECK(ks.bf16_nr > 0);
  const bool native = name == "amx" || name == "avx512_bf16";
  CHECK(ks.bf16_native == native);
  CHECK(how == (native ? name : std::string("emulated")));
  if (!native) CHECK((ks.bf16_mr == ks.mr && ks.bf16_nr == ks.nr));
  CHECK_THAT(envit::kernel_set_info(), Catch::Contains(native ? "bf16 products: native (" + name + ")"
                                                              : std::string("bf16 products: emulated")));
  // The peak probes (bench_gemm): x = y = 1 makes every chain count its rounds exactly.
  REQUIRE(ks.probe_fma != nullptr);
  double flops = 0;
  const long iters = 10;
  const double sum = ks.probe_fma(iters, 1.0f, 1.0f, &flops);
  const double width = flops / (2.0 * 12.0 * double(iters));  // 12 chains of `width` floats
  INFO("fp32 probe: " << flops << " flops, width " << width << ", sum " << sum);
  CHECK(width == double(envit::gemm_kernels().nr / (envit::gemm_kernels().nr >= 48 ? 3 : 2)));
  CHECK(sum == Approx(width * (12.0 * (1.0 + double(iters)) + 1e-3 * 66.0)).epsilon(1e-6));
  CHECK((ks.probe_bf16 != nullptr) == native);
  if (ks.probe_bf16) {
    const double s16 = ks.probe_bf16(iters, 1.0f, 1.0f, &flops);
    INFO("bf16 probe: " << flops << " flops, sum " << s16);
    if (name == "avx512_bf16") {  // 16 chains x 16 lanes, each + 2 per round (one pair of 1 * 1)
      CHECK(flops == 64.0 * 16 * double(iters));
      CHECK(s16 == Approx(16.0 * (16.0 * 2.0 * double(iters) + 1e-3 * 120.0)).epsilon(1e-6));
    } else {  // amx: four 16 x 16 tiles, each element + 32 per round; four elements summed
      CHECK(flops == 4.0 * 16384.0 * double(iters));
      CHECK(s16 == Approx(4.0 * 32.0 * double(iters)).epsilon(1e-6));
    }
  }
}

TEST_CASE("bf16 gemm: integer operands give exact results (every Trans, ragged sizes, K up to 3072)",
          "[gemm][bf16][ref]") {
  Guard g;
  const idx mr = envit::gemm_kernels().bf16_mr, nr = envit::gemm_kernels().bf16_nr;
  const idx Ms[] = {1, mr - 1, mr, mr + 1, 2 * mr + 3, 37};
  const idx Ns[] = {1, 15, 16, 17, nr - 1, nr + 1, 2 * nr + 5};
  const idx Ks[] = {1, 2, 3, 31, 32, 33, 64, 193, 769, 3072};
  std::uint64_t seed = 1;
  for (int threads : {1, 2}) {
    envit::set_num_threads(threads);
    for (Trans ta : kTrans)
      for (Trans tb : kTrans)
        for (idx M : Ms)
          for (idx N : Ns)
            for (idx K : Ks) {
              if (M * N * K > 2'000'000 && (N != 17 || M != 37)) continue;  // large K: a few shapes only
              Bf p(ta, tb, M, N, K, 1.0f, seed % 2 ? 1.0f : 0.0f, seed % 3 ? 0 : 5, seed, Fill::integers);
              ++seed;
              const std::vector<float> C = p.run();
              std::size_t bad = 0;
              idx wi = -1, wj = -1;
              double got = 0, want = 0;
              for (idx i = 0; i < M; ++i)
                for (idx j = 0; j < N; ++j) {
                  double s = p.beta == 0.0f ? 0.0 : double(p.C0[std::size_t(i * p.ldc + j)]);
                  for (idx k = 0; k < K; ++k) s += double(p.a(i, k)) * double(p.b(k, j));
                  if (double(C[std::size_t(i * p.ldc + j)]) != s && bad++ == 0)
                    wi = i, wj = j, got = C[std::size_t(i * p.ldc + j)], want = s;
                }
              INFO("threads=" << threads << " " << tname(ta) << tname(tb) << " M=" << M << " N=" << N << " K=" << K
                              << ": " << bad << " inexact elements, first at (" << wi << ", " << wj << ") got "
                              << got << " want " << want);
              CHECK(bad == 0);
            }
  }
}

TEST_CASE("bf16 gemm: within the FP32-accumulation bound of the BF16-rounded double reference",
          "[gemm][bf16][ref]") {
  Guard g;
  envit::set_num_threads(1);
  const idx mr = envit::gemm_kernels().bf16_mr, nr = envit::gemm_kernels().bf16_nr;
  std::uint64_t seed = 100;
  SECTION("sizes around the BF16 register tile") {
    const idx Ms[] = {1, mr - 1, mr, mr + 1, 2 * mr + 1, 3 * mr + 5};
    const idx Ns[] = {1, 7, 16, 17, nr - 1, nr, nr + 1, 2 * nr + 3};
    const idx Ks[] = {1, 2, 3, 7, 16, 31, 32, 33, 64, 65};
    for (Trans ta : kTrans)
      for (Trans tb : kTrans)
        for (idx M : Ms)
          for (idx N : Ns)
            for (idx K : Ks) {
              const AlphaBeta ab = kAlphaBeta[seed % 5];
              Bf p(ta, tb, M, N, K, ab.alpha, ab.beta, seed % 3 == 0 ? 3 : 0, seed);
              ++seed;
              p.check(p.run());
            }
  }
  SECTION("K up to 3072 (one and several K blocks), ragged M and N") {
    struct S { idx M, N, K; };
    // {9, 1100, 1600}: K in three blocks and N in two column blocks (the packed B block's limit)
    const S sizes[] = {{mr + 3, nr + 5, 192}, {29, 53, 767}, {2 * mr + 1, 33, 768}, {17, 2 * nr + 1, 769},
                       {31, 47, 1537},        {13, 37, 2000}, {mr + 1, nr + 1, 3072}, {37, 19, 3072},
                       {9, 1100, 1600}};
    for (const S& s : sizes)
      for (Trans ta : kTrans)
        for (Trans tb : kTrans) {
          const AlphaBeta ab = kAlphaBeta[seed % 5];
          Bf p(ta, tb, s.M, s.N, s.K, ab.alpha, ab.beta, seed % 2 ? 7 : 0, seed);
          ++seed;
          p.check(p.run());
        }
  }
  SECTION("two threads (row and column splits)") {
    envit::set_num_threads(2);
    struct S { Trans ta, tb; idx M, N, K; };
    const S sizes[] = {{Trans::N, Trans::T, 640, 96, 64},  {Trans::N, Trans::N, 97, 611, 50},
                       {Trans::T, Trans::N, 96, 160, 900}, {Trans::T, Trans::T, 203, 205, 77}};
    for (const S& s : sizes) {
      Bf p(s.ta, s.tb, s.M, s.N, s.K, 1.0f, seed % 2 ? 0.5f : 0.0f, 3, seed);
      ++seed;
      p.check(p.run());
    }
  }
}

TEST_CASE("bf16 gemm: K = 1 gives exactly the product of the operands rounded to nearest even",
          "[gemm][bf16][rounding]") {
  Guard g;
  // Ties (exactly half way between two BF16 values) go to the even one; just above or below a tie
  // goes to the nearer one. Each a * b with K = 1 is exact in FP32, so C must equal it bit for bit.
  const float vals[] = {1.0f + 0x1p-8f,  1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 0x1p-8f - 0x1p-20f,
                        -1.5f - 0x1p-8f, 3.14159265f,        -2.7182818f,               1e-3f,
                        65504.0f,        -0.33333334f,       0.1f,                      255.5f};
  const idx n = idx(std::size(vals));
  std::vector<float> A(vals, vals + n), B(vals, vals + n), C(std::size_t(n * n), 0.0f);
  PrecisionScope ps(Precision::bf16);
  envit::gemm<float>(Trans::N, Trans::N, n, n, 1, 1.0f, A.data(), 1, B.data(), n, 0.0f, C.data(), n);
  for (idx i = 0; i < n; ++i)
    for (idx j = 0; j < n; ++j) {
      const float want = envit::round_to_bf16(vals[i]) * envit::round_to_bf16(vals[j]);
      INFO("a=" << vals[i] << " b=" << vals[j]);
      CHECK(C[std::size_t(i * n + j)] == want);
    }
  CHECK(envit::round_to_bf16(1.0f + 0x1p-8f) == 1.0f);                   // tie, to even
  CHECK(envit::round_to_bf16(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);     // tie, to even (up)
  CHECK(envit::round_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f);  // above the tie
}

TEST_CASE("bf16 gemm: alpha == 0 or K == 0 reads neither A nor B; beta == 0 never reads C", "[gemm][bf16]") {
  Guard g;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const idx M = 19, N = 37, K = 45;
  std::vector<float> A(std::size_t(M * K), nan), B(std::size_t(K * N), nan), C(std::size_t(M * N), 2.0f);
  PrecisionScope ps(Precision::bf16);
  envit::gemm<float>(Trans::N, Trans::N, M, N, K, 0.0f, A.data(), K, B.data(), N, 0.5f, C.data(), N);
  for (float c : C) CHECK(c == 1.0f);
  envit::gemm<float>(Trans::T, Trans::T, M, N, 0, 1.0f, A.data(), M, B.data(), 1, 3.0f, C.data(), N);
  for (float c : C) CHECK(c == 3.0f);
  envit::gemm<float>(Trans::N, Trans::T, M, N, K, 0.0f, A.data(), K, B.data(), K, 0.0f, C.data(), N);
  for (float c : C) CHECK(c == 0.0f);
  Bf p(Trans::N, Trans::T, M, N, K, 1.0f, 0.0f, 2, 31);  // C0 = NaN, beta = 0
  p.check(p.run());
}

TEST_CASE("bf16 gemm: the fused epilogue sees final values, each element once", "[gemm][bf16][epilogue]") {
  Guard g;
  for (int threads : {1, 2}) {
    envit::set_num_threads(threads);
    for (const auto& sh : {std::array<idx, 3>{300, 97, 200}, std::array<idx, 3>{13, 611, 70},
                           std::array<idx, 3>{29, 50, 1537}, std::array<idx, 3>{13, 1100, 1600}}) {
      Bf p(Trans::N, Trans::T, sh[0], sh[1], sh[2], 1.0f, 0.5f, 1, 41);
      const std::vector<float> plain = p.run();
      std::vector<float> C = p.C0;
      std::vector<int> seen(std::size_t(p.M * p.N), 0);
      float* c = C.data();
      const idx ldc = p.ldc, N = p.N;
      auto fn = [&](idx r0, idx r1, idx c0, idx c1) {
        for (idx i = r0; i < r1; ++i)
          for (idx j = c0; j < c1; ++j) {
            c[i * ldc + j] = 2.0f * c[i * ldc + j] + 1.0f;
            ++seen[std::size_t(i * N + j)];
          }
      };
      const envit::GemmEpilogue epi = envit::make_epilogue(fn);
      {
        PrecisionScope ps(Precision::bf16);
        envit::gemm<float>(p.ta, p.tb, p.M, p.N, p.K, p.alpha, p.A.data(), p.lda, p.B.data(), p.ldb, p.beta, c, ldc,
                           &epi);
      }
      std::size_t wrong = 0, not_once = 0;
      for (idx i = 0; i < p.M; ++i)
        for (idx j = 0; j < p.N; ++j) {
          wrong += C[std::size_t(i * ldc + j)] != 2.0f * plain[std::size_t(i * ldc + j)] + 1.0f;
          not_once += seen[std::size_t(i * N + j)] != 1;
        }
      INFO("threads=" << threads << " M=" << p.M << " N=" << p.N << " K=" << p.K);
      CHECK(wrong == 0);
      CHECK(not_once == 0);
    }
  }
}

TEST_CASE("bf16 gemm_weight_t: a pre-packed weight gives bitwise the plain BF16 gemm's result",
          "[gemm][bf16][prepacked]") {
  Guard g;
  struct S { idx M, N, K; };
  // ragged N around the BF16 panel width, odd K (padded to k-pairs), two K blocks, batch-1 rows;
  // 200x200x2624 is split by columns on 2 threads when pre-packed (by rows in the plain gemm).
  const S sizes[] = {{1, 10, 192}, {50, 576, 192}, {50, 192, 768}, {13, 33, 17}, {97, 65, 1537},
                     {200, 31, 7}, {3, 1000, 800}, {64, 16, 1},    {200, 200, 2624}};
  std::uint64_t seed = 700;
  for (const S& s : sizes)
    for (int threads : {1, 2})
      for (const AlphaBeta& ab : {AlphaBeta{1.0f, 0.0f}, AlphaBeta{-1.5f, 0.25f}}) {
        envit::set_num_threads(threads);
        Bf p(Trans::N, Trans::T, s.M, s.N, s.K, ab.alpha, ab.beta, 0, seed++);  // W = B stored (N, K)
        const std::vector<float> plain = p.run();
        PrecisionScope ps(Precision::bf16);
        envit::PackedWeight<float> wp;
        wp.pack(p.B.data(), s.N, s.K);
        CHECK(wp.precision == Precision::bf16);
        std::vector<float> C = p.C0;
        envit::gemm_weight_t<float>(s.M, s.N, s.K, ab.alpha, p.A.data(), p.lda, p.B.data(), &wp, ab.beta, C.data(),
                                    p.ldc);
        INFO("M=" << s.M << " N=" << s.N << " K=" << s.K << " threads=" << threads << " alpha=" << ab.alpha);
        CHECK(bitwise_equal(plain, C));
        if (s.M * s.N * s.K < 3'000'000) p.check(C, "prepacked: ");
      }
}

TEST_CASE("bf16 PackedWeight: packed for one precision, refused under the other", "[gemm][bf16][prepacked][error]") {
  Guard g;
  envit::set_gemm_backend(GemmBackend::packed);
  Bf p(Trans::N, Trans::T, 4, 64, 32, 1.0f, 0.0f, 0, 5);
  envit::PackedWeight<float> w32, w16;
  w32.pack(p.B.data(), 64, 32, Precision::fp32);
  w16.pack(p.B.data(), 64, 32, Precision::bf16);
  std::vector<float> C(4 * 64);
  {
    PrecisionScope ps(Precision::bf16);
    CHECK_THROWS_WITH(envit::gemm_weight_t<float>(4, 64, 32, 1.0f, p.A.data(), 32, p.B.data(), &w32, 0.0f, C.data(),
                                                  64),
                      Catch::Contains("packed for fp32") && Catch::Contains("precision is bf16"));
    CHECK_NOTHROW(envit::gemm_weight_t<float>(4, 64, 32, 1.0f, p.A.data(), 32, p.B.data(), &w16, 0.0f, C.data(), 64));
  }
  CHECK_THROWS_WITH(envit::gemm_weight_t<float>(4, 64, 32, 1.0f, p.A.data(), 32, p.B.data(), &w16, 0.0f, C.data(),
                                                64),
                    Catch::Contains("packed for bf16") && Catch::Contains("precision is fp32"));
  // the default is the precision in effect; a re-pack switches (reusing the buffer)
  {
    PrecisionScope ps(Precision::bf16);
    w32.pack(p.B.data(), 64, 32);
  }
  CHECK(w32.precision == Precision::bf16);
  w32.pack(p.B.data(), 64, 32);
  CHECK(w32.precision == Precision::fp32);
  CHECK_NOTHROW(envit::gemm_weight_t<float>(4, 64, 32, 1.0f, p.A.data(), 32, p.B.data(), &w32, 0.0f, C.data(), 64));
}

TEST_CASE("bf16 gemm: bitwise reproducible across runs and across 1 vs 2 threads", "[gemm][bf16][determinism]") {
  Guard g;
  struct S { Trans ta, tb; idx M, N, K; };
  const S sizes[] = {{Trans::N, Trans::T, 643, 97, 200}, {Trans::T, Trans::N, 96, 197, 1600},
                     {Trans::N, Trans::N, 150, 701, 129}, {Trans::T, Trans::T, 77, 300, 333}};
  std::uint64_t seed = 400;
  for (const S& s : sizes) {
    Bf p(s.ta, s.tb, s.M, s.N, s.K, 0.75f, 0.5f, 0, seed++);
    envit::set_num_threads(2);
    const auto c2a = p.run(), c2b = p.run();
    envit::set_num_threads(1);
    const auto c1 = p.run();
    INFO("bf16 gemm " << tname(s.ta) << tname(s.tb) << " M=" << s.M << " N=" << s.N << " K=" << s.K);
    CHECK(bitwise_equal(c2a, c2b));
    CHECK(bitwise_equal(c1, c2a));
  }
}

// The same leading rows of A in calls of M rows, on 1 and 2 threads, plain and with a pre-packed
// weight: the shared rows of C are bitwise equal (early exit drops rows and must agree with the
// complete model).
TEST_CASE("bf16 gemm: a row's result does not depend on the other rows in the call", "[gemm][bf16][determinism]") {
  Guard g;
  const idx mr = envit::gemm_kernels().bf16_mr;
  const idx N = 100, Mmax = 4 * mr + 3;
  for (idx K : {idx(77), idx(1000)})
    for (Trans ta : kTrans)
      for (Trans tb : kTrans) {
        Bf big(ta, tb, Mmax, N, K, 1.0f, 0.0f, 0, 9);
        envit::set_num_threads(1);
        const std::vector<float> ref = big.run();
        for (int threads : {1, 2})
          for (idx M : {idx(1), idx(2), idx(8), mr - 1, mr, mr + 1, Mmax - 5, Mmax}) {
            envit::set_num_threads(threads);
            std::vector<float> A(big.A), C(std::size_t(M * N), 0.0f);
            const idx lda = ta == Trans::N ? big.lda : M;
            if (ta == Trans::T)
              for (idx k = 0; k < K; ++k)
                for (idx i = 0; i < M; ++i) A[std::size_t(k * lda + i)] = big.A[std::size_t(k * big.lda + i)];
            PrecisionScope ps(Precision::bf16);
            envit::gemm<float>(ta, tb, M, N, K, 1.0f, A.data(), lda, big.B.data(), big.ldb, 0.0f, C.data(), N);
            INFO("bf16 gemm " << tname(ta) << tname(tb) << " M=" << M << " K=" << K << " threads=" << threads);
            for (idx i = 0; i < M; ++i)
              REQUIRE(std::memcmp(C.data() + i * N, ref.data() + i * big.ldc, sizeof(float) * std::size_t(N)) == 0);
            if (ta == Trans::N && tb == Trans::T) {  // pre-packed weight: the same rows again
              envit::PackedWeight<float> wp;
              wp.pack(big.B.data(), N, K);
              std::vector<float> C2(std::size_t(M * N), 0.0f);
              envit::gemm_weight_t<float>(M, N, K, 1.0f, A.data(), lda, big.B.data(), &wp, 0.0f, C2.data(), N);
              REQUIRE(C2 == C);
            }
          }
      }
}

TEST_CASE("bf16 gemm: the float backend setting does not change the BF16 product; double ignores the precision",
          "[gemm][bf16]") {
  Guard g;
  envit::set_num_threads(2);
  Bf p(Trans::N, Trans::T, 131, 67, 300, 1.5f, -0.5f, 2, 600);
  envit::set_gemm_backend(GemmBackend::packed);
  const std::vector<float> packed = p.run();
  envit::set_gemm_backend(GemmBackend::eigen);
  CHECK(bitwise_equal(packed, p.run()));
  // double: the same bits under either precision
  std::vector<double> A(p.A.begin(), p.A.end()), B(p.B.begin(), p.B.end()), C1(p.C0.begin(), p.C0.end()), C2 = C1;
  envit::gemm<double>(p.ta, p.tb, p.M, p.N, p.K, 1.5, A.data(), p.lda, B.data(), p.ldb, -0.5, C1.data(), p.ldc);
  {
    PrecisionScope ps(Precision::bf16);
    envit::gemm<double>(p.ta, p.tb, p.M, p.N, p.K, 1.5, A.data(), p.lda, B.data(), p.ldb, -0.5, C2.data(), p.ldc);
  }
  CHECK(std::memcmp(C1.data(), C2.data(), C1.size() * sizeof(double)) == 0);
}

TEST_CASE("bf16 gemm: no allocation once the pack buffers are warm", "[gemm][bf16][alloc]") {
  Guard g;
  envit::set_gemm_backend(GemmBackend::packed);
  namespace et = envit::testing;
  for (int threads : {1, 2}) {
    envit::set_num_threads(threads);
    Bf big(Trans::N, Trans::T, 300, 400, 900, 1.0f, 0.0f, 0, 500);
    Bf small(Trans::T, Trans::N, 50, 70, 91, 1.0f, 1.0f, 0, 501);
    std::vector<float> C = big.C0, Cs = small.C0;
    PrecisionScope ps(Precision::bf16);
    envit::PackedWeight<float> wp;
    wp.pack(big.B.data(), big.N, big.K);
    auto call = [&] {
      envit::gemm<float>(big.ta, big.tb, big.M, big.N, big.K, 1.0f, big.A.data(), big.lda, big.B.data(), big.ldb,
                         0.0f, C.data(), big.ldc);
      envit::gemm<float>(small.ta, small.tb, small.M, small.N, small.K, 1.0f, small.A.data(), small.lda,
                         small.B.data(), small.ldb, 1.0f, Cs.data(), small.ldc);
      envit::gemm_weight_t<float>(big.M, big.N, big.K, 1.0f, big.A.data(), big.lda, big.B.data(), &wp, 0.0f,
                                  C.data(), big.ldc);
    };
    call(), call();  // warm-up: buffers and the OpenMP team
    et::g_allocs = 0;
    et::g_count_allocs = true;
    call(), call();
    et::g_count_allocs = false;
    INFO("threads=" << threads << ": " << et::g_allocs.load() << " operator new calls in steady state");
    CHECK(et::g_allocs.load() == 0);
  }
}

// ---- every kernel set this CPU runs, called directly ---------------------------------------------

// Each runnable set's run_bf16 (single-threaded, as gemm's tiles call it) within the bounds, bitwise
// repeatable, its pre-packed path bitwise equal to its plain path; an emulated set's BF16 product
// bitwise equal to its FP32 product on operands rounded beforehand (the FP32 reference fed
// BF16-rounded operands that the model tests compare against).
TEST_CASE("bf16 kernel sets: every runnable set's BF16 product", "[gemm][bf16][dispatch][ref]") {
  const envit::detail::KernelSetChoice c = envit::detail::runnable_kernel_sets();
  struct S { Trans ta, tb; idx M, N, K; };
  const S sizes[] = {{Trans::N, Trans::T, 29, 53, 77},   {Trans::T, Trans::N, 17, 97, 200},
                     {Trans::N, Trans::N, 113, 49, 769}, {Trans::T, Trans::T, 9, 31, 5},
                     {Trans::N, Trans::T, 50, 200, 192}, {Trans::N, Trans::T, 33, 70, 3072}};
  std::uint64_t seed = 900;
  for (int si = 0; si < c.count; ++si) {
    const envit::GemmKernelSet& ks = *c.sets[si];
    for (const S& s : sizes) {
      const std::uint64_t sd = seed++;
      const AlphaBeta ab = kAlphaBeta[sd % 5];
      Bf p(s.ta, s.tb, s.M, s.N, s.K, ab.alpha, ab.beta, sd % 2 ? 3 : 0, sd);
      INFO("kernel set " << ks.name << " (bf16 " << ks.bf16 << ", " << ks.bf16_mr << " x " << ks.bf16_nr << ")");
      const std::vector<float> c1 = p.run_set(ks), c2 = p.run_set(ks);
      p.check(c1, "direct: ");
      CHECK(bitwise_equal(c1, c2));
      // FP32 product of the same set on operands rounded beforehand
      Bf r = p;
      for (float& x : r.A) x = envit::round_to_bf16(x);
      for (float& x : r.B) x = envit::round_to_bf16(x);
      std::vector<float> c3 = r.C0;
      ks.run(r.ta, r.tb, r.M, r.N, r.K, r.alpha, r.A.data(), r.lda, r.B.data(), r.ldb, r.beta, c3.data(), r.ldc,
             nullptr, nullptr, 0, 0);
      if (!ks.bf16_native) CHECK(bitwise_equal(c1, c3));
      else r.check(c3, "fp32 on rounded operands: ");  // the reference the native product is held to
      if (s.ta == Trans::N && s.tb == Trans::T) {
        std::vector<float> W(std::size_t(s.N * s.K));
        for (idx j = 0; j < s.N; ++j)
          for (idx k = 0; k < s.K; ++k) W[std::size_t(j * s.K + k)] = p.B[std::size_t(j * p.ldb + k)];
        auto panels = envit::aligned_buffer<unsigned char>(ks.packed_weight_bf16_bytes(s.N, s.K));
        ks.pack_weight_t_bf16(panels.get(), W.data(), s.N, s.K);
        std::vector<float> c4 = p.C0;
        ks.run_bf16(Trans::N, Trans::T, p.M, p.N, p.K, p.alpha, p.A.data(), p.lda, nullptr, s.K, p.beta, c4.data(),
                    p.ldc, panels.get(), nullptr, 0, 0);
        CHECK(bitwise_equal(c1, c4));
      }
    }
  }
}

// The AVX-512 family (avx512, avx512_bf16, amx) shares one FP32 GEMM and one set of row kernels:
// their FP32 results are bitwise equal, so the FP32 results of the default set do not depend on
// whether the CPU has BF16 instructions.
TEST_CASE("kernel sets: the FP32 results of avx512, avx512_bf16 and amx are bitwise equal",
          "[gemm][bf16][dispatch][family]") {
  const envit::detail::KernelSetChoice c = envit::detail::runnable_kernel_sets();
  const envit::GemmKernelSet* base = nullptr;
  std::vector<const envit::GemmKernelSet*> family;
  for (int i = 0; i < c.count; ++i) {
    const std::string n = c.sets[i]->name;
    if (n == "avx512") base = c.sets[i];
    if (n == "avx512_bf16" || n == "amx") family.push_back(c.sets[i]);
  }
  if (!base || family.empty()) {
    if (std::getenv("ENVIT_TEST_SKIP_EMPTY")) {  // the ctest entry of this case alone: a skip
      std::printf("SKIPPED: this CPU runs no AVX-512 BF16 set next to avx512: nothing to compare\n");
      std::fflush(stdout);
      std::_Exit(77);
    }
    WARN("this CPU runs " << (base ? "avx512 but neither avx512_bf16 nor amx" : "no AVX-512 set")
                          << ": nothing to compare");
    return;
  }
  struct S { Trans ta, tb; idx M, N, K; };
  const S sizes[] = {{Trans::N, Trans::T, 29, 53, 77}, {Trans::T, Trans::N, 17, 97, 200},
                     {Trans::N, Trans::N, 113, 49, 769}, {Trans::T, Trans::T, 50, 200, 1537}};
  std::uint64_t seed = 1200;
  for (const envit::GemmKernelSet* ks : family) {
    INFO("kernel set " << ks->name << " against avx512");
    CHECK((ks->mr == base->mr && ks->nr == base->nr && ks->kc == base->kc));
    for (const S& s : sizes) {
      Bf p(s.ta, s.tb, s.M, s.N, s.K, 0.75f, 0.5f, 3, seed++);
      std::vector<float> c1 = p.C0, c2 = p.C0;
      base->run(p.ta, p.tb, p.M, p.N, p.K, p.alpha, p.A.data(), p.lda, p.B.data(), p.ldb, p.beta, c1.data(), p.ldc,
                nullptr, nullptr, 0, 0);
      ks->run(p.ta, p.tb, p.M, p.N, p.K, p.alpha, p.A.data(), p.lda, p.B.data(), p.ldb, p.beta, c2.data(), p.ldc,
              nullptr, nullptr, 0, 0);
      CHECK(bitwise_equal(c1, c2));
    }
    // the row kernels: softmax, LayerNorm and GELU rows
    const idx rows = 7, D = 197;
    const std::vector<float> x = envit::testing::random_vec<float>(std::size_t(rows * D), 77, -30.0, 30.0);
    const std::vector<float> gamma = envit::testing::random_vec<float>(std::size_t(D), 78);
    const std::vector<float> beta = envit::testing::random_vec<float>(std::size_t(D), 79);
    std::vector<float> y1(x.size()), y2(x.size()), m1(rows), m2(rows), r1(rows), r2(rows);
    base->vec.softmax_forward(y1.data(), x.data(), rows, D, 0.125f);
    ks->vec.softmax_forward(y2.data(), x.data(), rows, D, 0.125f);
    CHECK(bitwise_equal(y1, y2));
    base->vec.layernorm_forward(y1.data(), m1.data(), r1.data(), x.data(), gamma.data(), beta.data(), rows, D, 1e-6f);
    ks->vec.layernorm_forward(y2.data(), m2.data(), r2.data(), x.data(), gamma.data(), beta.data(), rows, D, 1e-6f);
    CHECK(bitwise_equal(y1, y2));
    CHECK((bitwise_equal(m1, m2) && bitwise_equal(r1, r2)));
    base->vec.gelu_forward(y1.data(), x.data(), rows * D);
    ks->vec.gelu_forward(y2.data(), x.data(), rows * D);
    CHECK(bitwise_equal(y1, y2));
  }
}
