// tests/test_gemm_int8.cpp — the INT8 product (kernels/gemm_int8.hpp's contract; GemmKernelSet::
// run_int8) of the kernel set in use, and of the portable kernel compiled into this test:
//   * INT32 accumulators bit-exact against an integer reference (int64 sums) over ragged shapes:
//     M = 1 and around the register tiles, N around the panel widths, K not a multiple of 4,
//     K up to 3072, operands at the extremes +-127;
//   * the dequantized float output float(acc) * sa * sw within 2 u of its double value (u = 2^-24:
//     two FP32 roundings; float(acc) is exact for |acc| < 2^24, which the shapes here keep),
//     and bitwise equal to the portable kernel's (the same integers, the same two multiplications);
//   * gemm_weight_t under Precision::int8 with a PackedWeight packed for INT8 (per-row dynamic or
//     static activation scales, fused epilogue) against a reference built from core/int8.hpp's
//     quantization and integer sums, bitwise across 1 and 2 threads, row invariant;
//   * the quantization itself (round half to even, clamping to +-127, scales) and the refusals
//     (INT8 weight under another precision, bad scales).
// tests/gemm.cmake registers the executable once per kernel set (gemm_int8_<set>, ENVIT_ISA=<set>);
// a set this CPU cannot run makes it exit with 77 before any test (ctest: skipped, never passed).
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "envit/core/int8.hpp"
#include "envit/core/precision.hpp"
#include "envit/kernels/gemm.hpp"
#include "envit/kernels/gemm_int8.hpp"
#include "kernel_set_skip.hpp"
#include "testing.hpp"

namespace {

using envit::Precision;
using envit::PrecisionScope;
using idx = std::ptrdiff_t;
namespace gi8 = envit::detail::gemm_i8;

const int g_skip_check = envit::testing::exit_if_kernel_set_unrunnable();

struct Guard {
  int t = envit::num_threads();
  Precision p = envit::matmul_precision();
  ~Guard() { envit::set_num_threads(t), envit::set_matmul_precision(p); }
};

// Random int8 in [-127, 127], every 7th value at an extreme.
std::vector<std::int8_t> rand_i8(std::size_t n, std::uint64_t seed) {
  std::vector<float> u(n);
  envit::testing::fill_uniform(u.data(), n, seed);
  std::vector<std::int8_t> q(n);
  for (std::size_t i = 0; i < n; ++i)
    q[i] = i % 7 == 3 ? std::int8_t(i % 2 ? 127 : -127) : std::int8_t(std::nearbyint(127.0f * u[i]));
  return q;
}

// One integer problem: A (M, K) with rows padded to ldq (zeros), W (N, K).
struct Problem {
  idx M, N, K, ldq;
  std::vector<std::int8_t> A, W;
  Problem(idx M_, idx N_, idx K_, std::uint64_t seed) : M(M_), N(N_), K(K_), ldq((K_ + 3) / 4 * 4 + 4) {
    A.assign(std::size_t(M * ldq), 0);
    const auto a = rand_i8(std::size_t(M * K), seed * 2 + 1);
    for (idx i = 0; i < M; ++i)
      for (idx k = 0; k < K; ++k) A[i * ldq + k] = a[i * K + k];
    W = rand_i8(std::size_t(N * K), seed * 2 + 2);
  }
  std::int64_t ref(idx i, idx j) const {
    std::int64_t s = 0;
    for (idx k = 0; k < K; ++k) s += std::int64_t(A[i * ldq + k]) * std::int64_t(W[j * K + k]);
    return s;
  }
};

struct Packed {
  std::unique_ptr<float[], envit::detail::AlignedFree> buf;
  Packed(std::size_t bytes) : buf(envit::aligned_buffer<float>((bytes + 3) / 4 + 16)) {}
  void* get() const { return buf.get(); }
};

// The set's (or the portable) run_int8 over the whole problem, INT32 output.
std::vector<std::int32_t> run_acc(const envit::GemmKernelSet& ks, const Problem& p) {
  Packed w(ks.packed_weight_int8_bytes(p.N, p.K));
  ks.pack_weight_t_int8(w.get(), p.W.data(), p.N, p.K);
  const idx ldc = p.N + 3;
  std::vector<std::int32_t> C(std::size_t(p.M * ldc), -777);
  ks.run_int8(p.M, p.N, p.K, p.A.data(), p.ldq, nullptr, w.get(), nullptr, nullptr, C.data(), ldc, nullptr, 0, 0);
  for (idx i = 0; i < p.M; ++i)
    for (idx j = p.N; j < ldc; ++j) REQUIRE(C[i * ldc + j] == -777);  // padding untouched
  std::vector<std::int32_t> out(std::size_t(p.M * p.N));
  for (idx i = 0; i < p.M; ++i)
    for (idx j = 0; j < p.N; ++j) out[i * p.N + j] = C[i * ldc + j];
  return out;
}
std::vector<float> run_float(const envit::GemmKernelSet& ks, const Problem& p, const std::vector<float>& sa,
                             const std::vector<float>& sw) {
  Packed w(ks.packed_weight_int8_bytes(p.N, p.K));
  ks.pack_weight_t_int8(w.get(), p.W.data(), p.N, p.K);
  std::vector<float> C(std::size_t(p.M * p.N), std::numeric_limits<float>::quiet_NaN());
  ks.run_int8(p.M, p.N, p.K, p.A.data(), p.ldq, sa.data(), w.get(), sw.data(), C.data(), nullptr, p.N, nullptr, 0,
              0);
  return C;
}

const envit::GemmKernelSet& portable_set() {
  static const envit::GemmKernelSet ks = gi8::with_portable_int8(envit::GemmKernelSet{});
  return ks;
}

const idx kMs[] = {1, 2, 3, 5, 8, 9, 17, 64, 67};
const idx kNs[] = {1, 15, 16, 17, 33, 48, 49, 97};
const idx kKs[] = {1, 3, 4, 5, 7, 64, 127, 768, 1029};

void check_exact(const envit::GemmKernelSet& ks, const char* what) {
  std::uint64_t seed = 1;
  for (idx M : kMs)
    for (idx N : kNs)
      for (idx K : kKs) {
        if (M * N * K > 3'000'000) continue;
        const Problem p(M, N, K, seed++);
        const auto C = run_acc(ks, p);
        for (idx i = 0; i < M; ++i)
          for (idx j = 0; j < N; ++j)
            if (std::int64_t(C[i * N + j]) != p.ref(i, j)) {
              FAIL(what << ": M=" << M << " N=" << N << " K=" << K << " C(" << i << "," << j << ") = " << C[i * N + j]
                        << ", integer reference " << p.ref(i, j));
            }
      }
  // K = 3072 (ViT-B fc2) at the extremes: every product +-127^2, the sum's magnitude up to 5e7.
  Problem p(9, 50, 3072, 99);
  for (idx k = 0; k < p.K; ++k) p.A[0 * p.ldq + k] = 127, p.A[1 * p.ldq + k] = -127;
  for (idx k = 0; k < p.K; ++k) p.W[0 * p.K + k] = 127, p.W[1 * p.K + k] = -127;
  const auto C = run_acc(ks, p);
  for (idx i = 0; i < p.M; ++i)
    for (idx j = 0; j < p.N; ++j) REQUIRE(std::int64_t(C[i * p.N + j]) == p.ref(i, j));
  CHECK(C[0] == 127 * 127 * 3072);
  CHECK(C[1] == -127 * 127 * 3072);
}

TEST_CASE("int8 gemm: the kernel set in use names its INT8 product", "[gemm][int8]") {
  const envit::GemmKernelSet& ks = envit::gemm_kernels();
  const std::string name = ks.name;
  const bool vnni = name == "avx512_bf16" || name == "amx";
  CHECK(std::string(ks.int8) == (vnni ? "avx512_vnni" : "portable"));
  CHECK(ks.int8_native == vnni);
  CHECK((ks.probe_int8 != nullptr) == vnni);
  CHECK_THAT(envit::kernel_set_info(), Catch::Contains(std::string("int8 products: ") + ks.int8));
}

TEST_CASE("int8 gemm: the set's INT32 accumulators equal the integer reference (ragged shapes, K % 4 != 0)",
          "[gemm][int8][exact]") {
  check_exact(envit::gemm_kernels(), envit::gemm_kernels().name);
}

TEST_CASE("int8 gemm: the portable kernel's INT32 accumulators equal the integer reference", "[gemm][int8][exact]") {
  check_exact(portable_set(), "portable");
}

TEST_CASE("int8 gemm: dequantized output within 2u of float(acc) sa sw, bitwise equal to the portable kernel",
          "[gemm][int8][ref]") {
  const envit::GemmKernelSet& ks = envit::gemm_kernels();
  std::uint64_t seed = 500;
  for (idx M : {1, 7, 9, 40})
    for (idx N : {5, 16, 48, 61})
      for (idx K : {3, 64, 193}) {
        const Problem p(M, N, K, seed++);
        std::vector<float> sa(static_cast<std::size_t>(M)), sw(static_cast<std::size_t>(N));
        envit::testing::fill_uniform(sa.data(), sa.size(), seed * 7);
        envit::testing::fill_uniform(sw.data(), sw.size(), seed * 11);
        for (float& s : sa) s = 0.01f + std::fabs(s);
        for (float& s : sw) s = 1e-3f * (0.5f + std::fabs(s));
        const auto C = run_float(ks, p, sa, sw), Cp = run_float(portable_set(), p, sa, sw);
        for (idx i = 0; i < M; ++i)
          for (idx j = 0; j < N; ++j) {
            const double ref = double(p.ref(i, j)) * double(sa[i]) * double(sw[j]);
            const float c = C[i * N + j];
            INFO("M=" << M << " N=" << N << " K=" << K << " (" << i << "," << j << ") c=" << c << " ref=" << ref);
            REQUIRE(std::fabs(double(c) - ref) <= 2.0 * 0x1p-24 * std::fabs(ref) + 1e-30);
            REQUIRE(std::bit_cast<std::uint32_t>(c) == std::bit_cast<std::uint32_t>(Cp[i * N + j]));
          }
      }
}

TEST_CASE("int8 quantization: round half to even, clamp to +-127, per-channel and per-row scales",
          "[gemm][int8][quantize]") {
  CHECK(envit::quantize_int8(2.5f, 1.0f) == 2);
  CHECK(envit::quantize_int8(3.5f, 1.0f) == 4);
  CHECK(envit::quantize_int8(-2.5f, 1.0f) == -2);
  CHECK(envit::quantize_int8(-0.4f, 1.0f) == 0);
  CHECK(envit::quantize_int8(200.0f, 1.0f) == 127);
  CHECK(envit::quantize_int8(-1e30f, 1.0f) == -127);
  CHECK(envit::quantize_int8(std::numeric_limits<float>::quiet_NaN(), 1.0f) == 0);
  CHECK(envit::int8_scale(0.0f) == 1.0f);
  CHECK(envit::int8_scale(12.7f) == 12.7f / 127.0f);
  const float W[6] = {0.5f, -1.0f, 0.25f, 0.0f, 0.0f, 0.0f};
  std::int8_t q[6];
  float s[2];
  envit::quantize_weight_int8(q, s, W, 2, 3);
  CHECK(s[0] == 1.0f / 127.0f);
  CHECK(q[1] == -127);
  CHECK(q[0] == 64);  // 63.5 -> 64 (even)
  CHECK(q[2] == 32);  // 31.75 -> 32
  CHECK(s[1] == 1.0f);
  CHECK((q[3] == 0 && q[4] == 0 && q[5] == 0));
  const float A[2 * 5] = {1, 2, 3, 4, 5, -10, 0, 0, 0, 0};
  std::int8_t qa[2 * 8];
  float sa[2];
  envit::quantize_rows_int8(qa, 8, sa, A, 5, 2, 5, 0.0f);
  CHECK(sa[0] == 5.0f / 127.0f);
  CHECK(qa[4] == 127);
  CHECK(qa[8 + 0] == -127);
  CHECK((qa[5] == 0 && qa[6] == 0 && qa[7] == 0));  // padding zeroed
  envit::quantize_rows_int8(qa, 8, sa, A, 5, 2, 5, 0.02f);  // static: 5 / 0.02 = 250 saturates
  CHECK((sa[0] == 0.02f && sa[1] == 0.02f));
  CHECK(qa[4] == 127);
  CHECK(qa[0] == 50);
}

// gemm_weight_t's INT8 path against the reference built from the quantization functions.
struct Linear {
  idx M, N, K;
  std::vector<float> A, W, bias;
  Linear(idx M_, idx N_, idx K_, std::uint64_t seed) : M(M_), N(N_), K(K_) {
    A.resize(std::size_t(M * K)), W.resize(std::size_t(N * K)), bias.resize(std::size_t(N));
    envit::testing::fill_uniform(A.data(), A.size(), seed);
    envit::testing::fill_uniform(W.data(), W.size(), seed + 1);
    envit::testing::fill_uniform(bias.data(), bias.size(), seed + 2);
    for (idx i = 0; i < M; ++i) A[i * K + i % K] *= 4.0f;  // rows with different ranges
  }
  // double(float(acc) * sa * sw) + bias, from core/int8.hpp's quantization and integer sums.
  std::vector<double> ref(float act_scale) const {
    std::vector<std::int8_t> qw(W.size()), qa(std::size_t(M * K));
    std::vector<float> sw(static_cast<std::size_t>(N)), sa(static_cast<std::size_t>(M));
    envit::quantize_weight_int8(qw.data(), sw.data(), W.data(), N, K);
    envit::quantize_rows_int8(qa.data(), K, sa.data(), A.data(), K, M, K, act_scale);
    std::vector<double> out(std::size_t(M * N));
    for (idx i = 0; i < M; ++i)
      for (idx j = 0; j < N; ++j) {
        std::int64_t s = 0;
        for (idx k = 0; k < K; ++k) s += std::int64_t(qa[i * K + k]) * qw[j * K + k];
        out[i * N + j] = double(float(s) * sa[i] * sw[j]) + double(bias[j]);
      }
    return out;
  }
  std::vector<float> run(const envit::PackedWeight<float>& wp, int threads) const {
    const float* Wp = wp.w;  // the array wp was packed from (a copy of this Linear may hold another)
    Guard g;
    envit::set_num_threads(threads);
    PrecisionScope ps(Precision::int8);
    std::vector<float> C(std::size_t(M * N), std::numeric_limits<float>::quiet_NaN());
    float* c = C.data();
    const float* b = bias.data();
    const idx ldc = N;
    auto add_bias = [&](idx r0, idx r1, idx c0, idx c1) {
      for (idx i = r0; i < r1; ++i)
        for (idx j = c0; j < c1; ++j) c[i * ldc + j] += b[j];
    };
    const auto epi = envit::make_epilogue(add_bias);
    envit::gemm_weight_t<float>(M, N, K, 1.0f, A.data(), K, Wp, &wp, 0.0f, C.data(), N, &epi);
    return C;
  }
};

TEST_CASE("int8 gemm_weight_t: dynamic and static activation scales, fused bias, threads, row invariance",
          "[gemm][int8][prepacked]") {
  for (float act : {0.0f, 0.01f}) {
    const Linear L(131, 200, 100, act == 0.0f ? 11 : 12);
    envit::PackedWeight<float> wp;
    wp.pack(L.W.data(), L.N, L.K, Precision::int8, act);
    CHECK(wp.precision == Precision::int8);
    CHECK(wp.act_scale == act);
    const auto ref = L.ref(act);
    const auto C1 = L.run(wp, 1), C2 = L.run(wp, 2);
    for (std::size_t e = 0; e < ref.size(); ++e) {
      INFO("act_scale=" << act << " element " << e << " c=" << C1[e] << " ref=" << ref[e]);
      REQUIRE(std::fabs(double(C1[e]) - ref[e]) <= 0x1p-24 * (std::fabs(ref[e]) + 1.0));  // one rounding of the bias add
      REQUIRE(std::bit_cast<std::uint32_t>(C1[e]) == std::bit_cast<std::uint32_t>(C2[e]));
    }
    // Row invariance: rows 7..9 alone give bitwise the same rows.
    Linear sub = L;
    sub.M = 3;
    sub.A.assign(L.A.begin() + 7 * L.K, L.A.begin() + 10 * L.K);
    const auto Cs = sub.run(wp, 2);
    for (idx i = 0; i < 3; ++i)
      for (idx j = 0; j < L.N; ++j)
        REQUIRE(std::bit_cast<std::uint32_t>(Cs[i * L.N + j]) == std::bit_cast<std::uint32_t>(C1[(7 + i) * L.N + j]));
  }
}

TEST_CASE("int8 gemm_weight_t: INT8 versus the FP32 product stays within the quantization error",
          "[gemm][int8][prepacked]") {
  const Linear L(64, 96, 384, 21);
  envit::PackedWeight<float> wp;
  wp.pack(L.W.data(), L.N, L.K, Precision::int8);
  const auto C = L.run(wp, 2);
  // |A W^T - qa sa (qw sw)^T| <= sum_k |a||dw| + |da||w| + |da||dw| with |da| <= sa/2, |dw| <= sw/2.
  std::vector<std::int8_t> qw(L.W.size());
  std::vector<float> sw(static_cast<std::size_t>(L.N));
  envit::quantize_weight_int8(qw.data(), sw.data(), L.W.data(), L.N, L.K);
  for (idx i = 0; i < L.M; ++i) {
    float amax = 0.0f;
    for (idx k = 0; k < L.K; ++k) amax = std::max(amax, std::fabs(L.A[i * L.K + k]));
    const double sa = amax / 127.0;
    for (idx j = 0; j < L.N; ++j) {
      double exact = L.bias[j], bound = 0.0;
      for (idx k = 0; k < L.K; ++k) {
        const double a = L.A[i * L.K + k], w = L.W[j * L.K + k];
        exact += a * w;
        bound += std::fabs(a) * sw[j] / 2 + std::fabs(w) * sa / 2 + sa * sw[j] / 4;
      }
      REQUIRE(std::fabs(double(C[i * L.N + j]) - exact) <= bound + 1e-5);
    }
  }
}

TEST_CASE("int8 PackedWeight: refused under another precision; bad scales refused", "[gemm][int8][error]") {
  Guard g;
  const Linear L(4, 8, 16, 31);
  envit::PackedWeight<float> wp;
  wp.pack(L.W.data(), L.N, L.K, Precision::int8);
  std::vector<float> C(std::size_t(L.M * L.N));
  {
    PrecisionScope ps(Precision::fp32);
    CHECK_THROWS_WITH(envit::gemm_weight_t<float>(L.M, L.N, L.K, 1.0f, L.A.data(), L.K, L.W.data(), &wp, 0.0f,
                                                  C.data(), L.N),
                      Catch::Contains("packed for int8 products but the matrix-product precision is fp32"));
  }
  {
    PrecisionScope ps(Precision::int8);
    CHECK_THROWS_WITH(envit::gemm_weight_t<float>(L.M, L.N, L.K, 2.0f, L.A.data(), L.K, L.W.data(), &wp, 0.0f,
                                                  C.data(), L.N),
                      Catch::Contains("computes C = A W^T only"));
  }
  std::vector<std::int8_t> q(std::size_t(L.N * L.K), 1);
  std::vector<float> s(static_cast<std::size_t>(L.N), 0.5f);
  s[3] = 0.0f;
  CHECK_THROWS_WITH(wp.pack_int8(L.W.data(), q.data(), s.data(), L.N, L.K, 0.0f),
                    Catch::Contains("weight scale 3 is 0"));
  s[3] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(wp.pack_int8(L.W.data(), q.data(), s.data(), L.N, L.K, 0.0f),
                    Catch::Contains("weight scale 3 is inf"));
  s[3] = 0.5f;
  CHECK_THROWS_WITH(wp.pack_int8(L.W.data(), q.data(), s.data(), L.N, L.K, -1.0f),
                    Catch::Contains("activation scale -1"));
  // An FP32-packed weight under Precision::int8 runs the FP32 product.
  envit::PackedWeight<float> w32;
  w32.pack(L.W.data(), L.N, L.K, Precision::fp32);
  PrecisionScope ps(Precision::int8);
  CHECK_NOTHROW(envit::gemm_weight_t<float>(L.M, L.N, L.K, 1.0f, L.A.data(), L.K, L.W.data(), &w32, 0.0f, C.data(),
                                            L.N));
  CHECK(envit::parse_inference_precision("int8") == Precision::int8);
  CHECK_THROWS_WITH(envit::parse_precision("int8", "--precision"), Catch::Contains("expected fp32 or bf16"));
  CHECK_THROWS_WITH(envit::parse_inference_precision("int4", "--precision"),
                    Catch::Contains("expected fp32, bf16 or int8"));
}

TEST_CASE("int8 kernel sets: every runnable set's INT8 product is exact and equal to the portable one",
          "[gemm][int8][dispatch]") {
  const envit::detail::KernelSetChoice c = envit::detail::runnable_kernel_sets();
  for (int s = 0; s < c.count; ++s) {
    const envit::GemmKernelSet& ks = *c.sets[s];
    INFO("kernel set " << ks.name << " (" << ks.int8 << ")");
    const Problem p(37, 101, 259, 77 + std::uint64_t(s));
    const auto C = run_acc(ks, p), Cp = run_acc(portable_set(), p);
    REQUIRE(C == Cp);
    for (idx i = 0; i < p.M; ++i)
      for (idx j = 0; j < p.N; ++j) REQUIRE(std::int64_t(C[i * p.N + j]) == p.ref(i, j));
  }
}

}  // namespace
