// tests/ops/ops_vit_reference.hpp — naive double-precision references for the ViT ops (attention,
// MLP, block, patch embedding), written as plain loops straight from the formulas with no GEMM,
// no strided views and no shared code with envit's kernels, plus small helpers the ViT op tests
// share (named parameter packs, plan-then-carve of caches).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "envit/core/arena.hpp"
#include "envit/core/parallel.hpp"
#include "envit/kernels/gemm.hpp"
#include "testing.hpp"

namespace envit::testing::vit {

using vec = std::vector<double>;
using idx = std::ptrdiff_t;

// ---------------------------------------------------------------- helpers shared by the tests

// Named flat tensors, in the field order of a params/grads struct.
template <class T>
struct Pack {
  std::vector<std::string> names;
  std::vector<std::vector<T>> v;
  void add(std::string name, std::size_t n) { names.push_back(std::move(name)); v.emplace_back(n, T(0)); }
  T* operator[](std::size_t i) { return v[i].data(); }
  const T* operator[](std::size_t i) const { return v[i].data(); }
  std::size_t size() const { return v.size(); }
  Pack zeros_like() const {
    Pack z;
    for (std::size_t i = 0; i < size(); ++i) z.add("d" + names[i], v[i].size());
    return z;
  }
  template <class U> Pack<U> cast() const {
    Pack<U> o;
    for (std::size_t i = 0; i < size(); ++i) {
      o.add(names[i], v[i].size());
      for (std::size_t j = 0; j < v[i].size(); ++j) o.v[i][j] = static_cast<U>(v[i][j]);
    }
    return o;
  }
  void zero() { for (auto& t : v) std::fill(t.begin(), t.end(), T(0)); }
};

template <class U, class T>
std::vector<U> cast_vec(const std::vector<T>& x) { return std::vector<U>(x.begin(), x.end()); }

// Plans a cache/workspace with ArenaPlan, carves it from an Arena of exactly that size.
template <class T, class V>
struct Carved {
  Arena<T> arena;
  V value;
};
template <class T, class Take>
auto carve(Take take) {
  ArenaPlan<T> plan;
  take(plan);
  Carved<T, decltype(take(plan))> c{Arena<T>(plan.total), {}};
  c.value = take(c.arena);
  REQUIRE(c.arena.used() == plan.total);
  return c;
}

// Bitwise equality of two buffers (determinism tests).
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}
template <class T>
bool same_bits(const Pack<T>& a, const Pack<T>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same_bits(a.v[i], b.v[i])) return false;
  return true;
}

// Sets the OpenMP thread count for one scope.
struct ThreadScope {
  int old;
  explicit ThreadScope(int n) : old(num_threads()) { set_num_threads(n); }
  ~ThreadScope() { set_num_threads(old); }
};

// Float vs double with a tolerance scaled to the tensor: float rounding in a sum is bounded by
// eps * sum |terms|, not eps * |result|, so entries that cancel to ~0 are judged against the
// largest reference magnitude: |got - ref| <= rel * |ref|  or  <= rel * max|ref|.
template <class A>
void require_close_scaled(const std::string& what, const A* got, const double* ref, std::size_t n,
                          double rel = 1e-5) {
  double mx = 0;
  for (std::size_t i = 0; i < n; ++i) mx = std::max(mx, std::abs(ref[i]));
  require_close(what + " (max |ref| " + std::to_string(mx) + ")", got, ref, n, rel, rel * mx);
}

// Central differences for the ViT ops: step 1e-5 instead of check_grad's default 1e-6. The losses
// here are sums over tens of outputs (|L| ~ 10), so a 1e-6 step leaves ~1e-10 of rounding noise in
// the numeric derivative, which the 1e-4 floor of rel_err turns into ~1e-6 on gradients that are
// exactly zero (the key bias gradient of softmax attention is identically 0). Truncation error at
// 1e-5 is ~1e-11.
template <class F>
void grad_check(const std::string& what, double* x, const double* g, std::size_t n, F&& loss) {
  check_grad(what, x, g, n, std::forward<F>(loss), 1e-6, 256, 1e-5);
}

// Sets the float GEMM backend for one scope.
struct BackendScope {
  GemmBackend old;
  explicit BackendScope(GemmBackend b) : old(gemm_backend()) { set_gemm_backend(b); }
  ~BackendScope() { set_gemm_backend(old); }
};
inline const char* backend_name(GemmBackend b) { return b == GemmBackend::packed ? "packed" : "eigen"; }

inline double dot(const vec& a, const vec& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Parameter init for tests: LayerNorm weights near 1, everything else centred on 0.
inline void fill_param(std::vector<double>& v, const std::string& name, std::uint64_t seed) {
  bool norm_w = name.find("norm") != std::string::npos && name.back() == 'w';
  if (norm_w) fill_uniform(v.data(), v.size(), seed, 0.5, 1.5);
  else fill_uniform(v.data(), v.size(), seed, -0.5, 0.5);
}

// ---------------------------------------------------------------- naive references (double)

// y[r, o] = b[o] + sum_i x[r, i] w[o, i]
inline void ref_linear(double* y, const double* x, const double* w, const double* b, idx R, idx I, idx O) {
  for (idx r = 0; r < R; ++r)
    for (idx o = 0; o < O; ++o) {
      double s = b ? b[o] : 0.0;
      for (idx i = 0; i < I; ++i) s += x[r * I + i] * w[o * I + i];
      y[r * O + o] = s;
    }
}
inline void ref_linear_bwd(double* dx, double* dw, double* db, const double* dy, const double* x,
                           const double* w, idx R, idx I, idx O) {
  for (idx r = 0; r < R; ++r)
    for (idx o = 0; o < O; ++o) {
      double g = dy[r * O + o];
      if (db) db[o] += g;
      for (idx i = 0; i < I; ++i) {
        if (dx) dx[r * I + i] += g * w[o * I + i];
        if (dw) dw[o * I + i] += g * x[r * I + i];
      }
    }
}

inline void ref_layernorm(double* y, const double* x, const double* g, const double* b, idx R, idx D, double eps) {
  for (idx r = 0; r < R; ++r) {
    const double* xr = x + r * D;
    double m = 0, v = 0;
    for (idx i = 0; i < D; ++i) m += xr[i];
    m /= double(D);
    for (idx i = 0; i < D; ++i) v += (xr[i] - m) * (xr[i] - m);
    v /= double(D);
    double rs = 1.0 / std::sqrt(v + eps);
    for (idx i = 0; i < D; ++i) y[r * D + i] = (xr[i] - m) * rs * g[i] + b[i];
  }
}
// Full Jacobian-vector product of LayerNorm, written out per row:
//   dx_i = sum_j dy_j g_j d(xhat_j)/dx_i,  d(xhat_j)/dx_i = rs (delta_ij - 1/D - xhat_i xhat_j / D)
inline void ref_layernorm_bwd(double* dx, double* dg, double* db, const double* dy, const double* x,
                              const double* g, idx R, idx D, double eps) {
  std::vector<double> xh(D);
  for (idx r = 0; r < R; ++r) {
    const double* xr = x + r * D;
    const double* dyr = dy + r * D;
    double m = 0, v = 0;
    for (idx i = 0; i < D; ++i) m += xr[i];
    m /= double(D);
    for (idx i = 0; i < D; ++i) v += (xr[i] - m) * (xr[i] - m);
    v /= double(D);
    double rs = 1.0 / std::sqrt(v + eps);
    for (idx i = 0; i < D; ++i) xh[i] = (xr[i] - m) * rs;
    for (idx i = 0; i < D; ++i) {
      if (dg) dg[i] += dyr[i] * xh[i];
      if (db) db[i] += dyr[i];
      if (dx) {
        double s = 0;
        for (idx j = 0; j < D; ++j)
          s += dyr[j] * g[j] * rs * ((i == j ? 1.0 : 0.0) - 1.0 / double(D) - xh[i] * xh[j] / double(D));
        dx[r * D + i] += s;
      }
    }
  }
}

inline double ref_gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
inline double ref_gelu_grad(double x) {
  return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
}

struct AttShape { idx B, N, D, H; };
// Attention intermediates: qkv (B*N, 3D), att (B, H, N, N), ctx (B*N, D).
struct RefAttCache { vec qkv, att, ctx; };

// p = {qkv_w, qkv_b, proj_w, proj_b}
inline void ref_attention(double* y, RefAttCache& c, const double* x, const double* const* p, AttShape s) {
  const idx B = s.B, N = s.N, D = s.D, H = s.H, E = D / H;
  const double sc = 1.0 / std::sqrt(double(E));
  c.qkv.assign(B * N * 3 * D, 0.0);
  c.att.assign(B * H * N * N, 0.0);
  c.ctx.assign(B * N * D, 0.0);
  ref_linear(c.qkv.data(), x, p[0], p[1], B * N, D, 3 * D);
  auto Q = [&](idx b, idx n, idx h, idx e) { return c.qkv[(b * N + n) * 3 * D + 0 * D + h * E + e]; };
  auto K = [&](idx b, idx n, idx h, idx e) { return c.qkv[(b * N + n) * 3 * D + 1 * D + h * E + e]; };
  auto V = [&](idx b, idx n, idx h, idx e) { return c.qkv[(b * N + n) * 3 * D + 2 * D + h * E + e]; };
  for (idx b = 0; b < B; ++b)
    for (idx h = 0; h < H; ++h)
      for (idx n = 0; n < N; ++n) {
        double* P = &c.att[((b * H + h) * N + n) * N];
        double mx = -1e300;
        for (idx m = 0; m < N; ++m) {
          double sv = 0;
          for (idx e = 0; e < E; ++e) sv += Q(b, n, h, e) * K(b, m, h, e);
          P[m] = sv * sc;
          mx = std::max(mx, P[m]);
        }
        double z = 0;
        for (idx m = 0; m < N; ++m) { P[m] = std::exp(P[m] - mx); z += P[m]; }
        for (idx m = 0; m < N; ++m) P[m] /= z;
        for (idx e = 0; e < E; ++e) {
          double sv = 0;
          for (idx m = 0; m < N; ++m) sv += P[m] * V(b, m, h, e);
          c.ctx[(b * N + n) * D + h * E + e] = sv;
        }
      }
  ref_linear(y, c.ctx.data(), p[2], p[3], B * N, D, D);
}

// g = {dqkv_w, dqkv_b, dproj_w, dproj_b}, accumulated; dx accumulated.
inline void ref_attention_bwd(double* dx, double* const* g, const double* dy, const double* x,
                              const RefAttCache& c, const double* const* p, AttShape s) {
  const idx B = s.B, N = s.N, D = s.D, H = s.H, E = D / H;
  const double sc = 1.0 / std::sqrt(double(E));
  vec dctx(B * N * D, 0.0), dqkv(B * N * 3 * D, 0.0);
  ref_linear_bwd(dctx.data(), g[2], g[3], dy, c.ctx.data(), p[2], B * N, D, D);
  auto at = [&](idx b, idx n, idx part, idx h, idx e) { return (b * N + n) * 3 * D + part * D + h * E + e; };
  vec dP(N * N), dS(N * N);
  for (idx b = 0; b < B; ++b)
    for (idx h = 0; h < H; ++h) {
      const double* P = &c.att[(b * H + h) * N * N];
      for (idx n = 0; n < N; ++n)
        for (idx m = 0; m < N; ++m) {
          double sv = 0;
          for (idx e = 0; e < E; ++e) sv += dctx[(b * N + n) * D + h * E + e] * c.qkv[at(b, m, 2, h, e)];
          dP[n * N + m] = sv;
        }
      for (idx m = 0; m < N; ++m)  // dv[m] = sum_n P[n, m] dctx[n]
        for (idx e = 0; e < E; ++e) {
          double sv = 0;
          for (idx n = 0; n < N; ++n) sv += P[n * N + m] * dctx[(b * N + n) * D + h * E + e];
          dqkv[at(b, m, 2, h, e)] += sv;
        }
      for (idx n = 0; n < N; ++n)  // softmax Jacobian: dS_nm = sum_j dP_nj P_nj (delta_jm - P_nm)
        for (idx m = 0; m < N; ++m) {
          double sv = 0;
          for (idx j = 0; j < N; ++j) sv += dP[n * N + j] * P[n * N + j] * ((j == m ? 1.0 : 0.0) - P[n * N + m]);
          dS[n * N + m] = sv * sc;
        }
      for (idx n = 0; n < N; ++n)
        for (idx m = 0; m < N; ++m)
          for (idx e = 0; e < E; ++e) {
            dqkv[at(b, n, 0, h, e)] += dS[n * N + m] * c.qkv[at(b, m, 1, h, e)];
            dqkv[at(b, m, 1, h, e)] += dS[n * N + m] * c.qkv[at(b, n, 0, h, e)];
          }
    }
  ref_linear_bwd(dx, g[0], g[1], dqkv.data(), x, p[0], B * N, D, 3 * D);
}

struct RefMlpCache { vec h, a; };
// p = {fc1_w, fc1_b, fc2_w, fc2_b}
inline void ref_mlp(double* y, RefMlpCache& c, const double* x, const double* const* p, idx R, idx D, idx F) {
  c.h.assign(R * F, 0.0);
  c.a.assign(R * F, 0.0);
  ref_linear(c.h.data(), x, p[0], p[1], R, D, F);
  for (idx i = 0; i < R * F; ++i) c.a[i] = ref_gelu(c.h[i]);
  ref_linear(y, c.a.data(), p[2], p[3], R, F, D);
}
inline void ref_mlp_bwd(double* dx, double* const* g, const double* dy, const double* x,
                        const RefMlpCache& c, const double* const* p, idx R, idx D, idx F) {
  vec da(R * F, 0.0);
  ref_linear_bwd(da.data(), g[2], g[3], dy, c.a.data(), p[2], R, F, D);
  for (idx i = 0; i < R * F; ++i) da[i] *= ref_gelu_grad(c.h[i]);
  ref_linear_bwd(dx, g[0], g[1], da.data(), x, p[0], R, D, F);
}

struct BlkShape { idx B, N, D, H, F; };
struct RefBlockCache { vec ln1, x1, ln2; RefAttCache att; RefMlpCache mlp; };
// p (12) = {norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b}
inline void ref_block(double* y, RefBlockCache& c, const double* x, const double* const* p, BlkShape s, double eps) {
  const idx R = s.B * s.N, D = s.D;
  c.ln1.assign(R * D, 0.0);
  c.x1.assign(R * D, 0.0);
  c.ln2.assign(R * D, 0.0);
  ref_layernorm(c.ln1.data(), x, p[0], p[1], R, D, eps);
  ref_attention(c.x1.data(), c.att, c.ln1.data(), p + 2, {s.B, s.N, s.D, s.H});
  for (idx i = 0; i < R * D; ++i) c.x1[i] += x[i];
  ref_layernorm(c.ln2.data(), c.x1.data(), p[6], p[7], R, D, eps);
  ref_mlp(y, c.mlp, c.ln2.data(), p + 8, R, D, s.F);
  for (idx i = 0; i < R * D; ++i) y[i] += c.x1[i];
}
inline void ref_block_bwd(double* dx, double* const* g, const double* dy, const double* x,
                          const RefBlockCache& c, const double* const* p, BlkShape s, double eps) {
  const idx R = s.B * s.N, D = s.D;
  vec dln2(R * D, 0.0), dx1(dy, dy + R * D), dln1(R * D, 0.0);
  ref_mlp_bwd(dln2.data(), g + 8, dy, c.ln2.data(), c.mlp, p + 8, R, D, s.F);
  ref_layernorm_bwd(dx1.data(), g[6], g[7], dln2.data(), c.x1.data(), p[6], R, D, eps);
  ref_attention_bwd(dln1.data(), g + 2, dx1.data(), c.ln1.data(), c.att, p + 2, {s.B, s.N, s.D, s.H});
  for (idx i = 0; i < R * D; ++i) dx[i] += dx1[i];
  ref_layernorm_bwd(dx, g[0], g[1], dln1.data(), x, p[0], R, D, eps);
}

struct PeShape { idx B, C, H, W, P, D; };
// Direct convolution (no im2col). p = {w (D,C,P,P), b (D), cls (D), pos (Np+1, D)}
inline void ref_patch_embed(double* tok, const double* img, const double* const* p, PeShape s) {
  const idx Gh = s.H / s.P, Gw = s.W / s.P, Nt = Gh * Gw + 1, D = s.D, P = s.P;
  for (idx b = 0; b < s.B; ++b) {
    for (idx d = 0; d < D; ++d) tok[(b * Nt) * D + d] = p[2][d] + p[3][d];
    for (idx gy = 0; gy < Gh; ++gy)
      for (idx gx = 0; gx < Gw; ++gx) {
        idx t = 1 + gy * Gw + gx;
        for (idx d = 0; d < D; ++d) {
          double sv = p[1][d] + p[3][t * D + d];
          for (idx c = 0; c < s.C; ++c)
            for (idx ky = 0; ky < P; ++ky)
              for (idx kx = 0; kx < P; ++kx)
                sv += p[0][((d * s.C + c) * P + ky) * P + kx] *
                      img[((b * s.C + c) * s.H + gy * P + ky) * s.W + gx * P + kx];
          tok[(b * Nt + t) * D + d] = sv;
        }
      }
  }
}
inline void ref_patch_embed_bwd(double* const* g, const double* dtok, const double* img, PeShape s) {
  const idx Gh = s.H / s.P, Gw = s.W / s.P, Nt = Gh * Gw + 1, D = s.D, P = s.P;
  for (idx b = 0; b < s.B; ++b) {
    for (idx d = 0; d < D; ++d) {
      g[2][d] += dtok[(b * Nt) * D + d];
      g[3][d] += dtok[(b * Nt) * D + d];
    }
    for (idx gy = 0; gy < Gh; ++gy)
      for (idx gx = 0; gx < Gw; ++gx) {
        idx t = 1 + gy * Gw + gx;
        for (idx d = 0; d < D; ++d) {
          double gv = dtok[(b * Nt + t) * D + d];
          g[1][d] += gv;
          g[3][t * D + d] += gv;
          for (idx c = 0; c < s.C; ++c)
            for (idx ky = 0; ky < P; ++ky)
              for (idx kx = 0; kx < P; ++kx)
                g[0][((d * s.C + c) * P + ky) * P + kx] +=
                    gv * img[((b * s.C + c) * s.H + gy * P + ky) * s.W + gx * P + kx];
        }
      }
  }
}

}  // namespace envit::testing::vit
