// Benchmarks of the basic ops in float at ViT shapes: linear (forward, backward; per GEMM
// backend), layernorm, gelu (forward, backward) and softmax forward.
//   ViT-Tiny on 28x28: rows R = 128 * 50 = 6400, D = 192, F = 768
//   ViT-B/16:          rows R = 8 * 197  = 1576, D = 768, F = 3072
// Softmax also runs at the attention-score shapes (rows B*H*N, columns N).
// Counters: linear reports GFLOP (a rate, shown as GFLOP/s): forward 2 R I O, backward 4 R I O
// (dx and dW; db ignored). The memory-bound ops report bytes/s from the bytes each pass must
// move once: forward read x + write y; backward read dy, x + read/write dx (layernorm adds the
// parameter rows, which are negligible). Backward benchmarks keep accumulating into the same
// gradients, which does not change the work. No timings are claimed here (shared machine).
#include <benchmark/benchmark.h>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "envit/core/rng.hpp"
#include "envit/kernels/gemm.hpp"
#include "envit/ops/gelu.hpp"
#include "envit/ops/layernorm.hpp"
#include "envit/ops/linear.hpp"
#include "envit/ops/softmax.hpp"

namespace {

using envit::GemmBackend;
using std::ptrdiff_t;

std::vector<float> random_floats(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  envit::CounterRng r(seed, envit::RngStream::init, 0xB5);
  std::vector<float> v(n);
  for (auto& e : v) e = float(scale * (2.0 * r.uniform() - 1.0));
  return v;
}

void set_flops(benchmark::State& st, double flops_per_iter) {
  st.counters["GFLOP"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void set_bytes(benchmark::State& st, double bytes_per_iter) {
  st.SetBytesProcessed(static_cast<std::int64_t>(bytes_per_iter) * st.iterations());
}

// ---------------------------------------------------------------------------------- linear

void BM_linear(benchmark::State& st, ptrdiff_t R, ptrdiff_t I, ptrdiff_t O, GemmBackend be, bool bwd) {
  const GemmBackend saved = envit::gemm_backend();
  envit::set_gemm_backend(be);
  auto x = random_floats(R * I, 1), w = random_floats(O * I, 2, 0.05), b = random_floats(O, 3);
  auto dy = random_floats(R * O, 4);
  std::vector<float> y(R * O), dx(R * I, 0.f), dw(O * I, 0.f), db(O, 0.f);
  const envit::LinearShape s{R, I, O};
  const envit::LinearParams<float> p{w.data(), b.data()};
  for (auto _ : st) {
    if (bwd)
      envit::linear_backward(dx.data(), {dw.data(), db.data()}, dy.data(), x.data(), p, s);
    else
      envit::linear_forward(y.data(), x.data(), p, s);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(y.data());
  benchmark::DoNotOptimize(dx.data());
  set_flops(st, (bwd ? 4.0 : 2.0) * double(R) * double(I) * double(O));
  envit::set_gemm_backend(saved);
}

// ------------------------------------------------------------------------------- layernorm

void BM_layernorm(benchmark::State& st, ptrdiff_t R, ptrdiff_t D, bool bwd) {
  auto x = random_floats(R * D, 5), dy = random_floats(R * D, 6);
  std::vector<float> gamma(D, 1.f), beta(D, 0.f), y(R * D), mean(R), rstd(R), dx(R * D, 0.f),
      dg(D, 0.f), dbt(D, 0.f), scratch(2 * D * envit::num_threads());
  const envit::LayerNormShape s{R, D};
  const envit::LayerNormCache<float> c{mean.data(), rstd.data()};
  const envit::LayerNormParams<float> p{gamma.data(), beta.data()};
  envit::layernorm_forward(y.data(), c, x.data(), p, s, 1e-6f);
  for (auto _ : st) {
    if (bwd)
      envit::layernorm_backward(dx.data(), {dg.data(), dbt.data()}, dy.data(), x.data(), c, p, s, scratch.data());
    else
      envit::layernorm_forward(y.data(), c, x.data(), p, s, 1e-6f);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(y.data());
  benchmark::DoNotOptimize(dx.data());
  set_bytes(st, (bwd ? 4.0 : 2.0) * double(R) * double(D) * sizeof(float));
}

// ------------------------------------------------------------------------------------ gelu

void BM_gelu(benchmark::State& st, ptrdiff_t R, ptrdiff_t F, bool bwd) {
  const ptrdiff_t n = R * F;
  auto x = random_floats(n, 7, 3.0), dy = random_floats(n, 8);
  std::vector<float> y(n), dx(n, 0.f);
  for (auto _ : st) {
    if (bwd)
      envit::gelu_backward(dx.data(), dy.data(), x.data(), n);
    else
      envit::gelu_forward(y.data(), x.data(), n);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(y.data());
  benchmark::DoNotOptimize(dx.data());
  set_bytes(st, (bwd ? 4.0 : 2.0) * double(n) * sizeof(float));
}

// --------------------------------------------------------------------------------- softmax

void BM_softmax(benchmark::State& st, ptrdiff_t R, ptrdiff_t C) {
  auto x = random_floats(R * C, 9, 4.0);
  std::vector<float> y(R * C);
  for (auto _ : st) {
    envit::softmax_forward(y.data(), x.data(), R, C, 0.125f);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(y.data());
  set_bytes(st, 2.0 * double(R) * double(C) * sizeof(float));
}

struct Model { const char* name; ptrdiff_t B, N, D, H, F; };
constexpr Model kTiny{"vit_tiny_28", 128, 50, 192, 3, 768};
constexpr Model kB16{"vit_b16", 8, 197, 768, 12, 3072};

const bool registered = [] {
  const std::pair<const char*, GemmBackend> backends[] = {{"packed", GemmBackend::packed},
                                                          {"eigen", GemmBackend::eigen}};
  for (const Model& m : {kTiny, kB16}) {
    const ptrdiff_t R = m.B * m.N;
    const std::string tag = std::string("/") + m.name;
    for (bool bwd : {false, true}) {
      const std::string dir = bwd ? "_bwd" : "_fwd";
      // fc1 (D -> F) and fc2 (F -> D) of the MLP
      for (auto [I, O, lname] : {std::tuple{m.D, m.F, "fc1"}, std::tuple{m.F, m.D, "fc2"}})
        for (const auto& [bname, be] : backends)
          benchmark::RegisterBenchmark(("linear" + dir + tag + "/" + lname + "/" + bname).c_str(),
                                       BM_linear, R, I, O, be, bwd)
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
      for (ptrdiff_t D : {m.D, m.F})
        benchmark::RegisterBenchmark(("layernorm" + dir + tag + "/D" + std::to_string(D)).c_str(),
                                     BM_layernorm, R, D, bwd)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("gelu" + dir + tag + "/F" + std::to_string(m.F)).c_str(), BM_gelu, R,
                                   m.F, bwd)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
    for (ptrdiff_t C : {m.D, m.F})
      benchmark::RegisterBenchmark(("softmax_fwd" + tag + "/rows" + std::to_string(R) + "xC" + std::to_string(C)).c_str(),
                                   BM_softmax, R, C)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    const ptrdiff_t scores_rows = m.B * m.H * m.N;  // attention scores: (B H N, N)
    benchmark::RegisterBenchmark(("softmax_fwd" + tag + "/scores" + std::to_string(scores_rows) + "xN" +
                                  std::to_string(m.N)).c_str(),
                                 BM_softmax, scores_rows, m.N)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

}  // namespace
