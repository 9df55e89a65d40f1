// Benchmarks of the ViT ops in float: attention, MLP and block (forward and backward) and the
// patch embedding, at ViT-Tiny on 28x28 (B=128, N=50, D=192, H=3, F=768, 4x4 patches of 1 channel)
// and ViT-B/16 (B=8, N=197, D=768, H=12, F=3072, 16x16 patches of 3 channels), each registered
// for both float GEMM backends (envit's packed kernel and Eigen).
// Counter GFLOP (a rate, shown as GFLOP/s) counts GEMM multiply-adds as 2 flops and ignores
// softmax, LayerNorm, GELU and bias work:
//   attention fwd 8 R D^2 + 4 B N^2 D,    bwd 16 R D^2 + 8 B N^2 D      (R = B N)
//   mlp       fwd 4 R D F,                bwd 8 R D F
//   block     the sum of both;            patch embed fwd = bwd = 2 B Np D K (K = C P P)
// Backward benchmarks run one forward in setup, then time backward alone (gradients keep
// accumulating, which does not change the work).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "envit/core/arena.hpp"
#include "envit/core/rng.hpp"
#include "envit/ops/attention.hpp"
#include "envit/ops/block.hpp"
#include "envit/ops/mlp.hpp"
#include "envit/ops/patch_embed.hpp"

namespace {

using envit::Arena;
using envit::ArenaPlan;
using envit::GemmBackend;

struct VitShape {
  const char* name;
  std::ptrdiff_t B, N, D, H, F;
  std::ptrdiff_t C, img, P;  // patch embedding: C channels, img x img images, P x P patches
};
constexpr VitShape kTiny28{"vit_tiny_28", 128, 50, 192, 3, 768, 1, 28, 4};
constexpr VitShape kB16{"vit_b16", 8, 197, 768, 12, 3072, 3, 224, 16};

std::vector<float> random_floats(std::size_t n, std::uint64_t seed, double scale) {
  envit::CounterRng r(seed, envit::RngStream::init, 0xBE);
  std::vector<float> v(n);
  for (auto& e : v) e = float(scale * (2.0 * r.uniform() - 1.0));
  return v;
}

// Plans with ArenaPlan, then carves from one Arena (kept alive by the caller).
template <class Take>
auto carve(Arena<float>& arena, Take take) {
  ArenaPlan<float> plan;
  take(plan);
  arena = Arena<float>(plan.total);
  return take(arena);
}

void set_flops(benchmark::State& st, double flops) {
  st.counters["GFLOP"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Parameters of one block, in BlockParams order, with matching gradient buffers.
struct BlockData {
  std::vector<std::vector<float>> p, g;
  explicit BlockData(const VitShape& s) {
    const std::size_t D = std::size_t(s.D), F = std::size_t(s.F);
    const std::size_t sizes[12] = {D, D, 3 * D * D, 3 * D, D * D, D, D, D, F * D, F, D * F, D};
    for (int i = 0; i < 12; ++i) {
      bool norm_w = i == 0 || i == 6;
      p.push_back(random_floats(sizes[i], 100 + i, norm_w ? 0.0 : 0.05));
      if (norm_w) for (auto& e : p.back()) e += 1.0f;
      g.emplace_back(sizes[i], 0.0f);
    }
  }
  envit::BlockParams<float> params() const {
    return {p[0].data(), p[1].data(), p[2].data(), p[3].data(), p[4].data(), p[5].data(),
            p[6].data(), p[7].data(), p[8].data(), p[9].data(), p[10].data(), p[11].data()};
  }
  envit::BlockGrads<float> grads() {
    return {g[0].data(), g[1].data(), g[2].data(), g[3].data(), g[4].data(), g[5].data(),
            g[6].data(), g[7].data(), g[8].data(), g[9].data(), g[10].data(), g[11].data()};
  }
  envit::AttentionParams<float> attn() const { return {p[2].data(), p[3].data(), p[4].data(), p[5].data()}; }
  envit::AttentionGrads<float> attn_grads() { return {g[2].data(), g[3].data(), g[4].data(), g[5].data()}; }
  envit::MlpParams<float> mlp() const { return {p[8].data(), p[9].data(), p[10].data(), p[11].data()}; }
  envit::MlpGrads<float> mlp_grads() { return {g[8].data(), g[9].data(), g[10].data(), g[11].data()}; }
};

double attention_flops(const VitShape& s, bool bwd) {
  double R = double(s.B * s.N), D = double(s.D), N = double(s.N), B = double(s.B);
  return (bwd ? 2.0 : 1.0) * (8.0 * R * D * D + 4.0 * B * N * N * D);
}
double mlp_flops(const VitShape& s, bool bwd) {
  return (bwd ? 2.0 : 1.0) * 4.0 * double(s.B * s.N) * double(s.D) * double(s.F);
}

void BM_attention(benchmark::State& st, VitShape s, GemmBackend be, bool bwd) {
  envit::set_gemm_backend(be);
  envit::AttentionShape as{s.B, s.N, s.D, s.H};
  BlockData w(s);
  const std::size_t n = std::size_t(s.B * s.N * s.D);
  auto x = random_floats(n, 1, 1.0), dy = random_floats(n, 2, 1.0);
  std::vector<float> y(n), dx(n, 0.0f);
  Arena<float> ca, wa;
  auto c = carve(ca, [&](auto& a) { return envit::attention_cache_take<float>(a, as); });
  auto ws = carve(wa, [&](auto& a) { return envit::attention_workspace_take<float>(a, as); });
  envit::attention_forward<float>(y.data(), c, x.data(), w.attn(), as);
  for (auto _ : st) {
    if (bwd)
      envit::attention_backward<float>(dx.data(), w.attn_grads(), dy.data(), x.data(), c, w.attn(), as, ws);
    else
      envit::attention_forward<float>(y.data(), c, x.data(), w.attn(), as);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(y.data());
  benchmark::DoNotOptimize(dx.data());
  set_flops(st, attention_flops(s, bwd));
}

void BM_mlp(benchmark::State& st, VitShape s, GemmBackend be, bool bwd) {
  envit::set_gemm_backend(be);
  envit::MlpShape ms{s.B * s.N, s.D, s.F};
  BlockData w(s);
  const std::size_t n = std::size_t(s.B * s.N * s.D);
  auto x = random_floats(n, 1, 1.0), dy = random_floats(n, 2, 1.0);
  std::vector<float> y(n), dx(n, 0.0f);
  Arena<float> ca, wa;
  auto c = carve(ca, [&](auto& a) { return envit::mlp_cache_take<float>(a, ms); });
  auto ws = carve(wa, [&](auto& a) { return envit::mlp_workspace_take<float>(a, ms); });
  envit::mlp_forward<float>(y.data(), c, x.data(), w.mlp(), ms);
  for (auto _ : st) {
    if (bwd)
      envit::mlp_backward<float>(dx.data(), w.mlp_grads(), dy.data(), x.data(), c, w.mlp(), ms, ws);
    else
      envit::mlp_forward<float>(y.data(), c, x.data(), w.mlp(), ms);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(y.data());
  benchmark::DoNotOptimize(dx.data());
  set_flops(st, mlp_flops(s, bwd));
}

void BM_block(benchmark::State& st, VitShape s, GemmBackend be, bool bwd) {
  envit::set_gemm_backend(be);
  envit::BlockShape bs{s.B, s.N, s.D, s.H, s.F};
  BlockData w(s);
  const std::size_t n = std::size_t(s.B * s.N * s.D);
  auto x = random_floats(n, 1, 1.0), dy = random_floats(n, 2, 1.0);
  std::vector<float> y(n), dx(n, 0.0f);
  Arena<float> ca, wa;
  auto c = carve(ca, [&](auto& a) { return envit::block_cache_take<float>(a, bs); });
  auto ws = carve(wa, [&](auto& a) { return envit::block_workspace_take<float>(a, bs); });
  envit::block_forward<float>(y.data(), c, x.data(), w.params(), bs, 1e-6f);
  for (auto _ : st) {
    if (bwd)
      envit::block_backward<float>(dx.data(), w.grads(), dy.data(), x.data(), c, w.params(), bs, ws);
    else
      envit::block_forward<float>(y.data(), c, x.data(), w.params(), bs, 1e-6f);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(y.data());
  benchmark::DoNotOptimize(dx.data());
  set_flops(st, attention_flops(s, bwd) + mlp_flops(s, bwd));
}

void BM_patch_embed(benchmark::State& st, VitShape s, GemmBackend be, bool bwd) {
  envit::set_gemm_backend(be);
  envit::PatchEmbedShape ps{s.B, s.C, s.img, s.img, s.P, s.D};
  const std::ptrdiff_t Nt = envit::patch_embed_tokens(ps), K = s.C * s.P * s.P;
  const std::size_t D = std::size_t(s.D);
  auto img = random_floats(std::size_t(s.B * s.C * s.img * s.img), 1, 1.0);
  auto wt = random_floats(D * std::size_t(K), 3, 0.05), b = random_floats(D, 4, 0.05),
       cls = random_floats(D, 5, 0.05), pos = random_floats(std::size_t(Nt) * D, 6, 0.05);
  std::vector<float> dw(wt.size()), db(D), dcls(D), dpos(pos.size());
  std::vector<float> tok(std::size_t(s.B * Nt) * D);
  auto dtok = random_floats(tok.size(), 2, 1.0);
  Arena<float> ca, wa;
  auto c = carve(ca, [&](auto& a) { return envit::patch_embed_cache_take<float>(a, ps); });
  auto ws = carve(wa, [&](auto& a) { return envit::patch_embed_workspace_take<float>(a, ps); });
  envit::PatchEmbedParams<float> p{wt.data(), b.data(), cls.data(), pos.data()};
  envit::patch_embed_forward<float>(tok.data(), c, img.data(), p, ps);
  for (auto _ : st) {
    if (bwd)
      envit::patch_embed_backward<float>({dw.data(), db.data(), dcls.data(), dpos.data()}, dtok.data(), c, p, ps, ws);
    else
      envit::patch_embed_forward<float>(tok.data(), c, img.data(), p, ps);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(tok.data());
  benchmark::DoNotOptimize(dw.data());
  set_flops(st, 2.0 * double(s.B * (Nt - 1) * s.D * K));
}

using BenchFn = void (*)(benchmark::State&, VitShape, GemmBackend, bool);

const bool registered = [] {
  const std::pair<const char*, BenchFn> ops[] = {
      {"attention", BM_attention}, {"mlp", BM_mlp}, {"block", BM_block}, {"patch_embed", BM_patch_embed}};
  const std::pair<const char*, GemmBackend> backends[] = {{"packed", GemmBackend::packed},
                                                          {"eigen", GemmBackend::eigen}};
  for (const auto& [op, fn] : ops)
    for (bool bwd : {false, true})
      for (const VitShape& s : {kTiny28, kB16})
        for (const auto& [bname, be] : backends) {
          std::string name = std::string(op) + (bwd ? "_bwd/" : "_fwd/") + s.name + "/" + bname;
          benchmark::RegisterBenchmark(name.c_str(), fn, s, be, bwd)
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
        }
  return true;
}();

}  // namespace
