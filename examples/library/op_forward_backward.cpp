// One op on raw buffers: LayerNorm's forward and backward in double, called the way the model
// calls it (output first, explicit cache, parameters, shape), with each gradient checked against
// central finite differences of the loss  sum(y * r)  for a fixed random r.
//   op_forward_backward
#include <cmath>
#include <cstdio>
#include <vector>

#include "envit/core/rng.hpp"
#include "envit/ops/layernorm.hpp"

using namespace envit;

int main() {
  const std::ptrdiff_t R = 3, D = 8;  // 3 rows of 8 features
  const double eps = 1e-6;
  CounterRng rng(1, RngStream::init, 0);
  auto fill = [&](std::vector<double>& v) { for (double& x : v) x = rng.uniform() * 2 - 1; };
  std::vector<double> x(R * D), gamma(D), beta(D), r(R * D);
  fill(x), fill(gamma), fill(beta), fill(r);

  // Forward: y = gamma * (x - mean) * rstd + beta, per row; mean and rstd go to the cache.
  std::vector<double> y(R * D), mean(R), rstd(R);
  const LayerNormParams<double> p{gamma.data(), beta.data()};
  layernorm_forward<double>(y.data(), {mean.data(), rstd.data()}, x.data(), p, {R, D}, eps);

  // Backward with dy = r: gradients accumulate (+=), so start from zero.
  std::vector<double> dx(R * D, 0.0), dgamma(D, 0.0), dbeta(D, 0.0);
  layernorm_backward<double>(dx.data(), {dgamma.data(), dbeta.data()}, r.data(), x.data(),
                             {mean.data(), rstd.data()}, p, {R, D});

  // Finite differences of L = sum(y * r) with respect to x and gamma.
  auto loss = [&] {
    std::vector<double> yy(R * D), m(R), s(R);
    layernorm_forward<double>(yy.data(), {m.data(), s.data()}, x.data(), p, {R, D}, eps);
    double l = 0;
    for (std::ptrdiff_t i = 0; i < R * D; ++i) l += yy[i] * r[i];
    return l;
  };
  auto numeric = [&](double& v) {
    const double h = 1e-6, keep = v;
    v = keep + h;
    const double up = loss();
    v = keep - h;
    const double down = loss();
    v = keep;
    return (up - down) / (2 * h);
  };
  double worst = 0;
  auto compare = [&](const char* what, std::vector<double>& param, const std::vector<double>& grad) {
    for (std::size_t i = 0; i < param.size(); ++i) {
      const double g = grad[i], n = numeric(param[i]);
      const double rel = std::abs(g - n) / std::max(std::abs(g) + std::abs(n), 1e-12);
      worst = std::max(worst, rel);
      if (i < 2) std::printf("d%s[%zu]: backward %+.10f  finite differences %+.10f\n", what, i, g, n);
    }
  };
  compare("x", x, dx);
  compare("gamma", gamma, dgamma);
  std::printf("largest relative difference %.2e\n", worst);
  return worst < 1e-6 ? 0 : 1;
}
