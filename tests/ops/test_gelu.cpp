// Tests for ops/gelu.hpp: gradient check in double, float kernels against a naive double loop
// (including large |x|), accumulate (+=) semantics.
#include <cmath>
#include <vector>

#include "envit/ops/gelu.hpp"
#include "testing.hpp"

using namespace envit;
using envit::testing::check_grad;
using envit::testing::random_vec;
using envit::testing::require_close;
using std::ptrdiff_t;
using std::size_t;

using namespace envit::testing;

namespace {

double gelu_ref(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_grad_ref(double x) {
  return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
}

const ptrdiff_t kSizes[] = {1, 7, 15, 16, 17, 32, 48, 50, 191, 192, 768};

}  // namespace

TEST_CASE("gelu: gradient in double, accumulate", "[gelu][grad]") {
  for (ptrdiff_t n : {1, 3, 17, 33, 4096}) {
    CAPTURE(n);
    auto x = random_vec<double>(n, 500 + n, -4.0, 4.0), G = random_vec<double>(n, 600 + n);
    auto loss = centred([&] {
      std::vector<double> y(n);
      gelu_forward(y.data(), x.data(), n);
      return dot_ld(y, G);
    });
    std::vector<double> dx(n, kPre);
    gelu_backward(dx.data(), G.data(), x.data(), n);
    auto g = minus_pre(dx);
    check_grad("gelu dx", x.data(), g.data(), g.size(), loss, 1e-6, 256, kStep);
  }
}

TEST_CASE("gelu: float kernels vs naive double reference, including large |x|", "[gelu][ref]") {
  std::vector<ptrdiff_t> ns(std::begin(kSizes), std::end(kSizes));
  ns.push_back(100000);  // enough for two threads
  for (ptrdiff_t n : ns) {
    CAPTURE(n);
    auto x = random_vec<float>(n, 700 + n, -6.0, 6.0);
    if (n >= 4) { x[0] = 40.f; x[1] = -40.f; x[2] = 10.f; x[3] = -10.f; }
    auto dy = random_vec<float>(n, 800 + n);
    std::vector<double> yr(n), dxr(n);
    for (ptrdiff_t i = 0; i < n; ++i) {
      yr[i] = gelu_ref(x[i]);
      dxr[i] = double(dy[i]) * gelu_grad_ref(x[i]);
    }
    std::vector<float> y(n), dx(n, float(kPre));
    gelu_forward(y.data(), x.data(), n);
    gelu_backward(dx.data(), dy.data(), x.data(), n);
    auto g = minus_pre(dx);
    require_close("gelu y", y.data(), yr.data(), n, 1e-5, 1e-6);
    require_close("gelu dx", g.data(), dxr.data(), n, 1e-5, 1e-6);
    // in place (y aliases x)
    std::vector<float> xi(x);
    gelu_forward(xi.data(), xi.data(), n);
    require_close("gelu in place", xi.data(), yr.data(), n, 1e-5, 1e-6);
  }
}
