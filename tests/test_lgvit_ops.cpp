// Tests for LGViT's ops: batchnorm.hpp (train and eval modes, running update), dwconv.hpp,
// subsample.hpp, gram.hpp, channel_kl.hpp. Gradient checks in double; float kernels against naive
// double forwards, and float backwards against the (gradient-checked) double backward.
#include <cmath>
#include <vector>

#include "envit/ops/batchnorm.hpp"
#include "envit/ops/channel_kl.hpp"
#include "envit/ops/dwconv.hpp"
#include "envit/ops/gram.hpp"
#include "envit/ops/subsample.hpp"
#include "testing.hpp"

using namespace envit;
using namespace envit::testing;
using std::ptrdiff_t;
using std::size_t;

namespace {

template <class T>
std::vector<T> cast(const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); }

// ---- batchnorm ----
template <class T>
struct Bn {
  ptrdiff_t R, D;
  std::vector<T> gamma, beta, rm, rv, mean, var, rstd;
  Bn(ptrdiff_t r, ptrdiff_t d, std::uint64_t seed)
      : R(r), D(d), gamma(cast<T>(random_vec<double>(d, seed, 0.5, 1.5))), beta(cast<T>(random_vec<double>(d, seed + 1))),
        rm(cast<T>(random_vec<double>(d, seed + 2))), rv(cast<T>(random_vec<double>(d, seed + 3, 0.5, 2.0))),
        mean(d), var(d), rstd(d) {}
  BatchNormParams<T> p() const { return {gamma.data(), beta.data(), rm.data(), rv.data()}; }
  BatchNormCache<T> c() { return {mean.data(), var.data(), rstd.data()}; }
};

std::vector<double> bn_ref(const std::vector<double>& x, const Bn<double>& bn, BnMode mode, double eps) {
  const ptrdiff_t R = bn.R, D = bn.D;
  std::vector<double> y(x.size());
  for (ptrdiff_t d = 0; d < D; ++d) {
    double m = bn.rm[d], v = bn.rv[d];
    if (mode == BnMode::train) {
      m = 0;
      for (ptrdiff_t r = 0; r < R; ++r) m += x[r * D + d];
      m /= double(R);
      v = 0;
      for (ptrdiff_t r = 0; r < R; ++r) v += (x[r * D + d] - m) * (x[r * D + d] - m);
      v /= double(R);
    }
    for (ptrdiff_t r = 0; r < R; ++r) y[r * D + d] = (x[r * D + d] - m) / std::sqrt(v + eps) * bn.gamma[d] + bn.beta[d];
  }
  return y;
}

}  // namespace

TEST_CASE("batchnorm: gradients in double, train and eval modes, accumulate", "[batchnorm][grad]") {
  for (BnMode mode : {BnMode::train, BnMode::eval}) {
    for (auto [R, D] : {std::pair<ptrdiff_t, ptrdiff_t>{2, 3}, {13, 8}, {98, 17}}) {
      CAPTURE(int(mode), R, D);
      Bn<double> bn(R, D, 10 + R);
      auto x = random_vec<double>(size_t(R * D), 20 + R, -2.0, 3.0), G = random_vec<double>(size_t(R * D), 30 + R);
      const double eps = 1e-5;
      auto run = [&] {
        std::vector<double> y(x.size());
        batchnorm_forward<double>(y.data(), bn.c(), x.data(), bn.p(), {R, D}, eps, mode);
        return y;
      };
      auto y = run();
      require_close("bn forward vs naive", y.data(), bn_ref(x, bn, mode, eps).data(), y.size(), 1e-12, 1e-12);
      auto loss = centred([&] { return dot_ld(run(), G); });
      run();
      std::vector<double> dx(x.size(), kPre), dg(D, kPre), db(D, kPre);
      batchnorm_backward<double>(dx.data(), {dg.data(), db.data()}, G.data(), x.data(), bn.c(), bn.p(), {R, D}, mode);
      auto gx = minus_pre(dx), gg = minus_pre(dg), gb = minus_pre(db);
      check_grad("bn dx", x.data(), gx.data(), gx.size(), loss, 1e-6, 256, kStep);
      check_grad("bn dgamma", bn.gamma.data(), gg.data(), gg.size(), loss, 1e-6, 256, kStep);
      check_grad("bn dbeta", bn.beta.data(), gb.data(), gb.size(), loss, 1e-6, 256, kStep);
    }
  }
}

TEST_CASE("batchnorm: running update as PyTorch (momentum 0.1, unbiased var), float vs double", "[batchnorm][ref]") {
  const ptrdiff_t R = 50, D = 7;
  Bn<double> bn(R, D, 5);
  auto x = random_vec<double>(size_t(R * D), 6, -1.0, 4.0);
  std::vector<double> y(x.size());
  std::vector<double> rm0 = bn.rm, rv0 = bn.rv;
  batchnorm_forward<double>(y.data(), bn.c(), x.data(), bn.p(), {R, D}, 1e-5, BnMode::train);
  batchnorm_running_update<double>(bn.rm.data(), bn.rv.data(), bn.c(), {R, D}, 0.1);
  for (ptrdiff_t d = 0; d < D; ++d) {
    double m = 0, v = 0;
    for (ptrdiff_t r = 0; r < R; ++r) m += x[r * D + d];
    m /= R;
    for (ptrdiff_t r = 0; r < R; ++r) v += (x[r * D + d] - m) * (x[r * D + d] - m);
    CHECK(std::abs(bn.rm[d] - (0.9 * rm0[d] + 0.1 * m)) < 1e-12);
    CHECK(std::abs(bn.rv[d] - (0.9 * rv0[d] + 0.1 * v / (R - 1))) < 1e-12);
  }
  // float kernels vs the double reference, both modes, sizes around the SIMD width
  for (BnMode mode : {BnMode::train, BnMode::eval})
    for (auto [R2, D2] : {std::pair<ptrdiff_t, ptrdiff_t>{3, 1}, {49, 16}, {3 * 49, 33}, {128 * 49, 24}}) {
      CAPTURE(int(mode), R2, D2);
      Bn<double> bd(R2, D2, 40);
      Bn<float> bf(R2, D2, 40);
      auto xd = random_vec<double>(size_t(R2 * D2), 41, -3.0, 5.0);
      auto xf = cast<float>(xd);
      std::vector<double> xr(xf.begin(), xf.end());
      auto dyd = random_vec<double>(xd.size(), 42);
      auto dyf = cast<float>(dyd);
      std::vector<double> dyr(dyf.begin(), dyf.end());
      std::vector<double> yd(xd.size()), dxd(xd.size(), 0), dgd(D2, 0), dbd(D2, 0);
      std::vector<float> yf(xd.size()), dxf(xd.size(), 0), dgf(D2, 0), dbf(D2, 0);
      batchnorm_forward<double>(yd.data(), bd.c(), xr.data(), bd.p(), {R2, D2}, 1e-5, mode);
      batchnorm_forward<float>(yf.data(), bf.c(), xf.data(), bf.p(), {R2, D2}, 1e-5f, mode);
      require_close("bn y float", yf.data(), yd.data(), yd.size(), 1e-5, 1e-5);
      batchnorm_backward<double>(dxd.data(), {dgd.data(), dbd.data()}, dyr.data(), xr.data(), bd.c(), bd.p(), {R2, D2}, mode);
      batchnorm_backward<float>(dxf.data(), {dgf.data(), dbf.data()}, dyf.data(), xf.data(), bf.c(), bf.p(), {R2, D2}, mode);
      require_close("bn dx float", dxf.data(), dxd.data(), dxd.size(), 1e-4, 1e-5);
      require_close("bn dgamma float", dgf.data(), dgd.data(), dgd.size(), 1e-4, 1e-4);
      require_close("bn dbeta float", dbf.data(), dbd.data(), dbd.size(), 1e-5, 1e-4);
    }
  std::vector<double> one(3);
  Bn<double> b1(1, 3, 1);
  CHECK_THROWS_AS(batchnorm_forward<double>(one.data(), b1.c(), one.data(), b1.p(), {1, 3}, 1e-5, BnMode::train), ShapeError);
}

namespace {
std::vector<double> dwconv_ref(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& b,
                               ptrdiff_t B, ptrdiff_t G, ptrdiff_t D) {
  std::vector<double> y(x.size());
  for (ptrdiff_t n = 0; n < B; ++n)
    for (ptrdiff_t i = 0; i < G; ++i)
      for (ptrdiff_t j = 0; j < G; ++j)
        for (ptrdiff_t d = 0; d < D; ++d) {
          double s = b[d];
          for (int u = 0; u < 3; ++u)
            for (int v = 0; v < 3; ++v) {
              ptrdiff_t ii = i + u - 1, jj = j + v - 1;
              if (ii >= 0 && ii < G && jj >= 0 && jj < G) s += w[d * 9 + u * 3 + v] * x[((n * G + ii) * G + jj) * D + d];
            }
          y[((n * G + i) * G + j) * D + d] = s;
        }
  return y;
}
}  // namespace

TEST_CASE("dwconv: gradients in double, float vs naive double", "[dwconv][grad][ref]") {
  for (auto [B, G, D] : {std::tuple<ptrdiff_t, ptrdiff_t, ptrdiff_t>{1, 1, 2}, {2, 3, 5}, {3, 7, 17}}) {
    CAPTURE(B, G, D);
    const size_t n = size_t(B * G * G * D);
    auto x = random_vec<double>(n, 1 + G), w = random_vec<double>(size_t(D * 9), 2 + G), b = random_vec<double>(size_t(D), 3 + G);
    auto Gd = random_vec<double>(n, 4 + G);
    auto run = [&] {
      std::vector<double> y(n);
      dwconv_forward<double>(y.data(), x.data(), {w.data(), b.data()}, {B, G, D});
      return y;
    };
    auto y = run();
    auto yr = dwconv_ref(x, w, b, B, G, D);
    require_close("dwconv forward", y.data(), yr.data(), n, 1e-12, 1e-12);
    auto loss = centred([&] { return dot_ld(run(), Gd); });
    std::vector<double> dx(n, kPre), dw(w.size(), kPre), db(b.size(), kPre);
    dwconv_backward<double>(dx.data(), {dw.data(), db.data()}, Gd.data(), x.data(), {w.data(), b.data()}, {B, G, D});
    auto gx = minus_pre(dx), gw = minus_pre(dw), gb = minus_pre(db);
    check_grad("dwconv dx", x.data(), gx.data(), n, loss);
    check_grad("dwconv dw", w.data(), gw.data(), gw.size(), loss);
    check_grad("dwconv db", b.data(), gb.data(), gb.size(), loss);
    // float
    auto xf = cast<float>(x), wf = cast<float>(w), bf = cast<float>(b), Gf = cast<float>(Gd);
    std::vector<float> yf(n), dxf(n, 0), dwf(w.size(), 0), dbf(b.size(), 0);
    dwconv_forward<float>(yf.data(), xf.data(), {wf.data(), bf.data()}, {B, G, D});
    require_close("dwconv y float", yf.data(), yr.data(), n, 1e-5, 1e-6);
    dwconv_backward<float>(dxf.data(), {dwf.data(), dbf.data()}, Gf.data(), xf.data(), {wf.data(), bf.data()}, {B, G, D});
    require_close("dwconv dx float", dxf.data(), gx.data(), n, 1e-5, 1e-5);
    require_close("dwconv dw float", dwf.data(), gw.data(), gw.size(), 1e-5, 1e-5);
    require_close("dwconv db float", dbf.data(), gb.data(), gb.size(), 1e-5, 1e-5);
  }
}

TEST_CASE("subsample: stride 2 and 3 pick (i*s, j*s), gradient in double", "[subsample][grad][ref]") {
  for (auto [G, s] : {std::pair<ptrdiff_t, ptrdiff_t>{14, 2}, {14, 3}, {7, 2}, {7, 3}, {5, 1}}) {
    CAPTURE(G, s);
    const ptrdiff_t B = 2, D = 3;
    SubsampleShape sh{B, G, D, s};
    const ptrdiff_t H = sh.out_grid();
    CHECK(H == (G + s - 1) / s);
    if (G == 14) CHECK(H == (s == 2 ? 7 : 5));
    auto x = random_vec<double>(size_t(B * G * G * D), 7 + G);
    auto Gd = random_vec<double>(size_t(B * H * H * D), 8 + G);
    auto run = [&] {
      std::vector<double> y(size_t(B * H * H * D));
      subsample_forward<double>(y.data(), x.data(), sh);
      return y;
    };
    auto y = run();
    for (ptrdiff_t b = 0; b < B; ++b)
      for (ptrdiff_t i = 0; i < H; ++i)
        for (ptrdiff_t j = 0; j < H; ++j)
          for (ptrdiff_t d = 0; d < D; ++d)
            REQUIRE(y[((b * H + i) * H + j) * D + d] == x[((b * G + i * s) * G + j * s) * D + d]);
    auto loss = centred([&] { return dot_ld(run(), Gd); });
    std::vector<double> dx(x.size(), kPre);
    subsample_backward<double>(dx.data(), Gd.data(), sh);
    auto gx = minus_pre(dx);
    check_grad("subsample dx", x.data(), gx.data(), gx.size(), loss, 1e-6, 2000);
  }
}

TEST_CASE("gram: Y^T Y per sample, gradient in double, float vs double", "[gram][grad][ref]") {
  for (auto [B, n, D] : {std::tuple<ptrdiff_t, ptrdiff_t, ptrdiff_t>{1, 1, 1}, {2, 5, 3}, {3, 16, 24}}) {
    CAPTURE(B, n, D);
    GramShape s{B, n, D};
    auto y = random_vec<double>(size_t(B * n * D), 11 + n);
    auto Gd = random_vec<double>(size_t(B * D * D), 12 + n);
    auto run = [&] {
      std::vector<double> g(size_t(B * D * D));
      gram_forward<double>(g.data(), y.data(), s);
      return g;
    };
    auto g = run();
    std::vector<double> ref(g.size());
    for (ptrdiff_t b = 0; b < B; ++b)
      for (ptrdiff_t i = 0; i < D; ++i)
        for (ptrdiff_t j = 0; j < D; ++j) {
          double a = 0;
          for (ptrdiff_t t = 0; t < n; ++t) a += y[(b * n + t) * D + i] * y[(b * n + t) * D + j];
          ref[(b * D + i) * D + j] = a;
        }
    require_close("gram forward", g.data(), ref.data(), g.size(), 1e-12, 1e-12);
    auto loss = centred([&] { return dot_ld(run(), Gd); });
    std::vector<double> dy(y.size(), kPre);
    gram_backward<double>(dy.data(), Gd.data(), y.data(), s);
    auto gy = minus_pre(dy);
    check_grad("gram dy", y.data(), gy.data(), gy.size(), loss);
    auto yf = cast<float>(y), Gf = cast<float>(Gd);
    std::vector<float> gf(g.size()), dyf(y.size(), 0);
    gram_forward<float>(gf.data(), yf.data(), s);
    gram_backward<float>(dyf.data(), Gf.data(), yf.data(), s);
    require_close("gram float", gf.data(), ref.data(), g.size(), 1e-5, 1e-5);
    require_close("gram dy float", dyf.data(), gy.data(), gy.size(), 1e-5, 1e-5);
  }
}

TEST_CASE("channel_kl: value vs naive KL, gradient in double, float vs double", "[channel_kl][grad][ref]") {
  for (auto [R, D] : {std::pair<ptrdiff_t, ptrdiff_t>{1, 2}, {10, 7}, {49, 33}}) {
    CAPTURE(R, D);
    auto s = random_vec<double>(size_t(R * D), 21 + R, -3.0, 3.0), t = random_vec<double>(size_t(R * D), 22 + R, -3.0, 3.0);
    std::vector<double> q(s.size()), tl(s.size());
    const double scale = 0.5;
    auto run = [&] { return channel_kl_forward<double>({q.data(), tl.data()}, s.data(), t.data(), {R, D}, scale); };
    double v = run();
    double ref = 0;
    for (ptrdiff_t r = 0; r < R; ++r) {
      double ms = -1e300, mt = -1e300, zs = 0, zt = 0;
      for (ptrdiff_t d = 0; d < D; ++d) { ms = std::max(ms, s[r * D + d]); mt = std::max(mt, t[r * D + d]); }
      for (ptrdiff_t d = 0; d < D; ++d) { zs += std::exp(s[r * D + d] - ms); zt += std::exp(t[r * D + d] - mt); }
      for (ptrdiff_t d = 0; d < D; ++d) {
        double lp = t[r * D + d] - mt - std::log(zt), lq = s[r * D + d] - ms - std::log(zs);
        ref += std::exp(lp) * (lp - lq);
      }
    }
    CHECK(std::abs(v - scale * ref) < 1e-12);
    std::vector<double> ds(s.size(), kPre);
    channel_kl_backward<double>(ds.data(), {q.data(), tl.data()}, {R, D}, scale);
    auto gs = minus_pre(ds);
    check_grad("channel_kl ds", s.data(), gs.data(), gs.size(), [&] { return double(run()); }, 1e-6, 256, kStep);
    auto sf = cast<float>(s), tf = cast<float>(t);
    std::vector<float> qf(s.size()), tlf(s.size()), dsf(s.size(), 0);
    float vf = channel_kl_forward<float>({qf.data(), tlf.data()}, sf.data(), tf.data(), {R, D}, float(scale));
    CHECK(std::abs(vf - v) <= 1e-5 * std::abs(v) + 1e-6);
    channel_kl_backward<float>(dsf.data(), {qf.data(), tlf.data()}, {R, D}, float(scale));
    require_close("channel_kl ds float", dsf.data(), gs.data(), gs.size(), 1e-5, 1e-6);
  }
}
