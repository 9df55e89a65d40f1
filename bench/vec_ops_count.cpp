// vec_ops_count — runs one float op at the small multi-exit ViT's shapes (batch 128, 50 tokens,
// dim 96, 3 heads, MLP 192) a fixed number of times, for instruction counting under
// callgrind (stable under machine load, unlike wall-clock):
//   valgrind --tool=callgrind --collect-atstart=no ./vec_ops_count gelu_fwd 5
// Only the timed loop is collected (CALLGRIND_TOGGLE_COLLECT around it); divide the total Ir by
// the iteration count. Without valgrind it prints the loop's wall time (indicative only).
// valgrind 3.19 does not decode AVX-512: count builds made with -march=x86-64-v3 or without -march
// (a dispatched build picks the set valgrind's CPU reports; ENVIT_ISA=avx2 or =baseline forces one).
// Ops: gelu_fwd gelu_bwd layernorm_fwd layernorm_bwd softmax_fwd softmax_bwd log_softmax_fwd
//      attention_fwd attention_bwd mlp_fwd mlp_bwd block_fwd block_bwd
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cli.hpp"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_TOGGLE_COLLECT
#endif

#include "envit/core/parallel.hpp"
#include "envit/core/rng.hpp"
#include "envit/ops/block.hpp"
#include "envit/ops/gelu.hpp"
#include "envit/ops/layernorm.hpp"
#include "envit/ops/softmax.hpp"

namespace {

using std::ptrdiff_t;
constexpr ptrdiff_t B = 128, N = 50, D = 96, H = 3, F = 192, R = B * N;

std::vector<float> rnd(std::size_t n, std::uint64_t seed, double scale = 1.0, double offset = 0.0) {
  envit::CounterRng r(seed, envit::RngStream::init, 0xC0);
  std::vector<float> v(n);
  for (auto& e : v) e = float(offset + scale * (2.0 * r.uniform() - 1.0));
  return v;
}

struct Bump {  // arena stand-in for the *_take helpers
  std::vector<float> mem;
  std::size_t used = 0;
  explicit Bump(std::size_t n) : mem(n, 0.f) {}
  float* take(std::size_t n) {
    n = (n + 15) / 16 * 16;
    if (used + n > mem.size()) { std::fprintf(stderr, "arena too small\n"); std::exit(2); }
    float* p = mem.data() + used;
    used += n;
    return p;
  }
};

}  // namespace

int run(const std::string& op, int iters) {
  envit::set_num_threads(1);

  const envit::BlockShape bs{B, N, D, H, F};
  Bump arena(std::size_t(40) << 20);
  auto bc = envit::block_cache_take<float>(arena, bs);
  auto bw = envit::block_workspace_take<float>(arena, bs);
  std::vector<std::vector<float>> keep;
  auto param = [&](std::size_t n, std::uint64_t seed, double scale, double offset = 0.0) {
    keep.push_back(rnd(n, seed, scale, offset));
    return static_cast<const float*>(keep.back().data());
  };
  envit::BlockParams<float> bp{param(D, 1, 0.2, 1.0), param(D, 2, 0.1),  param(3 * D * D, 3, 0.1),
                               param(3 * D, 4, 0.1),   param(D * D, 5, 0.1), param(D, 6, 0.1),
                               param(D, 7, 0.2, 1.0),  param(D, 8, 0.1),  param(F * D, 9, 0.1),
                               param(F, 10, 0.1),      param(D * F, 11, 0.1), param(D, 12, 0.1)};
  std::vector<float> g_all(4 * D + 3 * D * D + 3 * D + D * D + D + 2 * F * D + F + D, 0.f);
  float* gp = g_all.data();
  auto gtake = [&](std::size_t n) { float* p = gp; gp += n; return p; };
  envit::BlockGrads<float> bg{gtake(D), gtake(D), gtake(3 * D * D), gtake(3 * D), gtake(D * D), gtake(D),
                              gtake(D), gtake(D), gtake(F * D),     gtake(F),     gtake(D * F), gtake(D)};
  auto x = rnd(R * D, 20, 1.0), dy = rnd(R * D, 21, 1.0), y(std::vector<float>(R * D)),
       dx(std::vector<float>(R * D, 0.f));
  auto h = rnd(R * F, 22, 3.0), dh = rnd(R * F, 23), a(std::vector<float>(R * F)), dha(std::vector<float>(R * F, 0.f));
  auto att = rnd(B * H * N * N, 24, 4.0), datt = rnd(B * H * N * N, 25), patt(std::vector<float>(B * H * N * N)),
       dsm(std::vector<float>(B * H * N * N, 0.f));
  std::vector<float> mean(R), rstd(R), ln_scratch(2 * D);
  const envit::LayerNormParams<float> lp{bp.norm1_w, bp.norm1_b};
  const envit::AttentionParams<float> ap{bp.qkv_w, bp.qkv_b, bp.proj_w, bp.proj_b};
  const envit::MlpParams<float> mp{bp.fc1_w, bp.fc1_b, bp.fc2_w, bp.fc2_b};
  const float scale = 0.17677669529f;

  std::map<std::string, std::function<void()>> ops{
      {"gelu_fwd", [&] { envit::gelu_forward(a.data(), h.data(), R * F); }},
      {"gelu_bwd", [&] { envit::gelu_backward(dha.data(), dh.data(), h.data(), R * F); }},
      {"layernorm_fwd",
       [&] { envit::layernorm_forward(y.data(), {mean.data(), rstd.data()}, x.data(), lp, {R, D}, 1e-6f); }},
      {"layernorm_bwd",
       [&] {
         envit::layernorm_backward(dx.data(), {bg.dnorm1_w, bg.dnorm1_b}, dy.data(), x.data(),
                                   {mean.data(), rstd.data()}, lp, {R, D}, ln_scratch.data());
       }},
      {"softmax_fwd", [&] { envit::softmax_forward(patt.data(), att.data(), B * H * N, N, scale); }},
      {"softmax_bwd", [&] { envit::softmax_backward(dsm.data(), datt.data(), patt.data(), B * H * N, N, scale); }},
      {"log_softmax_fwd", [&] { envit::log_softmax_forward(patt.data(), att.data(), B * H * N, N, scale); }},
      {"attention_fwd", [&] { envit::attention_forward(y.data(), bc.attn, x.data(), ap, {B, N, D, H}); }},
      {"attention_bwd",
       [&] {
         envit::attention_backward(dx.data(), {bg.dqkv_w, bg.dqkv_b, bg.dproj_w, bg.dproj_b}, dy.data(),
                                   x.data(), bc.attn, ap, {B, N, D, H}, bw.attn);
       }},
      {"mlp_fwd", [&] { envit::mlp_forward(y.data(), bc.mlp, x.data(), mp, {R, D, F}); }},
      {"mlp_bwd",
       [&] {
         envit::mlp_backward(dx.data(), {bg.dfc1_w, bg.dfc1_b, bg.dfc2_w, bg.dfc2_b}, dy.data(), x.data(),
                             bc.mlp, mp, {R, D, F}, bw.mlp);
       }},
      {"block_fwd", [&] { envit::block_forward(y.data(), bc, x.data(), bp, bs, 1e-6f); }},
      {"block_bwd", [&] { envit::block_backward(dx.data(), bg, dy.data(), x.data(), bc, bp, bs, bw); }},
  };
  auto it = ops.find(op);
  if (it == ops.end()) {
    std::string names;
    for (const auto& [name, f] : ops) names += (names.empty() ? "" : ", ") + name;
    throw envit::cli::UsageError("unknown op '" + op + "' (one of " + names + ")");
  }
  // Caches the backward ops read: one forward of everything first.
  envit::layernorm_forward(y.data(), {mean.data(), rstd.data()}, x.data(), lp, {R, D}, 1e-6f);
  envit::softmax_forward(patt.data(), att.data(), B * H * N, N, scale);
  envit::block_forward(y.data(), bc, x.data(), bp, bs, 1e-6f);
  envit::attention_forward(y.data(), bc.attn, x.data(), ap, {B, N, D, H});
  envit::mlp_forward(y.data(), bc.mlp, x.data(), mp, {R, D, F});
  it->second();  // warm-up
  auto t0 = std::chrono::steady_clock::now();
  CALLGRIND_TOGGLE_COLLECT;
  for (int i = 0; i < iters; ++i) it->second();
  CALLGRIND_TOGGLE_COLLECT;
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double chk = 0;
  for (float v : y) chk += v;
  for (float v : dx) chk += v;
  std::printf("%s: %d iters, %.3f ms/iter (indicative), checksum %.6g\n", op.c_str(), iters, 1e3 * s / iters, chk);
  return 0;
}

int main(int argc, char** argv) {
  CLI::App app("vec_ops_count: one float op at the small ViT's shapes, for instruction counts under callgrind.",
               "vec_ops_count");
  envit::cli::setup_app(app);
  std::string op;
  int iters = 5;
  app.add_option("OP", op, "the op (gelu_fwd, gelu_bwd, layernorm_fwd, ..., block_bwd; see the file's header)")
      ->required();
  app.add_option("ITERS", iters, "iterations of the collected loop")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  return envit::cli::run(app, argc, argv, [&] { return run(op, iters); });
}
