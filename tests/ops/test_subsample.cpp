// Tests for ops/subsample.hpp (LGViT heads): strided picks on the patch grid, gradient in double.
#include <vector>

#include "envit/ops/subsample.hpp"
#include "testing.hpp"

using namespace envit;
using namespace envit::testing;
using std::ptrdiff_t;
using std::size_t;

namespace {



}  // namespace

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
