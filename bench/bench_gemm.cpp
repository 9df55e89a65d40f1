// bench/bench_gemm.cpp — envit::gemm at ViT shapes, Eigen vs envit's packed backend, FP32 and BF16,
// 1 and 2 threads, next to peak-FLOP probes measured in the same process.
//   peak/threads:T      independent FP32 FMA chains of the kernel set in use (its probe_fma,
//                       compiled with that set's flags: zmm on avx512/avx512_bf16/amx) on T threads
//   peak_bf16/threads:T the set's BF16 instruction (probe_bf16): vdpbf16ps chains (avx512_bf16) or
//                       tdpbf16ps into four accumulator tiles (amx); skipped (error row) when the
//                       set's BF16 product is emulated
//   peak_int8/threads:T the set's INT8 instruction (probe_int8): vpdpbusd chains (avx512_vnni; GFLOPs
//                       counts integer multiply-adds x 2); skipped (error row) for the portable product
//   gemm/<backend>/t<T>/<shape>   counters: GFLOPs (rate) and pct_peak (of the FP32 probe, same T)
//   gemm_bf16/t<T>/<shape>        the BF16 product (Precision::bf16), pct_peak of the BF16 probe
//                       (of the FP32 probe when emulated); gemm_bf16/prepacked/...: forward shapes
//                       with the weight packed once for BF16, epilogue-free as the FP32 ones
//   gemm_int8/prepacked/t<T>/<shape>  the INT8 product (Precision::int8, weight packed once for
//                       INT8, per-row dynamic activation scales: the quantization of A included),
//                       pct_peak of the INT8 probe (of the FP32 probe for the portable product)
// Shapes (row-major, envit's Linear conventions: y = x W^T, dx = dy W, dW = dy^T x):
//   ViT-S-like, rows M = 6400 (e.g. 32 images x 200 tokens), D = 192, MLP 768, qkv 576:
//     fwd_*  (N,T)  M=6400, N=out, K=in
//     dx_*   (N,N)  M=6400, N=in,  K=out
//     dW_*   (T,N)  M=out,  N=in,  K=6400
//   ViT-B/16, rows M = 8*197 = 1576, D = 768, MLP 3072, qkv 2304: B16_*.
//   Batch-1 inference: b1_* (tiny28, 50 rows), B16b1_* (ViT-B/16, 197 rows).
//   gemm/prepacked/...  forward shapes with the weight packed once (envit::PackedWeight).
//   gemm/prepacked_cold/...  batch-1 shapes cycling through copies of the weight totalling a
//                       model's weights (24 / 344 MB), so each call reads W from L3/DRAM as in a pass.
//   microkernel/kc:K    the full register tile (MR x NR) alone on one thread: one A micro-panel
//                       (row-major, in L1) times B micro-panels cycling through 4 (in L2), C tile
//                       written each call; the kernel's own ceiling, no packing or threading.
// Compiled with envit::arch: with envit::dispatch, ENVIT_ISA chooses the set (probes and GEMMs
// alike); microkernel/ is the compile-time arch's FP32 kernel only. Timings are wall-clock (UseRealTime) — on a shared machine
// run each several times and keep the best (--benchmark_repetitions=5
// --benchmark_report_aggregates_only=false, then take the max).
#include <benchmark/benchmark.h>
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "envit/core/parallel.hpp"
#include "envit/core/precision.hpp"
#include "envit/kernels/gemm.hpp"
#include "envit/kernels/gemm_packed.hpp"

namespace {

using envit::GemmBackend;
using envit::Trans;
using idx = std::ptrdiff_t;

// ---- peak probes ---------------------------------------------------------------------------------
// The kernel set's own probes (GemmKernelSet::probe_fma / probe_bf16, compiled with its flags).
// Operands come from volatiles so that no call sees compile-time constants.
volatile float g_x = 0.9999999f, g_y = 1e-7f;

using Probe = float (*)(long, float, float, double*);
Probe probe_of(bool bf16) { return bf16 ? envit::gemm_kernels().probe_bf16 : envit::gemm_kernels().probe_fma; }
Probe probe_of(envit::Precision p) {
  return p == envit::Precision::int8 ? envit::gemm_kernels().probe_int8 : probe_of(p == envit::Precision::bf16);
}

// One run of the probe on `threads` threads: seconds, flops in *flops.
double run_probe(Probe probe, int threads, long iters, double* flops) {
  float sink = 0;
  double f = 0;
  const float x = g_x, y = g_y;
  const double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink, f)
  {
    double fl = 0;
    sink += probe(iters, x, y, &fl);
    f += fl;
  }
  const double dt = omp_get_wtime() - t0;
  benchmark::DoNotOptimize(sink);
  *flops = f;
  return dt;
}

// Best of a few short runs of the probe on `threads` threads, in GFLOP/s (cached per thread count);
// 0 when the set has no such probe (emulated BF16).
double peak_gflops(int threads, envit::Precision prec = envit::Precision::fp32) {
  static double cache[3][8] = {};
  if (threads < 1 || threads > 7) return 0.0;
  const bool bf16 = prec == envit::Precision::bf16;
  double& c = cache[int(prec)][threads];
  if (c > 0) return c;
  const Probe probe = probe_of(prec);
  if (!probe) return 0.0;
  const long iters = bf16 && std::string(envit::gemm_kernels().bf16) == "amx" ? 200'000 : 2'000'000;
  double best = 0;
  for (int rep = 0; rep < 7; ++rep) {
    double flops = 0;
    const double dt = run_probe(probe, threads, iters, &flops);
    best = std::max(best, flops / dt * 1e-9);
  }
  return c = best;
}

// The peak a BF16 or INT8 product is measured against: its probe, or the FP32 one when the set has
// no such instruction.
double peak_for(int threads, envit::Precision prec) {
  const double p = prec != envit::Precision::fp32 ? peak_gflops(threads, prec) : 0.0;
  return p > 0 ? p : peak_gflops(threads);
}

void BM_Peak(benchmark::State& state, envit::Precision prec) {
  const int threads = static_cast<int>(state.range(0));
  const bool bf16 = prec == envit::Precision::bf16;
  const Probe probe = probe_of(prec);
  if (!probe) {
    state.SkipWithError(bf16 ? "the kernel set's BF16 product is emulated: no BF16 instruction to probe"
                             : "the kernel set's INT8 product is portable C++: no INT8 instruction to probe");
    return;
  }
  const long iters = bf16 && std::string(envit::gemm_kernels().bf16) == "amx" ? 100'000 : 1'000'000;
  double flops = 0;
  for (auto _ : state) run_probe(probe, threads, iters, &flops);
  state.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (prec == envit::Precision::fp32)
    state.counters["simd_width"] = flops / (2.0 * 12.0 * double(iters) * threads);  // floats per FMA
  state.SetLabel(std::string(envit::kernel_set_name()) +
                 (bf16 ? " bf16 " + std::string(envit::gemm_kernels().bf16)
                       : prec == envit::Precision::int8 ? " int8 " + std::string(envit::gemm_kernels().int8)
                                                        : std::string(" fp32 fma")));
}

// ---- GEMM -----------------------------------------------------------------------------------------
struct Shape {
  const char* name;
  Trans ta, tb;
  idx M, N, K;
};

// GFLOP/s of one product of shape s per iteration, and its percentage of the probe's peak.
void set_gemm_counters(benchmark::State& state, const Shape& s, double peak) {
  const double flops = 2.0 * double(s.M) * double(s.N) * double(s.K);
  state.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["pct_peak"] = benchmark::Counter(peak > 0 ? flops * 1e-9 * 100.0 / peak : 0.0,
                                                  benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_GFLOPs"] = peak;
}

const Shape kShapes[] = {
    // ViT-S-like, 6400 rows
    {"fwd_qkv", Trans::N, Trans::T, 6400, 576, 192},
    {"fwd_proj", Trans::N, Trans::T, 6400, 192, 192},
    {"fwd_fc1", Trans::N, Trans::T, 6400, 768, 192},
    {"fwd_fc2", Trans::N, Trans::T, 6400, 192, 768},
    {"dx_qkv", Trans::N, Trans::N, 6400, 192, 576},
    {"dx_proj", Trans::N, Trans::N, 6400, 192, 192},
    {"dx_fc1", Trans::N, Trans::N, 6400, 192, 768},
    {"dx_fc2", Trans::N, Trans::N, 6400, 768, 192},
    {"dW_qkv", Trans::T, Trans::N, 576, 192, 6400},
    {"dW_proj", Trans::T, Trans::N, 192, 192, 6400},
    {"dW_fc1", Trans::T, Trans::N, 768, 192, 6400},
    {"dW_fc2", Trans::T, Trans::N, 192, 768, 6400},
    // ViT-B/16, 8 images x 197 tokens
    {"B16_fwd_qkv", Trans::N, Trans::T, 1576, 2304, 768},
    {"B16_fwd_fc1", Trans::N, Trans::T, 1576, 3072, 768},
    {"B16_fwd_fc2", Trans::N, Trans::T, 1576, 768, 3072},
    {"B16_dx_fc1", Trans::N, Trans::N, 1576, 768, 3072},
    {"B16_dW_fc1", Trans::T, Trans::N, 3072, 768, 1576},
    {"B16_dW_fc2", Trans::T, Trans::N, 768, 3072, 1576},
    // batch-1 inference, tiny28 (50 tokens) and ViT-B/16 (197 tokens): forward products only
    {"b1_fwd_qkv", Trans::N, Trans::T, 50, 576, 192},
    {"b1_fwd_fc1", Trans::N, Trans::T, 50, 768, 192},
    {"b1_fwd_fc2", Trans::N, Trans::T, 50, 192, 768},
    {"B16b1_fwd_qkv", Trans::N, Trans::T, 197, 2304, 768},
    {"B16b1_fwd_fc2", Trans::N, Trans::T, 197, 768, 3072},
};

// C = A W^T with W pre-packed once (envit::PackedWeight, inference, packed for `prec`), forward
// shapes only.
void BM_GemmPrepacked(benchmark::State& state, Shape s, int threads, envit::Precision prec) {
  envit::PrecisionScope scope(prec);
  std::vector<float> A(static_cast<std::size_t>(s.M * s.K)), W(static_cast<std::size_t>(s.K * s.N)),
      C(static_cast<std::size_t>(s.M * s.N), 0.0f);
  for (std::size_t i = 0; i < A.size(); ++i) A[i] = float((i * 7919) % 1000) * 1e-3f - 0.5f;
  for (std::size_t i = 0; i < W.size(); ++i) W[i] = float((i * 104729) % 1000) * 1e-3f - 0.5f;
  envit::PackedWeight<float> wp;
  wp.pack(W.data(), s.N, s.K);
  const int old_threads = envit::num_threads();
  envit::set_num_threads(threads);
  const double peak = peak_for(threads, prec);
  envit::gemm_weight_t<float>(s.M, s.N, s.K, 1.0f, A.data(), s.K, W.data(), &wp, 0.0f, C.data(), s.N);
  for (auto _ : state) {
    envit::gemm_weight_t<float>(s.M, s.N, s.K, 1.0f, A.data(), s.K, W.data(), &wp, 0.0f, C.data(), s.N);
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  set_gemm_counters(state, s, peak);
  envit::set_num_threads(old_threads);
}

// The same product as in a whole batch-1 forward pass, where each weight is used once per pass and
// the pass's weights do not fit in L2: cycles through enough pre-packed copies of W to total
// `total_mb` (tiny28's block weights are 21 MB, ViT-B/16's 344 MB), so every call reads its
// weight from L3 or DRAM, not from L2 as in gemm/prepacked.
void BM_GemmPrepackedCold(benchmark::State& state, Shape s, int threads, double total_mb) {
  std::vector<float> A(static_cast<std::size_t>(s.M * s.K)), W(static_cast<std::size_t>(s.K * s.N)),
      C(static_cast<std::size_t>(s.M * s.N), 0.0f);
  for (std::size_t i = 0; i < A.size(); ++i) A[i] = float((i * 7919) % 1000) * 1e-3f - 0.5f;
  for (std::size_t i = 0; i < W.size(); ++i) W[i] = float((i * 104729) % 1000) * 1e-3f - 0.5f;
  const double w_mb = double(W.size()) * sizeof(float) * 1e-6;
  const std::size_t copies = static_cast<std::size_t>(std::max(2.0, std::ceil(total_mb / w_mb)));
  std::vector<envit::PackedWeight<float>> wp(copies);
  for (auto& w : wp) w.pack(W.data(), s.N, s.K);  // the same values, separate memory
  const int old_threads = envit::num_threads();
  envit::set_num_threads(threads);
  const double peak = peak_gflops(threads);
  std::size_t i = 0;
  for (auto _ : state) {
    envit::gemm_weight_t<float>(s.M, s.N, s.K, 1.0f, A.data(), s.K, W.data(), &wp[i], 0.0f, C.data(), s.N);
    i = i + 1 == copies ? 0 : i + 1;
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  set_gemm_counters(state, s, peak);
  state.counters["weight_MB"] = double(copies) * w_mb;
  envit::set_num_threads(old_threads);
}

void BM_Gemm(benchmark::State& state, Shape s, GemmBackend backend, int threads, envit::Precision prec) {
  envit::PrecisionScope scope(prec);
  const idx lda = s.ta == Trans::N ? s.K : s.M, ldb = s.tb == Trans::N ? s.N : s.K;
  std::vector<float> A(static_cast<std::size_t>(s.M * s.K)), B(static_cast<std::size_t>(s.K * s.N)),
      C(static_cast<std::size_t>(s.M * s.N), 0.0f);
  for (std::size_t i = 0; i < A.size(); ++i) A[i] = float((i * 7919) % 1000) * 1e-3f - 0.5f;
  for (std::size_t i = 0; i < B.size(); ++i) B[i] = float((i * 104729) % 1000) * 1e-3f - 0.5f;
  const GemmBackend old_backend = envit::gemm_backend();
  const int old_threads = envit::num_threads();
  envit::set_gemm_backend(backend);
  envit::set_num_threads(threads);
  const double peak = peak_for(threads, prec);
  // warm-up: pack buffers, OpenMP team
  envit::gemm<float>(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), s.N);
  for (auto _ : state) {
    envit::gemm<float>(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f,
                       C.data(), s.N);
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  set_gemm_counters(state, s, peak);
  envit::set_gemm_backend(old_backend);
  envit::set_num_threads(old_threads);
}

void BM_MicroKernel(benchmark::State& state) {
  namespace pk = envit::detail::gemm_pk;
  using Arch = xsimd::default_arch;
  using Blk = pk::Blocking<Arch>;
  constexpr int MR = Blk::MR, NR = Blk::NR;
  const idx kc = state.range(0);
  if (kc > Blk::KC) {
    state.SkipWithError("kc above the A panel stride");
    return;
  }
  auto A = envit::aligned_buffer<float>(std::size_t(MR) * Blk::KC);
  auto B = envit::aligned_buffer<float>(std::size_t(4) * kc * NR);
  auto C = envit::aligned_buffer<float>(std::size_t(MR) * NR);
  for (idx i = 0; i < MR * Blk::KC; ++i) A[std::size_t(i)] = float((i * 7919) % 1000) * 1e-3f - 0.5f;
  for (idx i = 0; i < 4 * kc * NR; ++i) B[std::size_t(i)] = float((i * 104729) % 1000) * 1e-3f - 0.5f;
  pk::PrefetchStream p0, p1;
  const double peak = peak_gflops(1);
  std::size_t i = 0;
  for (auto _ : state) {
    pk::micro_kernel<Arch, MR, Blk::NV, Blk::KC, false>(kc, A.get(), B.get() + (i++ & 3) * std::size_t(kc) * NR,
                                                        C.get(), NR, 1.0f, 0.0f, MR, NR, C.get(), 0, p0, p1, Blk::KC);
    benchmark::DoNotOptimize(C.get());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * MR * NR * double(kc);
  state.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["pct_peak"] =
      benchmark::Counter(peak > 0 ? flops * 1e-9 * 100.0 / peak : 0.0, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_GFLOPs"] = peak;
}

const bool registered = [] {
  benchmark::RegisterBenchmark("peak", BM_Peak, envit::Precision::fp32)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime();
  benchmark::RegisterBenchmark("peak_bf16", BM_Peak, envit::Precision::bf16)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime();
  benchmark::RegisterBenchmark("peak_int8", BM_Peak, envit::Precision::int8)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime();
  benchmark::RegisterBenchmark("microkernel", BM_MicroKernel)->Arg(192)->Arg(768)->ArgName("kc")->UseRealTime();
  for (int threads : {1, 2})
    for (const Shape& s : kShapes)
      for (GemmBackend b : {GemmBackend::eigen, GemmBackend::packed}) {
        char name[160];
        std::snprintf(name, sizeof name, "gemm/%s/t%d/%s_%s%s_%tdx%tdx%td",
                      b == GemmBackend::eigen ? "eigen" : "packed", threads, s.name,
                      s.ta == Trans::N ? "N" : "T", s.tb == Trans::N ? "N" : "T", s.M, s.N, s.K);
        benchmark::RegisterBenchmark(name, BM_Gemm, s, b, threads, envit::Precision::fp32)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
  for (int threads : {1, 2})
    for (const Shape& s : kShapes) {
      char name[160];
      std::snprintf(name, sizeof name, "gemm_bf16/t%d/%s_%s%s_%tdx%tdx%td", threads, s.name,
                    s.ta == Trans::N ? "N" : "T", s.tb == Trans::N ? "N" : "T", s.M, s.N, s.K);
      benchmark::RegisterBenchmark(name, BM_Gemm, s, GemmBackend::packed, threads, envit::Precision::bf16)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  for (int threads : {1, 2})
    for (const Shape& s : kShapes)
      if (s.ta == Trans::N && s.tb == Trans::T) {
        char name[160];
        std::snprintf(name, sizeof name, "gemm/prepacked/t%d/%s_%tdx%tdx%td", threads, s.name, s.M, s.N, s.K);
        benchmark::RegisterBenchmark(name, BM_GemmPrepacked, s, threads, envit::Precision::fp32)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        std::snprintf(name, sizeof name, "gemm_bf16/prepacked/t%d/%s_%tdx%tdx%td", threads, s.name, s.M, s.N, s.K);
        benchmark::RegisterBenchmark(name, BM_GemmPrepacked, s, threads, envit::Precision::bf16)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        std::snprintf(name, sizeof name, "gemm_int8/prepacked/t%d/%s_%tdx%tdx%td", threads, s.name, s.M, s.N, s.K);
        benchmark::RegisterBenchmark(name, BM_GemmPrepacked, s, threads, envit::Precision::int8)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
  for (int threads : {1, 2})
    for (const Shape& s : kShapes) {
      const std::string n = s.name;
      const double total_mb = n.rfind("b1_", 0) == 0 ? 24.0 : n.rfind("B16b1_", 0) == 0 ? 344.0 : 0.0;
      if (total_mb == 0.0) continue;
      char name[160];
      std::snprintf(name, sizeof name, "gemm/prepacked_cold/t%d/%s_%tdx%tdx%td", threads, s.name, s.M, s.N, s.K);
      benchmark::RegisterBenchmark(name, BM_GemmPrepackedCold, s, threads, total_mb)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  return true;
}();

}  // namespace
