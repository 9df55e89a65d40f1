// Tests for ops/gram.hpp (LGViT's homogeneous distillation): Y^T Y per sample, gradient in
// double, float against double.
#include <vector>

#include "envit/ops/gram.hpp"
#include "testing.hpp"

using namespace envit;
using namespace envit::testing;
using std::ptrdiff_t;
using std::size_t;

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
    auto yf = cast_vec<float>(y), Gf = cast_vec<float>(Gd);
    std::vector<float> gf(g.size()), dyf(y.size(), 0);
    gram_forward<float>(gf.data(), yf.data(), s);
    gram_backward<float>(dyf.data(), Gf.data(), yf.data(), s);
    require_close("gram float", gf.data(), ref.data(), g.size(), 1e-5, 1e-5);
    require_close("gram dy float", dyf.data(), gy.data(), gy.size(), 1e-5, 1e-5);
  }
}
