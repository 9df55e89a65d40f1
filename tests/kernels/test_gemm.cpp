// tests/kernels/test_gemm.cpp — envit::gemm against a naive double reference: the packed float backend
// (all four Trans combinations, alpha/beta variants, sizes around the register tile, the SIMD width
// and the cache blocks, padded leading dimensions, beta == 0 over NaN garbage, K == 0), the Eigen
// backend for float and double, bitwise reproducibility (also of A read in place against A packed),
// row invariance (a row's result independent of the call's other rows) for every backend and type,
// thread tiling, the no-allocation property of the pack buffers, and the kernel sets
// (kernels/dispatch.hpp): each runnable set against the reference in one process, ENVIT_ISA's
// choice and its errors. Built as test_gemm (linked with envit::dispatch; tests/gemm.cmake runs it
// once per kernel set the host can run, ENVIT_ISA=avx512|avx2|baseline) and test_gemm_native (the
// header-only compile-time path with -march=x86-64-v4, when the host runs it). [slow]: the three
// cases with large double references (seconds natively, 12-36 s each under qemu-aarch64; the subset
// scripts/cross_arm64.sh runs leaves them out).
//
// Tolerance (float vs double reference), per element of C:
//   |c - ref| <= 1e-6 + 1e-5 * sqrt(1 + K/64) * (|alpha| * sum_k |a_ik| |b_kj| + |beta| * |c0_ij|)
// The float rounding error of a K-term FMA chain is at most K * 2^-24 * sum|a||b| and, with
// errors of random sign, typically sqrt(K) * 2^-24 * sum|a||b|; the bound above is ~10x that
// typical size for every K used here, and any indexing or packing error (a wrong or missing term)
// is of the order of a whole |a||b| term, far above it.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "envit/kernels/gemm.hpp"
#include "testing.hpp"

// ---- counting global operator new (for the steady-state no-allocation check) ---------------------
namespace {
std::atomic<long> g_news{0};
}
void* operator new(std::size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, std::align_val_t al) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  std::size_t a = static_cast<std::size_t>(al);
  if (void* p = std::aligned_alloc(a, (n + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t al) { return ::operator new(n, al); }
// GCC 12 flags free() in these replacements as mismatched with operator new once both are inlined
// into a caller (-Wmismatched-new-delete); the pair is matched: every operator new above mallocs.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

#if defined(ENVIT_DISPATCH)
#define ARCH_NAME "dispatched: "
#elif defined(__AVX512F__)
#define ARCH_NAME "avx512: "
#elif defined(__AVX2__)
#define ARCH_NAME "avx2: "
#else
#define ARCH_NAME "baseline: "
#endif

namespace {

using envit::GemmBackend;
using envit::Trans;
using idx = std::ptrdiff_t;

const char* tname(Trans t) { return t == Trans::N ? "N" : "T"; }

// One GEMM problem with padded leading dimensions. Padding of A and B holds NaN (reading it would
// poison C); padding of C holds a sentinel that must survive.
template <class T>
struct Problem {
  Trans ta, tb;
  idx M, N, K, lda, ldb, ldc;
  T alpha, beta;
  std::vector<T> A, B, C0;

  Problem(Trans ta_, Trans tb_, idx M_, idx N_, idx K_, T alpha_, T beta_, idx pad, std::uint64_t seed)
      : ta(ta_), tb(tb_), M(M_), N(N_), K(K_), alpha(alpha_), beta(beta_) {
    const idx ar = ta == Trans::N ? M : K, ac = ta == Trans::N ? K : M;  // stored shape of A
    const idx br = tb == Trans::N ? K : N, bc = tb == Trans::N ? N : K;
    lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    if (lda == 0) lda = 1;
    if (ldb == 0) ldb = 1;
    if (ldc == 0) ldc = 1;
    const T nan = std::numeric_limits<T>::quiet_NaN();
    A.assign(static_cast<std::size_t>(std::max<idx>(ar * lda, 1)), nan);
    B.assign(static_cast<std::size_t>(std::max<idx>(br * ldb, 1)), nan);
    C0.assign(static_cast<std::size_t>(std::max<idx>(M * ldc, 1)), T(-777));
    auto fill_rows = [&](std::vector<T>& v, idx rows, idx cols, idx ld, std::uint64_t s) {
      for (idx r = 0; r < rows; ++r)
        envit::testing::fill_uniform(v.data() + r * ld, static_cast<std::size_t>(cols), s * 1000003 + r);
    };
    fill_rows(A, ar, ac, lda, seed * 3 + 1);
    fill_rows(B, br, bc, ldb, seed * 3 + 2);
    if (beta != T(0)) fill_rows(C0, M, N, ldc, seed * 3 + 3);
    else
      for (idx i = 0; i < M; ++i)
        for (idx j = 0; j < N; ++j) C0[i * ldc + j] = nan;  // beta == 0 must ignore C
  }
  double a(idx i, idx k) const { return ta == Trans::N ? A[i * lda + k] : A[k * lda + i]; }
  double b(idx k, idx j) const { return tb == Trans::N ? B[k * ldb + j] : B[j * ldb + k]; }

  std::vector<T> run() const {
    std::vector<T> C = C0;
    envit::gemm<T>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
    return C;
  }

  // Compares C with the double reference; reports the first failure and the worst ratio.
  void check(const std::vector<T>& C, double rel) const {
    const double scale = rel * std::sqrt(1.0 + double(K) / 64.0);
    std::size_t bad = 0;
    double worst = 0, worst_got = 0, worst_ref = 0;
    idx wi = -1, wj = -1;
    for (idx i = 0; i < M; ++i)
      for (idx j = 0; j < N; ++j) {
        double s = 0, sa = 0;
        for (idx k = 0; k < K; ++k) {
          s += a(i, k) * b(k, j);
          sa += std::abs(a(i, k) * b(k, j));
        }
        const double c0 = beta == T(0) ? 0.0 : double(C0[i * ldc + j]);
        const double ref = double(alpha) * s + double(beta) * c0;
        const double tol = 1e-6 + scale * (std::abs(double(alpha)) * sa + std::abs(double(beta) * c0));
        const double got = C[i * ldc + j];
        const double r = std::isfinite(got) ? std::abs(got - ref) / tol : 1e300;
        if (r > 1.0) ++bad;
        if (r > worst) worst = r, wi = i, wj = j, worst_got = got, worst_ref = ref;
      }
    std::size_t pad_bad = 0;
    for (idx i = 0; i < M; ++i)
      for (idx j = N; j < ldc; ++j) pad_bad += C[i * ldc + j] != T(-777);
    INFO("gemm " << tname(ta) << tname(tb) << " M=" << M << " N=" << N << " K=" << K << " alpha="
                 << alpha << " beta=" << beta << " lda=" << lda << " ldb=" << ldb << " ldc=" << ldc
                 << ": " << bad << " bad elements; worst |err|/tol = " << worst << " at (" << wi
                 << ", " << wj << ") got " << worst_got << " ref " << worst_ref << "; "
                 << pad_bad << " padding elements of C overwritten");
    CHECK(bad == 0);
    CHECK(pad_bad == 0);
  }
};

struct AlphaBeta { float alpha, beta; };
const AlphaBeta kAlphaBeta[] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-1.5f, 0.25f}, {0.5f, 0.0f}, {2.0f, -1.0f}};
const Trans kTrans[] = {Trans::N, Trans::T};

struct BackendGuard {  // restores backend and thread count after a test
  GemmBackend b = envit::gemm_backend();
  int t = envit::num_threads();
  ~BackendGuard() { envit::set_gemm_backend(b), envit::set_num_threads(t); }
};

}  // namespace

TEST_CASE(ARCH_NAME "gemm: packed is the default float backend", "[gemm]") {
  CHECK(envit::gemm_backend() == GemmBackend::packed);
  // FP32 register tiles: AVX-512 (avx512, avx512_bf16, amx) 8 x 48 (3 zmm per row), AVX2 6 x 16,
  // baseline (SSE2/NEON) 6 x 8.
  const std::string set = envit::kernel_set_name();
  const int mr = envit::gemm_kernels().mr, nr = envit::gemm_kernels().nr;
  INFO("kernel set " << set << ": " << mr << " x " << nr);
  if (set == "avx512" || set == "avx512_bf16" || set == "amx") CHECK((mr == 8 && nr == 48));  // one FP32 kernel
  if (set == "avx2") CHECK((mr == 6 && nr == 16));
  if (set == "baseline") CHECK((mr == 6 && nr == 8));
}

TEST_CASE(ARCH_NAME "gemm packed: small sizes around the register tile and SIMD width", "[gemm][ref]") {
  BackendGuard g;
  envit::set_gemm_backend(GemmBackend::packed);
  envit::set_num_threads(1);
  const idx Ms[] = {1, 5, 6, 7, 13, 14, 15, 16, 17, 28, 29, 33};
  const idx Ns[] = {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 49, 64, 65, 96, 97};
  const idx Ks[] = {0, 1, 2, 3, 7, 16, 17, 31, 64};
  std::uint64_t seed = 1;
  for (Trans ta : kTrans)
    for (Trans tb : kTrans)
      for (idx M : Ms)
        for (idx N : Ns)
          for (idx K : Ks) {
            const AlphaBeta ab = kAlphaBeta[seed % 5];
            const idx pad = (seed % 3 == 0) ? 3 : 0;
            Problem<float> p(ta, tb, M, N, K, ab.alpha, ab.beta, pad, seed++);
            p.check(p.run(), 1e-5);
          }
}

TEST_CASE(ARCH_NAME "gemm packed: every ragged row count runs its short register tile correctly",
          "[gemm][ref]") {
  BackendGuard g;
  envit::set_gemm_backend(GemmBackend::packed);
  envit::set_num_threads(1);
  // M = 1 .. 2 MR + 1: the last row panel takes every size below the register tile once.
  const idx mr = envit::gemm_kernels().mr;
  std::uint64_t seed = 50;
  for (Trans ta : kTrans)
    for (Trans tb : kTrans)
      for (idx M = 1; M <= 2 * mr + 1; ++M) {
        const AlphaBeta ab = kAlphaBeta[seed % 5];
        Problem<float> p(ta, tb, M, 2 * envit::gemm_kernels().nr + 3, 37, ab.alpha, ab.beta, seed % 2 ? 3 : 0, seed);
        ++seed;
        p.check(p.run(), 1e-5);
      }
}

// The same leading rows of A in calls of M rows, on 1 and 2 threads (row or column splits): the
// shared rows of C are bitwise equal. M runs through the backend's ragged row panels (the packed
// kernel's shorter register tiles; Eigen's leftover rows, which gemm_eigen_serial pads to a full
// panel) and K through one and several of Eigen's K blocks. Model code relies on this (sub-batches,
// the shared-prefix teacher, early-exit compaction against the all-exits simulation).
template <class T>
void check_row_invariance(GemmBackend backend, idx mr) {
  BackendGuard g;
  envit::set_gemm_backend(backend);
  const idx N = 100, Mmax = 4 * mr + 3;
  for (idx K : {idx(77), idx(1000)})
    for (Trans ta : kTrans)
      for (Trans tb : kTrans) {
        Problem<T> big(ta, tb, Mmax, N, K, T(1), T(0), 0, 9);
        envit::set_num_threads(1);
        const std::vector<T> ref = big.run();
        for (int threads : {1, 2})
          for (idx M : {idx(1), idx(2), idx(8), mr - 1, mr, mr + 1, Mmax - 5, Mmax}) {
            envit::set_num_threads(threads);
            std::vector<T> A(big.A), C(static_cast<std::size_t>(M * N), T(0));
            const idx lda = ta == Trans::N ? big.lda : M;  // A stored (K, M) when transposed: take M columns
            if (ta == Trans::T)
              for (idx k = 0; k < K; ++k)
                for (idx i = 0; i < M; ++i) A[k * lda + i] = big.A[k * big.lda + i];
            envit::gemm<T>(ta, tb, M, N, K, T(1), A.data(), lda, big.B.data(), big.ldb, T(0), C.data(), N);
            INFO("gemm " << tname(ta) << tname(tb) << " M=" << M << " K=" << K << " threads=" << threads);
            for (idx i = 0; i < M; ++i)
              REQUIRE(std::memcmp(C.data() + i * N, ref.data() + i * big.ldc, sizeof(T) * std::size_t(N)) == 0);
          }
      }
}

TEST_CASE(ARCH_NAME "gemm packed: a row's result does not depend on the other rows in the call",
          "[gemm][determinism]") {
  check_row_invariance<float>(GemmBackend::packed, envit::gemm_kernels().mr);
}

TEST_CASE(ARCH_NAME "gemm Eigen: a row's result does not depend on the other rows in the call",
          "[gemm][determinism][eigen]") {
  SECTION("float") {
    check_row_invariance<float>(GemmBackend::eigen, Eigen::internal::gebp_traits<float, float>::mr);
  }
  SECTION("double") {
    check_row_invariance<double>(GemmBackend::eigen, Eigen::internal::gebp_traits<double, double>::mr);
  }
}

// A row-major A whose row stride is at most the packed panel's (KC, ENVIT_GEMM_KC = 768), with K in one
// K block, is read in place instead of packed: bitwise the packed path's results (the same A with a
// stride above KC is packed), plain and pre-packed B, ragged row panels (packed) included, 1 and 2
// threads; and right vs the reference. Strides: KC (a compile-time offset in the micro-kernel) and
// others (a run-time stride), 8-aligned or not.
TEST_CASE(ARCH_NAME "gemm packed: A read in place gives the packed path's bits", "[gemm][determinism][slow]") {
  BackendGuard g;
  envit::set_gemm_backend(GemmBackend::packed);
  const idx KC = envit::gemm_kernels().kc;
  for (idx AS : {idx(100), idx(192), idx(576), KC})
  for (idx K : {AS, AS - 64})
    for (idx M : {idx(1), idx(13), idx(envit::gemm_kernels().mr), idx(29), idx(112), idx(250)})
      for (Trans tb : kTrans)
        for (int threads : {1, 2}) {
          envit::set_num_threads(threads);
          const idx N = 97;
          Problem<float> p(Trans::N, tb, M, N, K, 1.0f, 0.0f, AS - K, 17);  // lda = AS: in place
          REQUIRE(p.lda == AS);
          Problem<float> q(Trans::N, tb, M, N, K, 1.0f, 0.0f, KC - K + 3, 17);  // lda > KC: packed
          for (idx i = 0; i < M; ++i)
            for (idx k = 0; k < K; ++k) q.A[i * q.lda + k] = p.A[i * p.lda + k];
          q.B = p.B;
          q.ldb = p.ldb;
          INFO("lda=" << AS << " K=" << K << " M=" << M << " tb=" << tname(tb) << " threads=" << threads);
          const std::vector<float> cp = p.run(), cq = q.run();
          for (idx i = 0; i < M; ++i)
            REQUIRE(std::memcmp(cp.data() + i * p.ldc, cq.data() + i * q.ldc, sizeof(float) * std::size_t(N)) == 0);
          if (threads == 1 && tb == Trans::N) p.check(cp, 1e-5);
          if (tb == Trans::T && K == AS) {  // pre-packed weight W = B stored (N, K), ldb = K
            envit::PackedWeight<float> w;
            w.pack(p.B.data(), N, K);
            std::vector<float> c1(std::size_t(M * N)), c2(std::size_t(M * N));
            envit::gemm_weight_t<float>(M, N, K, 1.0f, p.A.data(), p.lda, p.B.data(), &w, 0.0f, c1.data(), N);
            envit::gemm_weight_t<float>(M, N, K, 1.0f, q.A.data(), q.lda, p.B.data(), &w, 0.0f, c2.data(), N);
            REQUIRE(c1 == c2);
            for (idx i = 0; i < M; ++i)
              REQUIRE(std::memcmp(c1.data() + i * N, cp.data() + i * p.ldc, sizeof(float) * std::size_t(N)) == 0);
          }
        }
  envit::set_num_threads(1);
}

TEST_CASE(ARCH_NAME "gemm packed: alpha/beta variants on ragged sizes", "[gemm][ref]") {
  BackendGuard g;
  envit::set_gemm_backend(GemmBackend::packed);
  envit::set_num_threads(1);
  const AlphaBeta extra[] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-1.5f, 0.25f}, {0.5f, 0.0f},
                             {2.0f, -1.0f}, {0.0f, 0.0f}, {0.0f, 2.0f}, {1.0f, -0.5f}};
  std::uint64_t seed = 100;
  for (Trans ta : kTrans)
    for (Trans tb : kTrans)
      for (AlphaBeta ab : extra)
        for (idx pad : {0, 5}) {
          Problem<float> p(ta, tb, 31, 47, 127, ab.alpha, ab.beta, pad, seed++);
          p.check(p.run(), 1e-5);
        }
}

TEST_CASE(ARCH_NAME "gemm packed: sizes around the cache blocks (MC, KC, NB) and large ragged sizes",
          "[gemm][ref][slow]") {
  BackendGuard g;
  envit::set_gemm_backend(GemmBackend::packed);
  envit::set_num_threads(1);
  struct S { idx M, N, K; };
  // KC = 768 (K = 769, 1537: 2 and 3 K blocks), MC = 112 (M = 113, 225), packed B block of
  // 262144 floats (N = 513 with K = 769 needs two column blocks), plus odd primes-ish sizes.
  // With op(A) transposed K blocks are <= KC_TA = 192 (K = 200, 513, 769: 2, 3 and 5 blocks), and
  // {40, 1500, 400} then needs two column blocks.
  const S sizes[] = {{127, 65, 200},  {200, 127, 513}, {113, 200, 769}, {225, 513, 769},
                     {65, 33, 1537},  {14, 32, 768},   {112, 352, 767}, {33, 1100, 100},
                     {1, 1000, 800},  {1000, 1, 800},  {511, 7, 31},    {40, 1500, 400}};
  std::uint64_t seed = 200;
  for (const S& s : sizes)
    for (Trans ta : kTrans)
      for (Trans tb : kTrans) {
        const std::uint64_t sd = seed++;
        const AlphaBeta ab = kAlphaBeta[sd % 5];
        Problem<float> p(ta, tb, s.M, s.N, s.K, ab.alpha, ab.beta, sd % 2 ? 7 : 0, sd);
        p.check(p.run(), 1e-5);
      }
}

TEST_CASE(ARCH_NAME "gemm packed: two threads (row and column splits) match the reference",
          "[gemm][ref][threads]") {
  BackendGuard g;
  envit::set_gemm_backend(GemmBackend::packed);
  envit::set_num_threads(2);
  struct S { Trans ta, tb; idx M, N, K; };
  // Shapes big enough to be split: tall (rows), wide (columns), weight-gradient-like (huge K).
  const S sizes[] = {{Trans::N, Trans::T, 640, 96, 64},  {Trans::N, Trans::N, 97, 611, 50},
                     {Trans::T, Trans::N, 96, 160, 900}, {Trans::T, Trans::T, 203, 205, 77},
                     {Trans::N, Trans::T, 333, 17, 300}};
  std::uint64_t seed = 300;
  for (const S& s : sizes) {
    const std::uint64_t sd = seed++;
    Problem<float> p(s.ta, s.tb, s.M, s.N, s.K, 1.0f, sd % 2 ? 0.5f : 0.0f, 3, sd);
    p.check(p.run(), 1e-5);
  }
}

TEST_CASE(ARCH_NAME "gemm packed: bitwise reproducible across runs and across 1 vs 2 threads",
          "[gemm][determinism]") {
  BackendGuard g;
  envit::set_gemm_backend(GemmBackend::packed);
  struct S { Trans ta, tb; idx M, N, K; };
  const S sizes[] = {{Trans::N, Trans::T, 643, 97, 200}, {Trans::T, Trans::N, 96, 197, 1600},
                     {Trans::N, Trans::N, 150, 701, 129}};
  std::uint64_t seed = 400;
  for (const S& s : sizes) {
    Problem<float> p(s.ta, s.tb, s.M, s.N, s.K, 0.75f, 0.5f, 0, seed++);
    envit::set_num_threads(2);
    const auto c2a = p.run(), c2b = p.run();
    envit::set_num_threads(1);
    const auto c1 = p.run();
    INFO("gemm " << tname(s.ta) << tname(s.tb) << " M=" << s.M << " N=" << s.N << " K=" << s.K);
    CHECK(std::memcmp(c2a.data(), c2b.data(), c2a.size() * sizeof(float)) == 0);
    // Holds by construction: thread tiles start at multiples of the register tile, so every
    // element sees the same K blocking and FMA chain whatever the thread count.
    CHECK(std::memcmp(c1.data(), c2a.data(), c1.size() * sizeof(float)) == 0);
  }
}

TEST_CASE(ARCH_NAME "gemm_weight_t: a pre-packed weight gives bitwise the plain gemm's result",
          "[gemm][prepacked][slow]") {
  BackendGuard g;
  envit::set_gemm_backend(GemmBackend::packed);
  struct S { idx M, N, K; };
  // ragged N (panels of NR), K across the SIMD width and past KC (two K blocks), batch-1 rows
  // 200x200x2624: a weight of 2^19 floats, split by columns on 2 threads (the plain gemm splits it
  // by rows); 640x480x96 and 520x192x96: smaller weights, split by rows.
  const S sizes[] = {{1, 10, 192}, {50, 576, 192}, {50, 192, 768}, {13, 33, 17},
                     {97, 65, 1537}, {200, 31, 7}, {3, 1000, 800}, {64, 16, 1}, {250, 97, 40},
                     {200, 200, 2624}, {640, 480, 96}, {520, 192, 96}};
  const idx mr = envit::gemm_kernels().mr, nr = envit::gemm_kernels().nr;
  if (nr == 48) {  // the AVX-512 tile: the split decisions the sizes above are chosen to exercise
    CHECK(envit::detail::gemm_split_rows(200, 200, 2624, 2, mr, nr, false));
    CHECK_FALSE(envit::detail::gemm_split_rows(200, 200, 2624, 2, mr, nr, true));
    CHECK(envit::detail::gemm_split_rows(640, 480, 96, 2, mr, nr, true));
    CHECK(envit::detail::gemm_split_rows(520, 192, 96, 2, mr, nr, true));
    CHECK(envit::detail::gemm_split_rows(6400, 768, 192, 2, mr, nr, true));     // tiny28's fc1
    CHECK_FALSE(envit::detail::gemm_split_rows(3152, 3072, 768, 2, mr, nr, true));  // ViT-B/16's fc1
  }
  std::uint64_t seed = 700;
  for (const S& s : sizes)
    for (int threads : {1, 2})
      for (const AlphaBeta& ab : {AlphaBeta{1.0f, 0.0f}, AlphaBeta{-1.5f, 0.25f}}) {
        envit::set_num_threads(threads);
        Problem<float> p(Trans::N, Trans::T, s.M, s.N, s.K, ab.alpha, ab.beta, 0, seed++);  // W contiguous
        const std::vector<float> plain = p.run();
        envit::PackedWeight<float> wp;
        wp.pack(p.B.data(), s.N, s.K);
        std::vector<float> C = p.C0;
        envit::gemm_weight_t<float>(s.M, s.N, s.K, ab.alpha, p.A.data(), p.lda, p.B.data(), &wp, ab.beta,
                                    C.data(), p.ldc);
        INFO("M=" << s.M << " N=" << s.N << " K=" << s.K << " threads=" << threads << " alpha=" << ab.alpha);
        CHECK(std::memcmp(plain.data(), C.data(), C.size() * sizeof(float)) == 0);
        p.check(C, 1e-5);
        // without a packed weight it is the plain gemm
        std::vector<float> C2 = p.C0;
        envit::gemm_weight_t<float>(s.M, s.N, s.K, ab.alpha, p.A.data(), p.lda, p.B.data(), nullptr, ab.beta,
                                    C2.data(), p.ldc);
        CHECK(std::memcmp(plain.data(), C2.data(), C2.size() * sizeof(float)) == 0);
      }
}

TEST_CASE(ARCH_NAME "gemm_weight_t: a packed weight that does not match the call is refused", "[gemm][prepacked][error]") {
  BackendGuard g;
  envit::set_gemm_backend(GemmBackend::packed);
  std::vector<float> W(64 * 32, 0.5f), W2(64 * 32, 0.5f), A(4 * 32, 1.0f), C(4 * 64, 0.0f);
  envit::PackedWeight<float> wp;
  wp.pack(W.data(), 64, 32);
  // shape differs
  CHECK_THROWS_AS(envit::gemm_weight_t<float>(4, 32, 64, 1.0f, A.data(), 64, W.data(), &wp, 0.0f, C.data(), 64),
                  envit::ValueError);
  // packed from another array
  CHECK_THROWS_WITH(envit::gemm_weight_t<float>(4, 64, 32, 1.0f, A.data(), 32, W2.data(), &wp, 0.0f, C.data(), 64),
                    Catch::Contains("another array"));
  CHECK_THROWS_AS(wp.pack(W.data(), 0, 32), envit::ShapeError);
  // the Eigen backend ignores the packed copy: a snapshot never leaks into its results
  envit::set_gemm_backend(GemmBackend::eigen);
  W[0] = 2.0f;  // the packed copy is now stale
  envit::gemm_weight_t<float>(4, 64, 32, 1.0f, A.data(), 32, W.data(), &wp, 0.0f, C.data(), 64);
  CHECK(C[0] == Approx(0.5f * 31 + 2.0f));
  // a re-pack picks up the new values
  envit::set_gemm_backend(GemmBackend::packed);
  wp.pack(W.data(), 64, 32);
  envit::gemm_weight_t<float>(4, 64, 32, 1.0f, A.data(), 32, W.data(), &wp, 0.0f, C.data(), 64);
  CHECK(C[0] == 0.5f * 31 + 2.0f);
}

TEST_CASE(ARCH_NAME "gemm_weight_t: double falls back to the plain gemm", "[gemm][prepacked]") {
  Problem<double> p(Trans::N, Trans::T, 7, 9, 11, 1.0, 0.0, 0, 77);
  envit::PackedWeight<double> wp;
  wp.pack(p.B.data(), 9, 11);
  CHECK(!wp.panels);
  std::vector<double> C = p.C0;
  envit::gemm_weight_t<double>(7, 9, 11, 1.0, p.A.data(), p.lda, p.B.data(), &wp, 0.0, C.data(), p.ldc);
  const std::vector<double> plain = p.run();
  CHECK(std::memcmp(plain.data(), C.data(), C.size() * sizeof(double)) == 0);
}

TEST_CASE(ARCH_NAME "gemm packed: no allocation once the pack buffers are warm", "[gemm][alloc]") {
  BackendGuard g;
  envit::set_gemm_backend(GemmBackend::packed);
  for (int threads : {1, 2}) {
    envit::set_num_threads(threads);
    Problem<float> big(Trans::N, Trans::T, 300, 400, 900, 1.0f, 0.0f, 0, 500);
    Problem<float> small(Trans::T, Trans::N, 50, 70, 90, 1.0f, 1.0f, 0, 501);
    std::vector<float> C = big.C0, Cs = small.C0;
    auto call = [](const Problem<float>& p, std::vector<float>& c) {
      envit::gemm<float>(p.ta, p.tb, p.M, p.N, p.K, p.alpha, p.A.data(), p.lda, p.B.data(), p.ldb,
                         p.beta, c.data(), p.ldc);
    };
    call(big, C), call(big, C), call(small, Cs);  // warm-up: buffers and the OpenMP team
    const long before = g_news.load();
    call(big, C), call(small, Cs), call(big, C);
    const long after = g_news.load();
    INFO("threads=" << threads << ": " << (after - before) << " operator new calls in steady state");
    CHECK(after == before);
  }
}

TEST_CASE(ARCH_NAME "gemm: Eigen backend (float) matches the reference", "[gemm][ref][eigen]") {
  BackendGuard g;
  envit::set_gemm_backend(GemmBackend::eigen);
  std::uint64_t seed = 600;
  for (int threads : {1, 2}) {
    envit::set_num_threads(threads);
    for (Trans ta : kTrans)
      for (Trans tb : kTrans)
        for (idx K : {0, 17, 300}) {
          const std::uint64_t sd = seed++;
          Problem<float> p(ta, tb, 131, 67, K, 1.5f, sd % 2 ? 0.0f : -0.5f, 2, sd);
          p.check(p.run(), 1e-5);
        }
  }
}

TEST_CASE(ARCH_NAME "gemm: double (Eigen) matches the reference", "[gemm][ref][eigen]") {
  BackendGuard g;
  envit::set_gemm_backend(GemmBackend::packed);  // ignored for double: always Eigen
  std::uint64_t seed = 700;
  for (int threads : {1, 2}) {
    envit::set_num_threads(threads);
    for (Trans ta : kTrans)
      for (Trans tb : kTrans)
        for (idx K : {0, 1, 33, 257}) {
          const std::uint64_t sd = seed++;
          Problem<double> p(ta, tb, 77, 129, K, -0.5, sd % 2 ? 0.0 : 2.0, 1, sd);
          p.check(p.run(), 1e-13);
        }
  }
}

TEST_CASE(ARCH_NAME "gemm: invalid sizes and leading dimensions throw ShapeError", "[gemm][error]") {
  float a[16] = {}, b[16] = {}, c[16] = {};
  CHECK_THROWS_AS(envit::gemm<float>(Trans::N, Trans::N, -1, 2, 2, 1.f, a, 2, b, 2, 0.f, c, 2),
                  envit::ShapeError);
  CHECK_THROWS_AS(envit::gemm<float>(Trans::N, Trans::N, 2, 3, 2, 1.f, a, 2, b, 3, 0.f, c, 2),
                  envit::ShapeError);  // ldc < N
  CHECK_THROWS_AS(envit::gemm<float>(Trans::T, Trans::N, 3, 2, 2, 1.f, a, 2, b, 2, 0.f, c, 2),
                  envit::ShapeError);  // lda < M for Trans::T
  CHECK_THROWS_AS(envit::gemm<float>(Trans::N, Trans::T, 2, 2, 3, 1.f, a, 3, b, 2, 0.f, c, 2),
                  envit::ShapeError);  // ldb < K for Trans::T
  CHECK_NOTHROW(envit::gemm<float>(Trans::N, Trans::N, 2, 2, 2, 1.f, a, 2, b, 2, 0.f, c, 2));
}

// ---- kernel sets (kernels/dispatch.hpp) ----------------------------------------------------------

TEST_CASE(ARCH_NAME "kernel sets: the set in use is the one ENVIT_ISA names, else the best runnable",
          "[gemm][dispatch]") {
  const envit::detail::KernelSetChoice c = envit::detail::runnable_kernel_sets();
  REQUIRE(c.count >= 1);
  const char* env = std::getenv("ENVIT_ISA");
  const std::string want = env && *env ? env : c.sets[0]->name;
  INFO("ENVIT_ISA=" << (env ? env : "(unset)") << ", in use: " << envit::kernel_set_name());
  CHECK(want == envit::kernel_set_name());
  CHECK(std::string(c.sets[c.count - 1]->name) ==
        (envit::kernel_set_dispatched() ? "baseline" : envit::kernel_set_name()));
  CHECK_THAT(envit::kernel_set_info(), Catch::Contains(envit::kernel_set_name()));
}

namespace {
struct EnvGuard {  // restores ENVIT_ISA after a test
  std::string old;
  bool had = false;
  EnvGuard() {
    if (const char* e = std::getenv("ENVIT_ISA")) old = e, had = true;
  }
  ~EnvGuard() {
    if (had) setenv("ENVIT_ISA", old.c_str(), 1);
    else unsetenv("ENVIT_ISA");
  }
};
}  // namespace

TEST_CASE(ARCH_NAME "kernel sets: ENVIT_ISA values that cannot be honoured are errors", "[gemm][dispatch][error]") {
  EnvGuard g;
  setenv("ENVIT_ISA", "avx9", 1);
  CHECK_THROWS_WITH(envit::detail::select_gemm_kernels(), Catch::Contains("ENVIT_ISA=avx9: unknown kernel set"));
  const envit::detail::KernelSetChoice c = envit::detail::runnable_kernel_sets();
  for (const char* name : envit::detail::kKernelSetNames) {
    bool runnable = false;
    for (int i = 0; i < c.count; ++i) runnable |= std::string(c.sets[i]->name) == name;
    setenv("ENVIT_ISA", name, 1);
    INFO("ENVIT_ISA=" << name << " runnable=" << runnable);
    if (runnable) CHECK(std::string(envit::detail::select_gemm_kernels().name) == name);
    else CHECK_THROWS_AS(envit::detail::select_gemm_kernels(), envit::ValueError);
  }
  unsetenv("ENVIT_ISA");
  CHECK(&envit::detail::select_gemm_kernels() == c.sets[0]);
}

// Every set this CPU can run, called directly (single-threaded, as gemm's tiles call it): right
// against the double reference on ragged sizes and two K blocks, bitwise repeatable, and its
// pre-packed weight path bitwise equal to its plain path.
TEST_CASE(ARCH_NAME "kernel sets: every runnable set matches the reference", "[gemm][dispatch][ref]") {
  const envit::detail::KernelSetChoice c = envit::detail::runnable_kernel_sets();
  struct S { Trans ta, tb; idx M, N, K; };
  const S sizes[] = {{Trans::N, Trans::T, 29, 53, 77},  {Trans::T, Trans::N, 17, 97, 200},
                     {Trans::N, Trans::N, 113, 49, 769}, {Trans::T, Trans::T, 9, 31, 5},
                     {Trans::N, Trans::T, 50, 200, 192}};
  std::uint64_t seed = 900;
  for (int si = 0; si < c.count; ++si) {
    const envit::GemmKernelSet& ks = *c.sets[si];
    for (const S& s : sizes) {
      const std::uint64_t sd = seed++;
      const AlphaBeta ab = kAlphaBeta[sd % 5];
      Problem<float> p(s.ta, s.tb, s.M, s.N, s.K, ab.alpha, ab.beta, sd % 2 ? 3 : 0, sd);
      INFO("kernel set " << ks.name << " (" << ks.mr << " x " << ks.nr << ")");
      std::vector<float> c1 = p.C0, c2 = p.C0;
      ks.run(p.ta, p.tb, p.M, p.N, p.K, p.alpha, p.A.data(), p.lda, p.B.data(), p.ldb, p.beta, c1.data(), p.ldc,
             nullptr, nullptr, 0, 0);
      ks.run(p.ta, p.tb, p.M, p.N, p.K, p.alpha, p.A.data(), p.lda, p.B.data(), p.ldb, p.beta, c2.data(), p.ldc,
             nullptr, nullptr, 0, 0);
      p.check(c1, 1e-5);
      CHECK(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
      if (s.ta == Trans::N && s.tb == Trans::T) {
        const idx nr = ks.nr;
        std::vector<float> W(std::size_t(s.N * s.K)), panels(std::size_t((s.N + nr - 1) / nr * nr * s.K) + 16);
        for (idx j = 0; j < s.N; ++j)
          for (idx k = 0; k < s.K; ++k) W[std::size_t(j * s.K + k)] = p.B[std::size_t(j * p.ldb + k)];
        float* aligned = panels.data() + (16 - (reinterpret_cast<std::uintptr_t>(panels.data()) / 4) % 16) % 16;
        ks.pack_weight_t(aligned, W.data(), s.N, s.K);
        std::vector<float> c3 = p.C0;
        ks.run(Trans::N, Trans::T, p.M, p.N, p.K, p.alpha, p.A.data(), p.lda, nullptr, s.K, p.beta, c3.data(), p.ldc,
               aligned, nullptr, 0, 0);
        CHECK(std::memcmp(c1.data(), c3.data(), c1.size() * sizeof(float)) == 0);
      }
    }
  }
}
