// Tests for ops/dwconv.hpp (LGViT's local head): gradients in double, float against a naive
// double forward and the (gradient-checked) double backward.
#include <vector>

#include "envit/ops/dwconv.hpp"
#include "testing.hpp"

using namespace envit;
using namespace envit::testing;
using std::ptrdiff_t;
using std::size_t;

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
    auto xf = cast_vec<float>(x), wf = cast_vec<float>(w), bf = cast_vec<float>(b), Gf = cast_vec<float>(Gd);
    std::vector<float> yf(n), dxf(n, 0), dwf(w.size(), 0), dbf(b.size(), 0);
    dwconv_forward<float>(yf.data(), xf.data(), {wf.data(), bf.data()}, {B, G, D});
    require_close("dwconv y float", yf.data(), yr.data(), n, 1e-5, 1e-6);
    dwconv_backward<float>(dxf.data(), {dwf.data(), dbf.data()}, Gf.data(), xf.data(), {wf.data(), bf.data()}, {B, G, D});
    require_close("dwconv dx float", dxf.data(), gx.data(), n, 1e-5, 1e-5);
    require_close("dwconv dw float", dwf.data(), gw.data(), gw.size(), 1e-5, 1e-5);
    require_close("dwconv db float", dbf.data(), gb.data(), gb.size(), 1e-5, 1e-5);
  }
}
