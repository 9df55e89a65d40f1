// tests/ops/vit_op_testing.hpp — the harness the ViT op tests share (tests/ops/test_attention.cpp,
// test_mlp.cpp, test_block.cpp, test_patch_embed.cpp). Each op is described once by an
// Op<Shape, T> specialisation: its parameter layout, cache/workspace planning, forward/backward on
// a Pack, and its naive double reference. The checks every op runs are written once on top of
// that: forward+backward on a planned cache, central differences for every gradient, accumulation
// and a null dx, bitwise comparison of two runs, and comparison with reference values. Shapes,
// seeds and tolerances are not chosen here: they stay in the tests. The references themselves are
// in ops_vit_reference.hpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "envit/ops/attention.hpp"
#include "envit/ops/block.hpp"
#include "envit/ops/mlp.hpp"
#include "envit/ops/patch_embed.hpp"
#include "ops_vit_reference.hpp"

namespace envit::testing::vit {

// The parameter tensors of an op, in the field order of its params/grads structs.
struct Field {
  std::string name;
  std::size_t size;
};
using Layout = std::vector<Field>;

// The tensors of a pack as the pointer array a naive reference takes (const T* for a const pack).
template <class P>
auto ptrs(P& p) {
  std::vector<decltype(p[0])> out;
  for (std::size_t i = 0; i < p.size(); ++i) out.push_back(p[i]);
  return out;
}

// One forward+backward of a naive reference: y overwritten; dx and g accumulated from zero.
template <class Cache>
struct RefRun {
  vec y, dx;
  Pack<double> g;
  Cache cache;
};
struct NoCache {};

// Op<Shape, T>: the op whose shape struct is Shape, computed in T. Each specialisation has
//   Cache, Workspace, layout(s), in_size(s), cache_take/workspace_take(arena, s),
//   forward(y, cache, x, params, s), backward(dx, grads, dy, x, cache, params, s, workspace) and
//   reference(x, dy, params, s) -> RefRun; the members of OpDefaults it inherits or hides.
template <class Shape, class T>
struct Op;

// What most ops share; a specialisation hides what differs. Self: the specialisation.
template <class Self, class Shape>
struct OpDefaults {
  static constexpr bool has_dx = true;          // backward produces an input gradient
  static constexpr const char* out_name = "y";  // the output's label in messages
  static std::size_t out_size(Shape s) { return Self::in_size(s); }
  static idx batch(Shape s) { return s.batch; }  // the dimension a cache is planned over
  static Shape with_batch(Shape s, idx b) { s.batch = b; return s; }
};

// ---------------------------------------------------------------- attention

inline std::string str(const AttentionShape& s) {
  return "B=" + std::to_string(s.batch) + " N=" + std::to_string(s.tokens) + " D=" +
         std::to_string(s.dim) + " H=" + std::to_string(s.heads);
}

template <class T>
struct Op<AttentionShape, T> : OpDefaults<Op<AttentionShape, T>, AttentionShape> {
  using Shape = AttentionShape;
  using Cache = AttentionCache<T>;
  using Workspace = AttentionWorkspace<T>;
  static Layout layout(Shape s) {
    const std::size_t D = std::size_t(s.dim);
    return {{"qkv_w", 3 * D * D}, {"qkv_b", 3 * D}, {"proj_w", D * D}, {"proj_b", D}};
  }
  static std::size_t in_size(Shape s) { return std::size_t(s.batch * s.tokens * s.dim); }
  template <class A> static Cache cache_take(A& a, Shape s) { return attention_cache_take<T>(a, s); }
  template <class A> static Workspace workspace_take(A& a, Shape s) { return attention_workspace_take<T>(a, s); }
  static AttentionParams<T> params(const Pack<T>& p) { return {p[0], p[1], p[2], p[3]}; }
  static AttentionGrads<T> grads(Pack<T>& g) { return {g[0], g[1], g[2], g[3]}; }
  static void forward(T* y, Cache c, const T* x, const Pack<T>& p, Shape s) {
    attention_forward<T>(y, c, x, params(p), s);
  }
  static void backward(T* dx, Pack<T>& g, const T* dy, const T* x, Cache c, const Pack<T>& p, Shape s,
                       Workspace w) {
    attention_backward<T>(dx, grads(g), dy, x, c, params(p), s, w);
  }
  static AttShape ref_shape(Shape s) { return {s.batch, s.tokens, s.dim, s.heads}; }
  static RefRun<RefAttCache> reference(const vec& x, const vec& dy, const Pack<double>& p, Shape s) {
    RefRun<RefAttCache> r{vec(x.size()), vec(x.size(), 0.0), p.zeros_like(), {}};
    ref_attention(r.y.data(), r.cache, x.data(), ptrs(p).data(), ref_shape(s));
    ref_attention_bwd(r.dx.data(), ptrs(r.g).data(), dy.data(), x.data(), r.cache, ptrs(p).data(), ref_shape(s));
    return r;
  }
};

// ---------------------------------------------------------------- MLP

inline std::string str(const MlpShape& s) {
  return "R=" + std::to_string(s.rows) + " D=" + std::to_string(s.dim) + " F=" + std::to_string(s.hidden);
}

template <class T>
struct Op<MlpShape, T> : OpDefaults<Op<MlpShape, T>, MlpShape> {
  using Shape = MlpShape;
  using Cache = MlpCache<T>;
  using Workspace = MlpWorkspace<T>;
  static Layout layout(Shape s) {
    const std::size_t D = std::size_t(s.dim), F = std::size_t(s.hidden);
    return {{"fc1_w", F * D}, {"fc1_b", F}, {"fc2_w", D * F}, {"fc2_b", D}};
  }
  static std::size_t in_size(Shape s) { return std::size_t(s.rows * s.dim); }
  static idx batch(Shape s) { return s.rows; }
  static Shape with_batch(Shape s, idx rows) { s.rows = rows; return s; }
  template <class A> static Cache cache_take(A& a, Shape s) { return mlp_cache_take<T>(a, s); }
  template <class A> static Workspace workspace_take(A& a, Shape s) { return mlp_workspace_take<T>(a, s); }
  static MlpParams<T> params(const Pack<T>& p) { return {p[0], p[1], p[2], p[3]}; }
  static MlpGrads<T> grads(Pack<T>& g) { return {g[0], g[1], g[2], g[3]}; }
  static void forward(T* y, Cache c, const T* x, const Pack<T>& p, Shape s) {
    mlp_forward<T>(y, c, x, params(p), s);
  }
  static void backward(T* dx, Pack<T>& g, const T* dy, const T* x, Cache c, const Pack<T>& p, Shape s,
                       Workspace w) {
    mlp_backward<T>(dx, grads(g), dy, x, c, params(p), s, w);
  }
  static RefRun<RefMlpCache> reference(const vec& x, const vec& dy, const Pack<double>& p, Shape s) {
    RefRun<RefMlpCache> r{vec(x.size()), vec(x.size(), 0.0), p.zeros_like(), {}};
    ref_mlp(r.y.data(), r.cache, x.data(), ptrs(p).data(), s.rows, s.dim, s.hidden);
    ref_mlp_bwd(r.dx.data(), ptrs(r.g).data(), dy.data(), x.data(), r.cache, ptrs(p).data(), s.rows, s.dim,
                s.hidden);
    return r;
  }
};

// ---------------------------------------------------------------- block

inline std::string str(const BlockShape& s) {
  return "B=" + std::to_string(s.batch) + " N=" + std::to_string(s.tokens) + " D=" +
         std::to_string(s.dim) + " H=" + std::to_string(s.heads) + " F=" + std::to_string(s.hidden);
}

template <class T>
struct Op<BlockShape, T> : OpDefaults<Op<BlockShape, T>, BlockShape> {
  using Shape = BlockShape;
  using Cache = BlockCache<T>;
  using Workspace = BlockWorkspace<T>;
  static constexpr T kEps = T(1e-6);  // LayerNorm eps unless a test passes its own
  static Layout layout(Shape s) {
    const std::size_t D = std::size_t(s.dim), F = std::size_t(s.hidden);
    return {{"norm1_w", D},     {"norm1_b", D}, {"qkv_w", 3 * D * D}, {"qkv_b", 3 * D},
            {"proj_w", D * D},  {"proj_b", D},  {"norm2_w", D},       {"norm2_b", D},
            {"fc1_w", F * D},   {"fc1_b", F},   {"fc2_w", D * F},     {"fc2_b", D}};
  }
  static std::size_t in_size(Shape s) { return std::size_t(s.batch * s.tokens * s.dim); }
  template <class A> static Cache cache_take(A& a, Shape s) { return block_cache_take<T>(a, s); }
  template <class A> static Workspace workspace_take(A& a, Shape s) { return block_workspace_take<T>(a, s); }
  static BlockParams<T> params(const Pack<T>& p) {
    return {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]};
  }
  static BlockGrads<T> grads(Pack<T>& g) {
    return {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11]};
  }
  static void forward(T* y, Cache c, const T* x, const Pack<T>& p, Shape s, T eps = kEps) {
    block_forward<T>(y, c, x, params(p), s, eps);
  }
  static void backward(T* dx, Pack<T>& g, const T* dy, const T* x, Cache c, const Pack<T>& p, Shape s,
                       Workspace w) {
    block_backward<T>(dx, grads(g), dy, x, c, params(p), s, w);
  }
  // eps as the T run sees it: double(float(1e-6)) for a float run.
  static RefRun<RefBlockCache> reference(const vec& x, const vec& dy, const Pack<double>& p, Shape s) {
    const BlkShape rs{s.batch, s.tokens, s.dim, s.heads, s.hidden};
    RefRun<RefBlockCache> r{vec(x.size()), vec(x.size(), 0.0), p.zeros_like(), {}};
    ref_block(r.y.data(), r.cache, x.data(), ptrs(p).data(), rs, double(kEps));
    ref_block_bwd(r.dx.data(), ptrs(r.g).data(), dy.data(), x.data(), r.cache, ptrs(p).data(), rs, double(kEps));
    return r;
  }
};

// ---------------------------------------------------------------- patch embedding

inline std::string str(const PatchEmbedShape& s) {
  return "B=" + std::to_string(s.batch) + " C=" + std::to_string(s.channels) + " H=" +
         std::to_string(s.height) + " W=" + std::to_string(s.width) + " P=" + std::to_string(s.patch) +
         " D=" + std::to_string(s.dim);
}

template <class T>
struct Op<PatchEmbedShape, T> : OpDefaults<Op<PatchEmbedShape, T>, PatchEmbedShape> {
  using Shape = PatchEmbedShape;
  using Cache = PatchEmbedCache<T>;
  using Workspace = PatchEmbedWorkspace<T>;
  static constexpr bool has_dx = false;  // the images need no gradient
  static constexpr const char* out_name = "tokens";
  static Layout layout(Shape s) {
    const std::size_t D = std::size_t(s.dim), K = std::size_t(s.channels * s.patch * s.patch);
    const std::size_t Nt = std::size_t(patch_embed_tokens(s));
    return {{"w", D * K}, {"b", D}, {"cls", D}, {"pos", Nt * D}};
  }
  static std::size_t in_size(Shape s) { return std::size_t(s.batch * s.channels * s.height * s.width); }
  static std::size_t out_size(Shape s) { return std::size_t(s.batch * patch_embed_tokens(s) * s.dim); }
  template <class A> static Cache cache_take(A& a, Shape s) { return patch_embed_cache_take<T>(a, s); }
  template <class A> static Workspace workspace_take(A& a, Shape s) { return patch_embed_workspace_take<T>(a, s); }
  static PatchEmbedParams<T> params(const Pack<T>& p) { return {p[0], p[1], p[2], p[3]}; }
  static PatchEmbedGrads<T> grads(Pack<T>& g) { return {g[0], g[1], g[2], g[3]}; }
  static void forward(T* tok, Cache c, const T* img, const Pack<T>& p, Shape s) {
    patch_embed_forward<T>(tok, c, img, params(p), s);
  }
  // dx and img are unused: patch_embed_backward needs neither.
  static void backward(T* /*dx*/, Pack<T>& g, const T* dtok, const T* /*img*/, Cache c, const Pack<T>& p,
                       Shape s, Workspace w) {
    patch_embed_backward<T>(grads(g), dtok, c, params(p), s, w);
  }
  static RefRun<NoCache> reference(const vec& img, const vec& dtok, const Pack<double>& p, Shape s) {
    const PeShape rs{s.batch, s.channels, s.height, s.width, s.patch, s.dim};
    RefRun<NoCache> r{vec(dtok.size()), {}, p.zeros_like(), {}};
    ref_patch_embed(r.y.data(), img.data(), ptrs(p).data(), rs);
    ref_patch_embed_bwd(ptrs(r.g).data(), dtok.data(), img.data(), rs);
    return r;
  }
};

// ---------------------------------------------------------------- the shared checks

// Parameters in the op's layout, filled in double by fill_param (seeds seed, seed+1, ...) and cast.
template <class T, class Shape>
Pack<T> make_params(Shape s, std::uint64_t seed) {
  Pack<double> p;
  for (const Field& f : Op<Shape, double>::layout(s)) p.add(f.name, f.size);
  for (std::size_t i = 0; i < p.size(); ++i) fill_param(p.v[i], p.names[i], seed + i);
  return p.template cast<T>();
}

// An op's inputs: x, the upstream gradient dy (also the R of loss = sum(y * R)), parameters.
template <class Shape, class T>
struct Case {
  Shape s;
  std::vector<T> x, dy;
  Pack<T> p;
  template <class U> Case<Shape, U> cast() const {
    return {s, cast_vec<U>(x), cast_vec<U>(dy), p.template cast<U>()};
  }
};

// x uniform in [-x_range, x_range), dy in [-1, 1), parameters from make_params; all drawn in double
// and rounded to T, so a double reference sees exactly the values a float run sees.
template <class T, class Shape>
Case<Shape, T> random_case(Shape s, std::uint64_t x_seed, std::uint64_t dy_seed, std::uint64_t p_seed,
                           double x_range = 1.0) {
  using O = Op<Shape, T>;
  return {s, cast_vec<T>(random_vec<double>(O::in_size(s), x_seed, -x_range, x_range)),
          cast_vec<T>(random_vec<double>(O::out_size(s), dy_seed)), make_params<T>(s, p_seed)};
}

// What one forward+backward produced; dx is empty for an op without an input gradient. The cache
// (and its arena) is kept for tests that inspect intermediates.
template <class Shape, class T>
struct Run {
  std::vector<T> y, dx;
  Pack<T> g;
  Carved<T, typename Op<Shape, T>::Cache> cache;
};

// Forward then backward with c.dy; dx and the gradients start at zero. The cache and workspace are
// planned for plan_batch (>= the batch of c.s). fwd_args go to forward (the block's eps).
template <class Shape, class T, class... FwdArgs>
Run<Shape, T> run(const Case<Shape, T>& c, idx plan_batch, FwdArgs... fwd_args) {
  using O = Op<Shape, T>;
  const Shape ps = O::with_batch(c.s, plan_batch);
  Run<Shape, T> r;
  r.cache = carve<T>([&](auto& a) { return O::cache_take(a, ps); });
  auto ws = carve<T>([&](auto& a) { return O::workspace_take(a, ps); });
  r.y.assign(O::out_size(c.s), T(0));
  if constexpr (O::has_dx) r.dx.assign(c.x.size(), T(0));
  r.g = c.p.zeros_like();
  O::forward(r.y.data(), r.cache.value, c.x.data(), c.p, c.s, fwd_args...);
  O::backward(r.dx.data(), r.g, c.dy.data(), c.x.data(), r.cache.value, c.p, c.s, ws.value);
  return r;
}
template <class Shape, class T>
Run<Shape, T> run(const Case<Shape, T>& c) {
  return run(c, Op<Shape, T>::batch(c.s));
}

// The naive double reference on the values of c (rounded to T, then widened).
template <class Shape, class T>
auto reference(const Case<Shape, T>& c) {
  const auto d = c.template cast<double>();
  return Op<Shape, T>::reference(d.x, d.dy, d.p, d.s);
}

// Central differences (grad_check) for dx and every parameter gradient, loss = sum(y * c.dy).
template <class Shape>
void check_gradients(Case<Shape, double> c) {
  using O = Op<Shape, double>;
  auto cache = carve<double>([&](auto& a) { return O::cache_take(a, c.s); });
  auto ws = carve<double>([&](auto& a) { return O::workspace_take(a, c.s); });
  std::vector<double> y(O::out_size(c.s));
  auto loss = [&] {
    O::forward(y.data(), cache.value, c.x.data(), c.p, c.s);
    return dot(y, c.dy);
  };
  loss();
  std::vector<double> dx(O::has_dx ? c.x.size() : 0, 0.0);
  auto g = c.p.zeros_like();
  O::backward(dx.data(), g, c.dy.data(), c.x.data(), cache.value, c.p, c.s, ws.value);
  if constexpr (O::has_dx) grad_check("dx", c.x.data(), dx.data(), dx.size(), loss);
  for (std::size_t i = 0; i < c.p.size(); ++i) grad_check(g.names[i], c.p[i], g[i], c.p.v[i].size(), loss);
}

// Two backward calls on one forward give twice the gradients of one; a null dx still gives the
// parameter gradients of one call, bitwise.
template <class Shape>
void check_accumulates(const Case<Shape, double>& c) {
  using O = Op<Shape, double>;
  auto once = run(c);
  auto cache = carve<double>([&](auto& a) { return O::cache_take(a, c.s); });
  auto ws = carve<double>([&](auto& a) { return O::workspace_take(a, c.s); });
  std::vector<double> y(O::out_size(c.s)), dx(once.dx.size(), 0.0);
  auto g = c.p.zeros_like();
  O::forward(y.data(), cache.value, c.x.data(), c.p, c.s);
  for (int k = 0; k < 2; ++k) O::backward(dx.data(), g, c.dy.data(), c.x.data(), cache.value, c.p, c.s, ws.value);
  // Not bitwise 2x: GEMMs with beta = 1 and the bias sums add partial sums into the existing value.
  auto twice = [](std::vector<double> v) {
    for (auto& e : v) e *= 2;
    return v;
  };
  if constexpr (O::has_dx) require_close("dx", dx.data(), twice(once.dx).data(), dx.size(), 1e-13, 1e-15);
  for (std::size_t t = 0; t < g.size(); ++t)
    require_close(g.names[t], g[t], twice(once.g.v[t]).data(), g.v[t].size(), 1e-13, 1e-15);
  if constexpr (O::has_dx) {
    auto g2 = c.p.zeros_like();
    O::backward(nullptr, g2, c.dy.data(), c.x.data(), cache.value, c.p, c.s, ws.value);
    REQUIRE(same_bits(g2, once.g));
  }
}

// Output, dx and parameter gradients of two runs are bitwise equal.
template <class Shape, class T>
void require_same_bits(const Run<Shape, T>& a, const Run<Shape, T>& b) {
  REQUIRE(same_bits(a.y, b.y));
  if constexpr (Op<Shape, T>::has_dx) REQUIRE(same_bits(a.dx, b.dx));
  REQUIRE(same_bits(a.g, b.g));
}

// A run against reference values: output, dx and every parameter gradient within tol of the
// tensor's largest entry (require_close_scaled).
template <class Shape, class T, class Cache>
void require_matches(const Run<Shape, T>& got, const RefRun<Cache>& ref, double tol = 1e-5) {
  require_close_scaled(Op<Shape, T>::out_name, got.y.data(), ref.y.data(), ref.y.size(), tol);
  if constexpr (Op<Shape, T>::has_dx) require_close_scaled("dx", got.dx.data(), ref.dx.data(), ref.dx.size(), tol);
  for (std::size_t i = 0; i < ref.g.size(); ++i)
    require_close_scaled(got.g.names[i], got.g[i], ref.g[i], ref.g.v[i].size(), tol);
}

}  // namespace envit::testing::vit
