// Tests for the xsimd float kernels (kernels/vec.hpp and their users in ops/): GELU / normal-CDF
// accuracy over [-10, 10] against double erfc, ragged lengths 1..70 around every batch width
// (elementwise ops, softmax rows, LayerNorm rows) against naive double references, partial loads
// that never read past the end (guard page) and partial stores that never write past it,
// position independence of elementwise results (batch invariance), and the fused residual /
// overwrite paths of block.hpp against the unfused composition of the public ops.
// tests/vec.cmake links test_vec with envit::dispatch and runs it once per kernel set the host has
// (ENVIT_ISA), so each batch width's tail code is exercised through the dispatched ops; one case
// calls every runnable set's row kernels directly. test_vec_v4 builds the same file for the
// compile-time path (-march=x86-64-v4, no dispatch).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "envit/kernels/dispatch.hpp"
#include "envit/kernels/vec.hpp"
#include "envit/ops/block.hpp"
#include "envit/ops/gelu.hpp"
#include "envit/ops/layernorm.hpp"
#include "envit/ops/softmax.hpp"
#include "testing.hpp"

using namespace envit;
using envit::testing::random_vec;
using envit::testing::require_close;
using std::ptrdiff_t;
using std::size_t;

namespace {

double phi_ref(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
double gelu_ref(double x) { return x * phi_ref(x); }
double gelu_grad_ref(double x) { return phi_ref(x) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI); }

constexpr float kSentinel = -12345.5f;  // written after the end of outputs; must survive
constexpr ptrdiff_t kMaxN = 70;

void require_guard(const char* what, const std::vector<float>& v, ptrdiff_t n) {
  ptrdiff_t bad = 0;
  for (size_t i = size_t(n); i < v.size(); ++i) bad += v[i] != kSentinel;
  INFO(what << ": " << bad << " entries written past n = " << n);
  REQUIRE(bad == 0);
}

// Row-wise double references.
std::vector<double> softmax_ref(const std::vector<float>& x, ptrdiff_t R, ptrdiff_t C, double s, bool log) {
  std::vector<double> y(size_t(R * C));
  for (ptrdiff_t r = 0; r < R; ++r) {
    double m = -INFINITY, sum = 0;
    for (ptrdiff_t c = 0; c < C; ++c) m = std::max(m, s * double(x[r * C + c]));
    for (ptrdiff_t c = 0; c < C; ++c) sum += std::exp(s * double(x[r * C + c]) - m);
    for (ptrdiff_t c = 0; c < C; ++c) {
      const double z = s * double(x[r * C + c]) - m;
      y[r * C + c] = log ? z - std::log(sum) : std::exp(z) / sum;
    }
  }
  return y;
}

struct LnRef { std::vector<double> y, mean, rstd, dx, dgamma, dbeta; };
LnRef layernorm_ref(const std::vector<float>& x, const std::vector<float>& gamma, const std::vector<float>& beta,
                    const std::vector<float>& dy, ptrdiff_t R, ptrdiff_t D, double eps) {
  LnRef o;
  o.y.resize(R * D); o.dx.resize(R * D); o.mean.resize(R); o.rstd.resize(R);
  o.dgamma.assign(D, 0.0); o.dbeta.assign(D, 0.0);
  for (ptrdiff_t r = 0; r < R; ++r) {
    double m = 0, v = 0;
    for (ptrdiff_t i = 0; i < D; ++i) m += x[r * D + i];
    m /= double(D);
    for (ptrdiff_t i = 0; i < D; ++i) v += (x[r * D + i] - m) * (x[r * D + i] - m);
    v /= double(D);
    const double rs = 1.0 / std::sqrt(v + eps);
    o.mean[r] = m; o.rstd[r] = rs;
    double sg = 0, sgx = 0;
    for (ptrdiff_t i = 0; i < D; ++i) {
      const double xh = (x[r * D + i] - m) * rs, g = double(dy[r * D + i]) * gamma[i];
      o.y[r * D + i] = xh * gamma[i] + beta[i];
      sg += g; sgx += g * xh;
      o.dgamma[i] += double(dy[r * D + i]) * xh;
      o.dbeta[i] += dy[r * D + i];
    }
    for (ptrdiff_t i = 0; i < D; ++i) {
      const double xh = (x[r * D + i] - m) * rs;
      o.dx[r * D + i] = rs * (double(dy[r * D + i]) * gamma[i] - sg / double(D) - xh * sgx / double(D));
    }
  }
  return o;
}

#if defined(__linux__)
// n floats that end exactly at a PROT_NONE page: reading one float past them faults.
struct GuardedFloats {
  void* base = nullptr;
  size_t bytes = 0;
  float* data = nullptr;
  explicit GuardedFloats(ptrdiff_t n) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    const size_t body = (size_t(n) * sizeof(float) + page - 1) / page * page;
    bytes = body + page;
    base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(base != MAP_FAILED);
    REQUIRE(mprotect(static_cast<char*>(base) + body, page, PROT_NONE) == 0);
    data = reinterpret_cast<float*>(static_cast<char*>(base) + body) - n;
  }
  ~GuardedFloats() { munmap(base, bytes); }
  GuardedFloats(const GuardedFloats&) = delete;
  GuardedFloats& operator=(const GuardedFloats&) = delete;
};
#endif

// Bump allocator for the block caches.
struct Bump {
  std::vector<float> f;
  std::vector<double> d;
  size_t used = 0;
  template <class T> struct View {
    Bump* b;
    T* take(size_t n) {
      auto& v = b->vec<T>();
      if (b->used + n > v.size()) throw std::runtime_error("test arena too small");
      T* p = v.data() + b->used;
      b->used += n;
      return p;
    }
  };
  template <class T> std::vector<T>& vec() {
    if constexpr (std::is_same_v<T, float>) return f; else return d;
  }
};

}  // namespace

// ------------------------------------------------------------------------------- accuracy

TEST_CASE("vec: GELU and normal CDF accuracy over -10..10 (step 1e-4)", "[vec][gelu][ref]") {
  std::vector<float> x;
  for (ptrdiff_t i = -100000; i <= 100000; ++i) x.push_back(float(double(i) * 1e-4));
  const ptrdiff_t n = ptrdiff_t(x.size());
  std::vector<float> y(n), dx(n, 0.f), ones(n, 1.f), cdf(n);
  gelu_forward(y.data(), x.data(), n);
  gelu_backward(dx.data(), ones.data(), x.data(), n);
  vec::map(cdf.data(), x.data(), n, [](const vec::fbatch& v) { return vec::normal_cdf(v); });
  // hybrid error |got - ref| / max(|ref|, 1); relative error where the value is not tiny
  double cdf_abs = 0, cdf_rel = 0, y_hyb = 0, y_rel = 0, g_hyb = 0;
  ptrdiff_t at_cdf = 0, at_y = 0, at_yr = 0, at_g = 0;
  for (ptrdiff_t i = 0; i < n; ++i) {
    const double v = x[i], P = phi_ref(v), Y = gelu_ref(v), G = gelu_grad_ref(v);
    const double ec = std::abs(cdf[i] - P), ey = std::abs(y[i] - Y), eg = std::abs(dx[i] - G);
    if (!(ec <= cdf_abs)) { cdf_abs = ec; at_cdf = i; }
    if (v >= -5.0 && !(ec / P <= cdf_rel)) cdf_rel = ec / P;
    if (!(ey / std::max(std::abs(Y), 1.0) <= y_hyb)) { y_hyb = ey / std::max(std::abs(Y), 1.0); at_y = i; }
    if (v >= -5.0 && v != 0.0 && !(ey / std::abs(Y) <= y_rel)) { y_rel = ey / std::abs(Y); at_yr = i; }
    if (!(eg / std::max(std::abs(G), 1.0) <= g_hyb)) { g_hyb = eg / std::max(std::abs(G), 1.0); at_g = i; }
  }
  INFO("batch width " << vec::W << " (vec::normal_cdf), kernel set " << kernel_set_name() << " (gelu_forward/backward)");
  INFO("Phi: max abs err " << cdf_abs << " at x = " << x[at_cdf] << ", max rel err (x >= -5) " << cdf_rel);
  INFO("GELU: max hybrid err " << y_hyb << " at x = " << x[at_y] << ", max rel err (x >= -5) " << y_rel
                               << " at x = " << x[at_yr]);
  INFO("GELU': max hybrid err " << g_hyb << " at x = " << x[at_g]);
  // measured (SSE2, AVX2, AVX-512 alike): 1.3e-7, 2.2e-6, 1.3e-7, 2.2e-6, 1.7e-7
  CHECK(cdf_abs < 3e-7);
  CHECK(cdf_rel < 5e-6);
  CHECK(y_hyb < 3e-7);
  CHECK(y_rel < 5e-6);
  CHECK(g_hyb < 3e-7);
}

TEST_CASE("vec: GELU at special values", "[vec][gelu]") {
  std::vector<float> x = {0.f, -0.f, 40.f, -40.f, 1e-30f, -1e-30f, 88.f, -88.f, 1e30f, -1e30f};
  const ptrdiff_t n = ptrdiff_t(x.size());
  std::vector<float> y(n), dx(n, 0.f), ones(n, 1.f);
  gelu_forward(y.data(), x.data(), n);
  gelu_backward(dx.data(), ones.data(), x.data(), n);
  for (ptrdiff_t i = 0; i < n; ++i) {
    CAPTURE(i, x[i], y[i], dx[i]);
    CHECK(std::isfinite(y[i]));
    CHECK(std::isfinite(dx[i]));
    CHECK(std::abs(y[i] - gelu_ref(x[i])) <= 1e-7 * std::max(1.0, std::abs(gelu_ref(x[i]))));
    CHECK(std::abs(dx[i] - gelu_grad_ref(x[i])) <= 1e-7);
  }
  CHECK(y[0] == 0.f);
  CHECK(y[2] == 40.f);
  CHECK(dx[2] == 1.f);
  CHECK(std::abs(y[3]) == 0.f);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  float xn[1] = {nan}, yn[1];
  gelu_forward(yn, xn, 1);
  CHECK(std::isnan(yn[0]));
}

// ---------------------------------------------------------------------------- ragged sizes

TEST_CASE("vec: elementwise GELU over n = 1..70 - reference, in place, no write past n, position independence",
          "[vec][gelu][ref]") {
  const ptrdiff_t L = 4 * kMaxN;
  auto big = random_vec<float>(L, 31, -6.0, 6.0);
  auto bigdy = random_vec<float>(L, 32);
  std::vector<float> ybig(L), dxbig(L, 0.25f);
  gelu_forward(ybig.data(), big.data(), L);
  gelu_backward(dxbig.data(), bigdy.data(), big.data(), L);
  for (ptrdiff_t n = 1; n <= kMaxN; ++n) {
    for (ptrdiff_t off : {ptrdiff_t(0), ptrdiff_t(1), ptrdiff_t(3), n + 5}) {
      CAPTURE(n, off);
      std::vector<float> x(big.begin() + off, big.begin() + off + n), dy(bigdy.begin() + off, bigdy.begin() + off + n);
      std::vector<float> y(n + 32, kSentinel), dx(n + 32, kSentinel);
      std::fill(dx.begin(), dx.begin() + n, 0.25f);
      gelu_forward(y.data(), x.data(), n);
      gelu_backward(dx.data(), dy.data(), x.data(), n);
      require_guard("gelu y", y, n);
      require_guard("gelu dx", dx, n);
      std::vector<double> yr(n), gr(n);
      for (ptrdiff_t i = 0; i < n; ++i) {
        yr[i] = gelu_ref(x[i]);
        gr[i] = 0.25 + double(dy[i]) * gelu_grad_ref(x[i]);
      }
      require_close("gelu y", y.data(), yr.data(), n, 1e-5, 1e-6);
      require_close("gelu dx", dx.data(), gr.data(), n, 1e-5, 1e-6);
      // the same element gives the same bits wherever it sits in the array
      CHECK(std::memcmp(y.data(), ybig.data() + off, n * sizeof(float)) == 0);
      CHECK(std::memcmp(dx.data(), dxbig.data() + off, n * sizeof(float)) == 0);
      std::vector<float> xi(x);
      gelu_forward(xi.data(), xi.data(), n);
      CHECK(std::memcmp(xi.data(), y.data(), n * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("vec: softmax / log_softmax rows of 1..70 columns vs double reference", "[vec][softmax][ref]") {
  for (ptrdiff_t C = 1; C <= kMaxN; ++C) {
    for (double scale : {1.0, 0.125, -0.5}) {
      CAPTURE(C, scale);
      const ptrdiff_t R = 3;
      auto x = random_vec<float>(R * C, 1000 + C, -8.0, 8.0);
      if (C > 2) x[C + 1] = 90.f;  // one dominant logit in row 1
      auto dy = random_vec<float>(R * C, 2000 + C);
      auto yr = softmax_ref(x, R, C, scale, false), lr = softmax_ref(x, R, C, scale, true);
      std::vector<float> y(R * C + 32, kSentinel), l(R * C + 32, kSentinel), dx(R * C + 32, kSentinel),
          dl(R * C + 32, kSentinel);
      std::fill(dx.begin(), dx.begin() + R * C, 0.25f);
      std::fill(dl.begin(), dl.begin() + R * C, 0.25f);
      softmax_forward(y.data(), x.data(), R, C, float(scale));
      log_softmax_forward(l.data(), x.data(), R, C, float(scale));
      softmax_backward(dx.data(), dy.data(), y.data(), R, C, float(scale));
      log_softmax_backward(dl.data(), dy.data(), l.data(), R, C, float(scale));
      for (auto* v : {&y, &l, &dx, &dl}) require_guard("softmax outputs", *v, R * C);
      require_close("softmax y", y.data(), yr.data(), R * C, 1e-5, 1e-7);
      require_close("log_softmax y", l.data(), lr.data(), R * C, 1e-5, 1e-6);
      std::vector<double> dxr(R * C), dlr(R * C);
      for (ptrdiff_t r = 0; r < R; ++r) {
        double d = 0, s = 0;
        for (ptrdiff_t c = 0; c < C; ++c) { d += double(dy[r * C + c]) * yr[r * C + c]; s += dy[r * C + c]; }
        for (ptrdiff_t c = 0; c < C; ++c) {
          dxr[r * C + c] = 0.25 + scale * yr[r * C + c] * (double(dy[r * C + c]) - d);
          dlr[r * C + c] = 0.25 + scale * (double(dy[r * C + c]) - std::exp(lr[r * C + c]) * s);
        }
      }
      require_close("softmax dx", dx.data(), dxr.data(), R * C, 1e-4, 1e-6);
      require_close("log_softmax dx", dl.data(), dlr.data(), R * C, 1e-4, 1e-6);
      // in place, and the overwrite form used by attention (dS = f(dP) in place)
      std::vector<float> xi(x.begin(), x.end());
      softmax_forward(xi.data(), xi.data(), R, C, float(scale));
      CHECK(std::memcmp(xi.data(), y.data(), R * C * sizeof(float)) == 0);
      std::vector<float> ds(dy);
      detail::softmax_rows_backward(ds.data(), ds.data(), y.data(), R, C, float(scale), false);
      for (ptrdiff_t i = 0; i < R * C; ++i) dxr[i] -= 0.25;
      require_close("softmax dS in place", ds.data(), dxr.data(), R * C, 1e-4, 1e-6);
    }
  }
}

TEST_CASE("vec: layernorm rows of 1..70 columns - plain and x ~ 1000 + noise", "[vec][layernorm][ref]") {
  for (ptrdiff_t D = 1; D <= kMaxN; ++D) {
    for (double offset : {0.0, 1000.0}) {
      CAPTURE(D, offset);
      const ptrdiff_t R = 5;
      const double noise = offset == 0.0 ? 3.0 : 0.1;
      auto x = random_vec<float>(R * D, 3000 + D, offset - noise, offset + noise);
      auto gamma = random_vec<float>(D, 3100 + D, 0.5, 1.5), beta = random_vec<float>(D, 3200 + D);
      auto dy = random_vec<float>(R * D, 3300 + D);
      auto ref = layernorm_ref(x, gamma, beta, dy, R, D, 1e-5);
      std::vector<float> y(R * D + 32, kSentinel), mean(R), rstd(R), dx(R * D + 32, kSentinel),
          dg(D + 32, kSentinel), db(D + 32, kSentinel);
      std::fill(dx.begin(), dx.begin() + R * D, 0.f);
      std::fill(dg.begin(), dg.begin() + D, 0.f);
      std::fill(db.begin(), db.begin() + D, 0.f);
      layernorm_forward(y.data(), {mean.data(), rstd.data()}, x.data(), {gamma.data(), beta.data()}, {R, D}, 1e-5f);
      layernorm_backward(dx.data(), {dg.data(), db.data()}, dy.data(), x.data(), {mean.data(), rstd.data()},
                         {gamma.data(), beta.data()}, {R, D});
      require_guard("layernorm y", y, R * D);
      require_guard("layernorm dx", dx, R * D);
      require_guard("layernorm dgamma", dg, D);
      require_guard("layernorm dbeta", db, D);
      if (D == 1)  // a single column normalises to 0: y = beta, exactly
        for (ptrdiff_t r = 0; r < R; ++r) CHECK(y[r] == beta[0]);
      // forward: xhat from a double-accurate mean, so y stays at float rounding even at offset 1000
      require_close("layernorm mean", mean.data(), ref.mean.data(), R, 1e-7, offset == 0.0 ? 1e-7 : 0.0);
      require_close("layernorm rstd", rstd.data(), ref.rstd.data(), R, 1e-5, 0.0);
      require_close("layernorm y", y.data(), ref.y.data(), R * D, 1e-5, 2e-6);
      // backward uses the float-cached mean: xhat error <= ulp(mean)/2 * rstd (as in test_linear_ln,
      // with the rows' own rstd: a few columns can sit much closer together than the noise range)
      double rmax = 0;
      for (double v : ref.rstd) rmax = std::max(rmax, v);
      const double xhat_err = offset == 0.0 ? 0.0 : 3.1e-5 * rmax;
      require_close("layernorm dx", dx.data(), ref.dx.data(), R * D, 1e-4, std::max(1e-5, 4 * xhat_err * rmax));
      require_close("layernorm dgamma", dg.data(), ref.dgamma.data(), D, 1e-5, std::max(1e-5, 4 * R * xhat_err));
      require_close("layernorm dbeta", db.data(), ref.dbeta.data(), D, 1e-5, 1e-5);
    }
  }
}

#if defined(__linux__)
TEST_CASE("vec: partial loads stop at n (inputs end at a PROT_NONE page)", "[vec]") {
  for (ptrdiff_t n = 1; n <= kMaxN; ++n) {
    CAPTURE(n);
    GuardedFloats gx(n), gy(n);
    auto src = random_vec<float>(n, 4000 + n, -3.0, 3.0);
    std::copy(src.begin(), src.end(), gx.data);
    // elementwise, with outputs also ending at the guard page
    gelu_forward(gy.data, gx.data, n);
    std::fill(gy.data, gy.data + n, 0.f);
    gelu_backward(gy.data, gx.data, gx.data, n);
    // one row of n columns: softmax (+ backward in place), log-softmax, layernorm
    softmax_forward(gy.data, gx.data, 1, n);
    detail::softmax_rows_backward(gy.data, gy.data, gx.data, 1, n, 1.f, false);
    log_softmax_forward(gy.data, gx.data, 1, n);
    float mean, rstd;
    GuardedFloats gg(n), gb(n);
    std::fill(gg.data, gg.data + n, 1.f);
    std::fill(gb.data, gb.data + n, 0.f);
    layernorm_forward(gy.data, {&mean, &rstd}, gx.data, {gg.data, gb.data}, {1, n}, 1e-5f);
    layernorm_backward(gy.data, {gb.data, gb.data}, gx.data, gx.data, {&mean, &rstd}, {gg.data, gb.data}, {1, n});
    const vec::fbatch t = vec::load_part(gx.data + n - std::min(n, vec::W), std::min(n, vec::W), 7.f);
    vec::store_part(gy.data + n - std::min(n, vec::W), t, std::min(n, vec::W));
    SUCCEED("no fault");
  }
}
#endif

TEST_CASE("vec: load_part fills the rest and store_part leaves it untouched", "[vec]") {
  for (ptrdiff_t n = 0; n <= vec::W; ++n) {
    CAPTURE(n);
    std::vector<float> src(vec::W), dst(vec::W, kSentinel);
    for (ptrdiff_t i = 0; i < vec::W; ++i) src[i] = float(i + 1);
    alignas(64) float lanes[64];
    vec::load_part(src.data(), n, -2.f).store_aligned(lanes);
    for (ptrdiff_t i = 0; i < vec::W; ++i) CHECK(lanes[i] == (i < n ? float(i + 1) : -2.f));
    vec::store_part(dst.data(), vec::load(src.data()), n);
    for (ptrdiff_t i = 0; i < vec::W; ++i) CHECK(dst[i] == (i < n ? float(i + 1) : kSentinel));
    const auto m = vec::first_lanes(n);
    vec::fbatch(xsimd::select(m, vec::fbatch(1.f), vec::fbatch(0.f))).store_aligned(lanes);
    for (ptrdiff_t i = 0; i < vec::W; ++i) CHECK(lanes[i] == (i < n ? 1.f : 0.f));
  }
  std::vector<float> v(vec::W);
  for (ptrdiff_t i = 0; i < vec::W; ++i) v[i] = float((i * 7) % 5) - float(i);
  CHECK(vec::hmax(vec::load(v.data())) == *std::max_element(v.begin(), v.end()));
}

// ---------------------------------------------------------------------------- kernel sets

// Every set this CPU can run (kernels/dispatch.hpp), its row kernels called directly: against the
// double references at the tolerances above, bitwise repeatable, and position independent (an
// element's bits do not depend on the length of the call it sits in).
TEST_CASE("vec: every runnable kernel set's row kernels match the reference", "[vec][dispatch][ref]") {
  const envit::detail::KernelSetChoice sets = envit::detail::runnable_kernel_sets();
  REQUIRE(sets.count >= 1);
  for (int si = 0; si < sets.count; ++si) {
    const VecKernelSet& k = sets.sets[si]->vec;
    INFO("kernel set " << sets.sets[si]->name);
    REQUIRE(k.gelu_forward);
    REQUIRE(k.log_softmax_backward);
    for (ptrdiff_t n : {ptrdiff_t(1), ptrdiff_t(3), ptrdiff_t(8), ptrdiff_t(16), ptrdiff_t(21), ptrdiff_t(50),
                        ptrdiff_t(65), ptrdiff_t(192)}) {
      CAPTURE(n);
      const ptrdiff_t R = 3, L = R * n;
      const float scale = 0.25f;
      auto x = random_vec<float>(L, 5000 + n, -6.0, 6.0), dy = random_vec<float>(L, 5100 + n);
      auto gamma = random_vec<float>(n, 5200 + n, 0.5, 1.5), beta = random_vec<float>(n, 5300 + n);
      // GELU: forward, accumulated backward, in-place derivative product
      std::vector<float> y(L + 32, kSentinel), dx(L + 32, kSentinel), dm(dy);
      dm.resize(L + 32, kSentinel);
      std::fill(dx.begin(), dx.begin() + L, 0.25f);
      k.gelu_forward(y.data(), x.data(), L);
      k.gelu_backward(dx.data(), dy.data(), x.data(), L);
      k.gelu_grad_mul(dm.data(), x.data(), L);
      require_guard("gelu y", y, L);
      require_guard("gelu dx", dx, L);
      require_guard("gelu dm", dm, L);
      std::vector<double> yr(L), gr(L), mr(L);
      for (ptrdiff_t i = 0; i < L; ++i) {
        yr[i] = gelu_ref(x[i]);
        gr[i] = 0.25 + double(dy[i]) * gelu_grad_ref(x[i]);
        mr[i] = double(dy[i]) * gelu_grad_ref(x[i]);
      }
      require_close("gelu y", y.data(), yr.data(), L, 1e-5, 1e-6);
      require_close("gelu dx", dx.data(), gr.data(), L, 1e-5, 1e-6);
      require_close("gelu grad_mul", dm.data(), mr.data(), L, 1e-5, 1e-6);
      std::vector<float> ytail(n);  // the last row's elements alone: the same bits
      k.gelu_forward(ytail.data(), x.data() + L - n, n);
      CHECK(std::memcmp(ytail.data(), y.data() + L - n, n * sizeof(float)) == 0);
      // softmax and log-softmax rows, forward and backward (accumulated and overwriting)
      auto sr = softmax_ref(x, R, n, scale, false), lr = softmax_ref(x, R, n, scale, true);
      std::vector<float> sm(L), ls(L), ds(L, 0.25f), dl(L, 0.25f), ds0(L, kSentinel);
      k.softmax_forward(sm.data(), x.data(), R, n, scale);
      k.log_softmax_forward(ls.data(), x.data(), R, n, scale);
      k.softmax_backward(ds.data(), dy.data(), sm.data(), R, n, scale, true);
      k.softmax_backward(ds0.data(), dy.data(), sm.data(), R, n, scale, false);
      k.log_softmax_backward(dl.data(), dy.data(), ls.data(), R, n, scale);
      require_close("softmax y", sm.data(), sr.data(), L, 1e-5, 1e-7);
      require_close("log_softmax y", ls.data(), lr.data(), L, 1e-5, 1e-6);
      std::vector<double> dsr(L), dlr(L), ds0r(L);
      for (ptrdiff_t r = 0; r < R; ++r) {
        double d = 0, t = 0;
        for (ptrdiff_t c = 0; c < n; ++c) { d += double(dy[r * n + c]) * sr[r * n + c]; t += dy[r * n + c]; }
        for (ptrdiff_t c = 0; c < n; ++c) {
          ds0r[r * n + c] = scale * sr[r * n + c] * (double(dy[r * n + c]) - d);
          dsr[r * n + c] = 0.25 + ds0r[r * n + c];
          dlr[r * n + c] = 0.25 + scale * (double(dy[r * n + c]) - std::exp(lr[r * n + c]) * t);
        }
      }
      require_close("softmax dx", ds.data(), dsr.data(), L, 1e-4, 1e-6);
      require_close("softmax dx (overwrite)", ds0.data(), ds0r.data(), L, 1e-4, 1e-6);
      require_close("log_softmax dx", dl.data(), dlr.data(), L, 1e-4, 1e-6);
      // LayerNorm rows, forward and backward (dx = base + term; parameter partials accumulated)
      auto ref = layernorm_ref(x, gamma, beta, dy, R, n, 1e-5);
      std::vector<float> ln(L), mean(R), rstd(R), base(L, 0.5f), dln(L), pg(n, 0.f), pb(n, 0.f);
      k.layernorm_forward(ln.data(), mean.data(), rstd.data(), x.data(), gamma.data(), beta.data(), R, n, 1e-5f);
      k.layernorm_backward(dln.data(), base.data(), nullptr, pg.data(), pb.data(), dy.data(), x.data(), mean.data(),
                           rstd.data(), gamma.data(), R, n);
      require_close("layernorm y", ln.data(), ref.y.data(), L, 1e-5, 2e-6);
      require_close("layernorm rstd", rstd.data(), ref.rstd.data(), R, 1e-5, 0.0);
      for (auto& v : ref.dx) v += 0.5;
      require_close("layernorm dx", dln.data(), ref.dx.data(), L, 1e-4, 1e-5);
      require_close("layernorm dgamma", pg.data(), ref.dgamma.data(), n, 1e-5, 1e-5);
      require_close("layernorm dbeta", pb.data(), ref.dbeta.data(), n, 1e-5, 1e-5);
      // epilogues on the rectangle rows [1, 3) x columns [c0, n) of an (R, n) matrix
      const ptrdiff_t c0 = n / 3;
      std::vector<float> h(x), a(L, kSentinel), e(x);
      k.bias_gelu_rect(h.data(), a.data(), beta.data(), n, 1, R, c0, n);
      k.bias_residual_rect(e.data(), beta.data(), dy.data(), n, 1, R, c0, n);
      for (ptrdiff_t r = 0; r < R; ++r)
        for (ptrdiff_t c = 0; c < n; ++c) {
          const ptrdiff_t i = r * n + c;
          const bool in = r >= 1 && c >= c0;
          const float hb = in ? x[i] + beta[c] : x[i];
          INFO("epilogue element (" << r << ", " << c << ")");
          REQUIRE(h[i] == hb);  // one float add: exact
          REQUIRE(e[i] == (in ? (x[i] + beta[c]) + dy[i] : x[i]));
          if (in) REQUIRE(std::abs(a[i] - gelu_ref(hb)) <= 1e-5 * std::abs(gelu_ref(hb)) + 1e-6);
          else REQUIRE(a[i] == kSentinel);
        }
      // bitwise repeatable
      std::vector<float> sm2(L), ln2(L), mean2(R), rstd2(R);
      k.softmax_forward(sm2.data(), x.data(), R, n, scale);
      k.layernorm_forward(ln2.data(), mean2.data(), rstd2.data(), x.data(), gamma.data(), beta.data(), R, n, 1e-5f);
      CHECK(std::memcmp(sm.data(), sm2.data(), L * sizeof(float)) == 0);
      CHECK(std::memcmp(ln.data(), ln2.data(), L * sizeof(float)) == 0);
    }
  }
}

// Run by the ctest entry vec_bad_isa in a fresh process with ENVIT_ISA set to an unknown set: the
// first float op, above its threading grain, throws on the calling thread (an exception inside its
// OpenMP region would terminate the process instead).
TEST_CASE("vec: an unknown ENVIT_ISA is a ValueError from the first float op", "[.][bad_isa]") {
  const char* env = std::getenv("ENVIT_ISA");
  REQUIRE(env != nullptr);
  REQUIRE(std::string(env) == "avx9");
  std::vector<float> x(1 << 20, 0.5f), y(x.size());
  CHECK_THROWS_AS(gelu_forward(y.data(), x.data(), ptrdiff_t(x.size())), ValueError);
  CHECK_THROWS_AS(softmax_forward(y.data(), x.data(), 1024, 1024), ValueError);
}

// ------------------------------------------------------------------- block fusion equivalence

// block_forward / block_backward fold the residual adds into the projections' bias passes and
// the LayerNorm backward, and let the branch backwards overwrite instead of zero + accumulate.
// The unfused composition of the public ops must give the same values.
TEMPLATE_TEST_CASE("vec: fused block equals the composition of the public ops", "[vec][block]", float, double) {
  using T = TestType;
  for (BlockShape s : {BlockShape{2, 5, 12, 2, 20}, BlockShape{3, 50, 96, 3, 192}, BlockShape{1, 7, 9, 3, 13}}) {
    CAPTURE(s.batch, s.tokens, s.dim, s.heads, s.hidden);
    const ptrdiff_t R = s.batch * s.tokens, D = s.dim, F = s.hidden;
    std::vector<std::vector<T>> pv;
    std::uint64_t seed = 50;
    auto par = [&](ptrdiff_t n, double lo, double hi) {
      pv.push_back(random_vec<T>(size_t(n), ++seed, lo, hi));
      return static_cast<const T*>(pv.back().data());
    };
    pv.reserve(16);
    BlockParams<T> p{par(D, 0.5, 1.5), par(D, -0.1, 0.1), par(3 * D * D, -0.3, 0.3), par(3 * D, -0.1, 0.1),
                     par(D * D, -0.3, 0.3), par(D, -0.1, 0.1), par(D, 0.5, 1.5), par(D, -0.1, 0.1),
                     par(F * D, -0.3, 0.3), par(F, -0.1, 0.1), par(D * F, -0.3, 0.3), par(D, -0.1, 0.1)};
    auto x = random_vec<T>(size_t(R * D), 70, -2.0, 2.0), dy = random_vec<T>(size_t(R * D), 71);
    Bump arena;
    arena.vec<T>().assign(size_t(4) << 20, T(0));
    Bump::View<T> a{&arena};
    auto c = block_cache_take<T>(a, s);
    auto w = block_workspace_take<T>(a, s);
    const size_t nG = size_t(9 * D + 4 * D * D + 2 * F * D + F);
    std::vector<T> g1(nG, T(0.5)), g2(nG, T(0.5));
    auto grads = [&](std::vector<T>& g) {
      T* q = g.data();
      auto t = [&](ptrdiff_t n) { T* r = q; q += n; return r; };
      return BlockGrads<T>{t(D), t(D), t(3 * D * D), t(3 * D), t(D * D), t(D), t(D), t(D), t(F * D), t(F), t(D * F), t(D)};
    };
    const BlockGrads<T> G1 = grads(g1), G2 = grads(g2);
    // fused
    std::vector<T> y1(R * D), dx1(R * D, T(0.25));
    block_forward<T>(y1.data(), c, x.data(), p, s, T(1e-6));
    block_backward<T>(dx1.data(), G1, dy.data(), x.data(), c, p, s, w);
    // unfused, with separate buffers
    std::vector<T> ln1(R * D), x1(R * D), ln2(R * D), y2(R * D), m1(R), r1(R), m2(R), r2(R);
    auto ac = attention_cache_take<T>(a, block_attention_shape(s));
    auto aw = attention_workspace_take<T>(a, block_attention_shape(s));
    auto mc = mlp_cache_take<T>(a, block_mlp_shape(s));
    auto mw = mlp_workspace_take<T>(a, block_mlp_shape(s));
    const AttentionParams<T> ap{p.qkv_w, p.qkv_b, p.proj_w, p.proj_b};
    const MlpParams<T> mp{p.fc1_w, p.fc1_b, p.fc2_w, p.fc2_b};
    layernorm_forward<T>(ln1.data(), {m1.data(), r1.data()}, x.data(), {p.norm1_w, p.norm1_b}, {R, D}, T(1e-6));
    attention_forward<T>(x1.data(), ac, ln1.data(), ap, block_attention_shape(s));
    for (ptrdiff_t i = 0; i < R * D; ++i) x1[i] += x[i];
    layernorm_forward<T>(ln2.data(), {m2.data(), r2.data()}, x1.data(), {p.norm2_w, p.norm2_b}, {R, D}, T(1e-6));
    mlp_forward<T>(y2.data(), mc, ln2.data(), mp, block_mlp_shape(s));
    for (ptrdiff_t i = 0; i < R * D; ++i) y2[i] += x1[i];
    std::vector<T> dln(R * D, T(0)), dxa(dy), dx2(R * D, T(0.25));
    mlp_backward<T>(dln.data(), {G2.dfc1_w, G2.dfc1_b, G2.dfc2_w, G2.dfc2_b}, dy.data(), ln2.data(), mc, mp,
                    block_mlp_shape(s), mw);
    layernorm_backward<T>(dxa.data(), {G2.dnorm2_w, G2.dnorm2_b}, dln.data(), x1.data(), {m2.data(), r2.data()},
                          {p.norm2_w, p.norm2_b}, {R, D});
    for (ptrdiff_t i = 0; i < R * D; ++i) dx2[i] += dxa[i];
    std::fill(dln.begin(), dln.end(), T(0));
    attention_backward<T>(dln.data(), {G2.dqkv_w, G2.dqkv_b, G2.dproj_w, G2.dproj_b}, dxa.data(), ln1.data(), ac,
                          ap, block_attention_shape(s), aw);
    layernorm_backward<T>(dx2.data(), {G2.dnorm1_w, G2.dnorm1_b}, dln.data(), x.data(), {m1.data(), r1.data()},
                          {p.norm1_w, p.norm1_b}, {R, D});
    auto same = [](const char* what, const std::vector<T>& u, const std::vector<T>& v) {
      ptrdiff_t bad = 0, first = -1;
      for (size_t i = 0; i < u.size(); ++i)
        if (!(u[i] == v[i])) { ++bad; if (first < 0) first = ptrdiff_t(i); }
      INFO(what << ": " << bad << " of " << u.size() << " differ"
                << (first >= 0 ? ", first at " + std::to_string(first) + ": " + std::to_string(double(u[first])) +
                                     " vs " + std::to_string(double(v[first]))
                               : std::string()));
      CHECK(bad == 0);
    };
    same("block y", y1, y2);
    same("block x1", std::vector<T>(c.x1, c.x1 + R * D), x1);
    same("block dx", dx1, dx2);
    same("block param grads", g1, g2);
  }
}
