// Tests for ops/softmax.hpp: gradient checks in double (with scale), float kernels against naive
// double loops, adversarial logits near +-100, accumulate (+=) semantics, shape errors.
#include <cmath>
#include <vector>

#include "envit/ops/softmax.hpp"
#include "testing.hpp"

using namespace envit;
using envit::testing::check_grad;
using envit::testing::random_vec;
using envit::testing::require_close;
using std::ptrdiff_t;
using std::size_t;

using namespace envit::testing;

namespace {

// Naive double softmax / log-softmax of scale * x, row-wise, max-subtracted.
template <class T>
std::vector<double> softmax_ref(const std::vector<T>& x, ptrdiff_t R, ptrdiff_t C, double scale, bool log) {
  std::vector<double> y(R * C);
  for (ptrdiff_t r = 0; r < R; ++r) {
    double m = -INFINITY;
    for (ptrdiff_t c = 0; c < C; ++c) m = std::max(m, scale * double(x[r * C + c]));
    double s = 0;
    for (ptrdiff_t c = 0; c < C; ++c) s += std::exp(scale * double(x[r * C + c]) - m);
    for (ptrdiff_t c = 0; c < C; ++c) {
      double z = scale * double(x[r * C + c]) - m;
      y[r * C + c] = log ? z - std::log(s) : std::exp(z) / s;
    }
  }
  return y;
}

const ptrdiff_t kSizes[] = {1, 7, 15, 16, 17, 32, 48, 50, 191, 192, 768};

}  // namespace

TEST_CASE("softmax: gradient in double with scale, accumulate", "[softmax][grad]") {
  struct Case { ptrdiff_t R, C; size_t max_entries; };
  const Case cases[] = {{1, 1, 256}, {1, 3, 256}, {3, 17, 256}, {2, 33, 256}, {4, 16, 256}, {32, 197, 200}};
  std::uint64_t seed = 900;
  for (const auto& c : cases) {
    for (double scale : {1.0, 0.125, -0.5}) {
      CAPTURE(c.R, c.C, scale);
      auto x = random_vec<double>(c.R * c.C, ++seed, -3.0, 3.0);
      auto G = random_vec<double>(c.R * c.C, ++seed);
      std::vector<double> y(c.R * c.C);
      auto loss = centred([&] {
        softmax_forward(y.data(), x.data(), c.R, c.C, scale);
        return dot_ld(y, G);
      });
      loss();
      std::vector<double> dx(c.R * c.C, kPre);
      softmax_backward(dx.data(), G.data(), y.data(), c.R, c.C, scale);
      auto g = minus_pre(dx);
      check_grad("softmax dx", x.data(), g.data(), g.size(), loss, 1e-6, c.max_entries, kStep);
    }
  }
}

TEST_CASE("log_softmax: gradient in double with scale, accumulate", "[softmax][grad]") {
  struct Case { ptrdiff_t R, C; size_t max_entries; };
  const Case cases[] = {{1, 1, 256}, {1, 3, 256}, {3, 17, 256}, {2, 33, 256}, {32, 100, 200}};
  std::uint64_t seed = 1000;
  for (const auto& c : cases) {
    for (double scale : {1.0, 0.25}) {
      CAPTURE(c.R, c.C, scale);
      auto x = random_vec<double>(c.R * c.C, ++seed, -3.0, 3.0);
      auto G = random_vec<double>(c.R * c.C, ++seed);
      std::vector<double> y(c.R * c.C);
      auto loss = centred([&] {
        log_softmax_forward(y.data(), x.data(), c.R, c.C, scale);
        return dot_ld(y, G);
      });
      loss();
      std::vector<double> dx(c.R * c.C, kPre);
      log_softmax_backward(dx.data(), G.data(), y.data(), c.R, c.C, scale);
      auto g = minus_pre(dx);
      check_grad("log_softmax dx", x.data(), g.data(), g.size(), loss, 1e-6, c.max_entries, kStep);
    }
  }
}

TEST_CASE("softmax / log_softmax: float vs naive double reference", "[softmax][ref]") {
  std::uint64_t seed = 1100;
  for (ptrdiff_t C : kSizes) {
    for (ptrdiff_t R : {1, 5, 64}) {
      for (double scale : {1.0, 0.125}) {
        CAPTURE(R, C, scale);
        auto x = random_vec<float>(R * C, ++seed, -5.0, 5.0);
        auto dy = random_vec<float>(R * C, ++seed);
        auto yr = softmax_ref(x, R, C, scale, false), lr = softmax_ref(x, R, C, scale, true);
        std::vector<float> y(R * C), l(R * C), dx(R * C, float(kPre));
        softmax_forward(y.data(), x.data(), R, C, float(scale));
        log_softmax_forward(l.data(), x.data(), R, C, float(scale));
        require_close("softmax y", y.data(), yr.data(), y.size(), 1e-5, 1e-7);
        require_close("log_softmax y", l.data(), lr.data(), l.size(), 1e-5, 1e-6);
        // backward: dx = scale * y * (dy - <dy, y>) in double from the reference y
        std::vector<double> dxr(R * C);
        for (ptrdiff_t r = 0; r < R; ++r) {
          double d = 0;
          for (ptrdiff_t c = 0; c < C; ++c) d += double(dy[r * C + c]) * yr[r * C + c];
          for (ptrdiff_t c = 0; c < C; ++c)
            dxr[r * C + c] = scale * yr[r * C + c] * (double(dy[r * C + c]) - d);
        }
        softmax_backward(dx.data(), dy.data(), y.data(), R, C, float(scale));
        auto g = minus_pre(dx);
        require_close("softmax dx", g.data(), dxr.data(), g.size(), 1e-4, 1e-6);
      }
    }
  }
}

TEST_CASE("softmax / log_softmax: logits near +-100 give no inf or nan", "[softmax][ref]") {
  for (ptrdiff_t C : {1, 16, 17, 192, 1000}) {
    CAPTURE(C);
    const ptrdiff_t R = 6;
    auto x = extreme_logits<float>(R, C, 1200 + C);
    auto yr = softmax_ref(x, R, C, 1.0, false), lr = softmax_ref(x, R, C, 1.0, true);
    std::vector<float> y(R * C), l(R * C);
    softmax_forward(y.data(), x.data(), R, C);
    log_softmax_forward(l.data(), x.data(), R, C);
    require_finite("softmax", y);
    require_finite("log_softmax", l);
    require_close("softmax extreme", y.data(), yr.data(), y.size(), 1e-5, 1e-7);
    // log-probabilities reach -200: float resolution there is ~1e-5
    require_close("log_softmax extreme", l.data(), lr.data(), l.size(), 1e-5, 1e-5);
    // in place
    std::vector<float> xi(x);
    softmax_forward(xi.data(), xi.data(), R, C);
    require_close("softmax in place", xi.data(), yr.data(), xi.size(), 1e-5, 1e-7);
  }
}

TEST_CASE("softmax / log_softmax: zero columns throw ShapeError", "[softmax][error]") {
  float x[1] = {0.f}, y[1];
  REQUIRE_THROWS_AS(softmax_forward(y, x, 1, 0), ShapeError);
  REQUIRE_THROWS_AS(log_softmax_forward(y, x, 1, 0), ShapeError);
  REQUIRE_NOTHROW(softmax_forward<float>(nullptr, nullptr, 0, 5));
}
