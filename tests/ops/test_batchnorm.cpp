// Tests for ops/batchnorm.hpp (LGViT heads): gradients in double in train and eval modes, the
// running update as PyTorch computes it, float kernels against a naive double forward.
#include <vector>

#include "envit/ops/batchnorm.hpp"
#include "testing.hpp"

using namespace envit;
using namespace envit::testing;
using std::ptrdiff_t;
using std::size_t;

namespace {

template <class T>
struct Bn {
  ptrdiff_t R, D;
  std::vector<T> gamma, beta, rm, rv, mean, var, rstd;
  Bn(ptrdiff_t r, ptrdiff_t d, std::uint64_t seed)
      : R(r), D(d), gamma(cast_vec<T>(random_vec<double>(d, seed, 0.5, 1.5))), beta(cast_vec<T>(random_vec<double>(d, seed + 1))),
        rm(cast_vec<T>(random_vec<double>(d, seed + 2))), rv(cast_vec<T>(random_vec<double>(d, seed + 3, 0.5, 2.0))),
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
      auto xf = cast_vec<float>(xd);
      std::vector<double> xr(xf.begin(), xf.end());
      auto dyd = random_vec<double>(xd.size(), 42);
      auto dyf = cast_vec<float>(dyd);
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
