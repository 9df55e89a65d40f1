// Tests for ops/kl_div.hpp: gradient check in double (tau and scale), float vs a naive double
// reference (logits near +-100), zero teacher probabilities, values exported from PyTorch, errors.
// Debug checks are forced on in this file so the kernels' ENVIT_DCHECK preconditions are active in
// a Release build (this executable has a single envit translation unit: no ODR mix).
#define ENVIT_DEBUG_CHECKS 1

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "envit/core/parallel.hpp"
#include "envit/ops/kl_div.hpp"
#include "testing.hpp"

using namespace envit;
using Catch::Contains;
using envit::testing::check_grad;
using envit::testing::random_vec;
using envit::testing::require_close;
using std::int32_t;
using std::ptrdiff_t;
using std::size_t;

using namespace envit::testing;

namespace {

// Teacher log-probabilities at temperature tau from teacher logits, in T.
template <class T>
std::vector<T> teacher_logp(const std::vector<T>& t, ptrdiff_t R, ptrdiff_t C, double tau) {
  std::vector<T> out(R * C);
  for (ptrdiff_t r = 0; r < R; ++r) {
    auto l = log_softmax_row(t.data() + r * C, C, 1.0 / tau);
    for (ptrdiff_t c = 0; c < C; ++c) out[r * C + c] = T(l[c]);
  }
  return out;
}

}  // namespace

TEST_CASE("kl_div: gradient in double, tau and scale, accumulate", "[kl_div][grad]") {
  struct Case { ptrdiff_t R, C; size_t max_entries; };
  const Case cases[] = {{1, 1, 256}, {1, 3, 256}, {3, 17, 256}, {2, 33, 256}, {64, 100, 200}};
  std::uint64_t seed = 3000;
  for (const auto& c : cases) {
    for (double tau : {1.0, 4.0}) {
      CAPTURE(c.R, c.C, tau);
      auto x = random_vec<double>(c.R * c.C, ++seed, -4.0, 4.0);
      auto t = teacher_logp(random_vec<double>(c.R * c.C, ++seed, -4.0, 4.0), c.R, c.C, tau);
      const double scale = tau * tau * 0.5 / double(c.R);
      std::vector<double> q(c.R * c.C), scratch(c.C);
      const double l0 = kl_div_forward(q.data(), x.data(), t.data(), c.R, c.C, tau, scale);
      REQUIRE(l0 >= -1e-12);
      auto loss_ld = [&] {  // per row, summed in long double (see the cross-entropy test)
        long double s = 0;
        for (ptrdiff_t r = 0; r < c.R; ++r)
          s += kl_div_forward(scratch.data(), x.data() + r * c.C, t.data() + r * c.C, 1, c.C, tau, scale);
        return s;
      };
      REQUIRE(std::abs(double(loss_ld()) - l0) <= 1e-13 * (1.0 + std::abs(l0)));
      auto loss = centred(loss_ld);
      std::vector<double> dx(c.R * c.C, kPre);
      kl_div_backward(dx.data(), q.data(), t.data(), c.R, c.C, tau, scale);
      auto g = minus_pre(dx);
      check_grad("kl_div dlogits", x.data(), g.data(), g.size(), loss, 1e-6, c.max_entries, kStep);
    }
  }
}

TEST_CASE("kl_div: teacher zeros (log p = -inf) contribute 0; unnormalised teacher is exact",
          "[kl_div][grad]") {
  const ptrdiff_t R = 3, C = 7;
  const double tau = 2.0;
  auto x = random_vec<double>(R * C, 3100, -3.0, 3.0);
  auto tl = random_vec<double>(R * C, 3101, -3.0, 3.0);
  // zero some teacher entries, renormalise the rest (log-softmax over the support)
  std::vector<double> t(R * C);
  for (ptrdiff_t r = 0; r < R; ++r) {
    double m = -INFINITY, s = 0;
    for (ptrdiff_t c = 0; c < C; ++c) if ((c + r) % 3 != 0) m = std::max(m, tl[r * C + c]);
    for (ptrdiff_t c = 0; c < C; ++c) if ((c + r) % 3 != 0) s += std::exp(tl[r * C + c] - m);
    for (ptrdiff_t c = 0; c < C; ++c)
      t[r * C + c] = (c + r) % 3 != 0 ? tl[r * C + c] - m - std::log(s) : -INFINITY;
  }
  for (double shift : {0.0, 0.3}) {  // shift: rows of p sum to exp(0.3), not 1
    CAPTURE(shift);
    std::vector<double> ts(t);
    for (auto& v : ts) v += shift;
    std::vector<double> q(R * C);
    auto loss = [&] { return kl_div_forward(q.data(), x.data(), ts.data(), R, C, tau, 1.0); };
    const double l0 = loss();  // small (R = 3): no need to centre
    REQUIRE(std::isfinite(l0));
    // reference: sum over the support only
    double ref = 0;
    for (ptrdiff_t r = 0; r < R; ++r) {
      auto lq = log_softmax_row(x.data() + r * C, C, 1.0 / tau);
      for (ptrdiff_t c = 0; c < C; ++c)
        if (std::isfinite(ts[r * C + c])) ref += std::exp(ts[r * C + c]) * (ts[r * C + c] - lq[c]);
    }
    require_close("kl with zeros", &l0, &ref, 1, 1e-12, 1e-12);
    std::vector<double> dx(R * C, 0.0);
    kl_div_backward(dx.data(), q.data(), ts.data(), R, C, tau, 1.0);
    require_finite("kl dlogits", dx);
    check_grad("kl_div dlogits (teacher zeros)", x.data(), dx.data(), dx.size(), loss, 1e-6, 256, kStep);
  }
}

TEST_CASE("kl_div: float vs naive double reference, logits near +-100", "[kl_div][ref]") {
  std::uint64_t seed = 3200;
  for (ptrdiff_t C : {1, 7, 15, 16, 17, 32, 48, 50, 191, 192, 768, 1000}) {
    for (bool extreme : {false, true}) {
      for (double tau : {1.0, 4.0}) {
        CAPTURE(C, extreme, tau);
        const ptrdiff_t R = 9;
        auto x = extreme ? extreme_logits<float>(R, C, ++seed) : random_vec<float>(R * C, ++seed, -5.0, 5.0);
        auto traw = extreme ? extreme_logits<float>(R, C, ++seed) : random_vec<float>(R * C, ++seed, -5.0, 5.0);
        if (extreme) std::reverse(traw.begin(), traw.end());  // teacher and student disagree
        auto t = teacher_logp(traw, R, C, tau);
        const double scale = tau * tau / double(R);
        double loss_ref = 0;
        std::vector<double> q_ref(R * C), d_ref(R * C);
        for (ptrdiff_t r = 0; r < R; ++r) {
          auto lq = log_softmax_row(x.data() + r * C, C, 1.0 / tau);
          double ps = 0;
          for (ptrdiff_t c = 0; c < C; ++c) ps += std::exp(double(t[r * C + c]));
          for (ptrdiff_t c = 0; c < C; ++c) {
            const double lp = t[r * C + c], p = std::exp(lp);
            if (p > 0) loss_ref += p * (lp - lq[c]);
            q_ref[r * C + c] = std::exp(lq[c]);
            d_ref[r * C + c] = scale / tau * (q_ref[r * C + c] * ps - p);
          }
        }
        loss_ref *= scale;
        std::vector<float> q(R * C), dx(R * C, float(kPre));
        float loss = kl_div_forward(q.data(), x.data(), t.data(), R, C, float(tau), float(scale));
        kl_div_backward(dx.data(), q.data(), t.data(), R, C, float(tau), float(scale));
        require_finite("q", q);
        require_finite("dlogits", dx);
        REQUIRE(std::isfinite(loss));
        // The loss is a sum of p (log p - log q) whose terms reach |200/tau|: abs error ~ 1e-5.
        require_close("kl loss", &loss, &loss_ref, 1, 1e-5, 1e-5);
        require_close("kl q", q.data(), q_ref.data(), q.size(), 1e-5, 1e-7);
        auto g = minus_pre(dx);
        require_close("kl dlogits", g.data(), d_ref.data(), g.size(), 1e-5, 1e-6);
        // q may alias logits
        std::vector<float> xi(x);
        float loss_i = kl_div_forward(xi.data(), xi.data(), t.data(), R, C, float(tau), float(scale));
        REQUIRE(loss_i == loss);
        REQUIRE(std::memcmp(xi.data(), q.data(), q.size() * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("kl_div: zero when the student equals the teacher", "[kl_div][ref]") {
  const ptrdiff_t R = 16, C = 100;
  const float tau = 4.f;
  auto x = random_vec<float>(R * C, 3300, -8.0, 8.0);
  auto t = teacher_logp(x, R, C, tau);
  std::vector<float> q(R * C), dx(R * C, 0.f);
  float loss = kl_div_forward(q.data(), x.data(), t.data(), R, C, tau, 1.f / R);
  kl_div_backward(dx.data(), q.data(), t.data(), R, C, tau, 1.f / R);
  REQUIRE(std::abs(loss) < 1e-6);
  std::vector<double> zero(R * C, 0.0);
  require_close("kl grad at optimum", dx.data(), zero.data(), dx.size(), 0.0, 1e-8);
}

TEST_CASE("kl_div: matches PyTorch F.kl_div (batchmean, log_target) * tau^2", "[kl_div][ref]") {
  // s, t logits; tau = 4; teacher = F.log_softmax(t / tau); float64.
  // loss = F.kl_div(F.log_softmax(s / tau, -1), teacher, reduction='batchmean', log_target=True) * tau**2
  const double s[] = {1.5, -0.25, 3.0, 0.0, -2.0, 0.1, 0.2, 0.3, 0.4, 0.5, 100.0, -100.0, 99.0, 0.0, -50.0};
  const double t_logits[] = {0.5, 0.5, 2.0, -1.0, 1.0, 3.0, -3.0, 0.0, 1.0, 2.0, -100.0, 100.0, 50.0, 0.0, 99.0};
  const double teacher_torch[] = {-1.6630600308351895, -1.6630600308351895, -1.2880600308351895,
                                  -2.0380600308351893, -1.5380600308351895, -1.125198442555444,
                                  -2.625198442555444,  -1.875198442555444,  -1.625198442555444,
                                  -1.375198442555444,  -50.5759415149213,   -0.5759415149212969,
                                  -13.075941514921297, -25.575941514921297, -0.8259415149212969};
  const double loss_torch = 237.80587319734582;
  const double grad_torch[] = {0.06435452947925224,  -0.04800981978720732, 0.093635287884106,
                               0.04423017815272763,  -0.1542101757288783,  -0.17928135256768904,
                               0.16335298656204933,  0.06206735767191383,  0.010749751564325019,
                               -0.056888743230599254, 0.7495686678418784,  -0.749567097471195,
                               0.5837618721044431,   2.180921989570445e-17, -0.5837634424751267};
  const double tau = 4.0, scale = tau * tau / 3.0;
  std::vector<double> teacher(15);
  for (ptrdiff_t r = 0; r < 3; ++r) {
    auto l = log_softmax_row(t_logits + r * 5, 5, 1.0 / tau);
    for (ptrdiff_t c = 0; c < 5; ++c) teacher[r * 5 + c] = l[c];
  }
  require_close("teacher log_softmax vs torch", teacher.data(), teacher_torch, 15, 1e-13, 1e-13);
  double q[15], g[15] = {};
  double loss = kl_div_forward(q, s, teacher_torch, 3, 5, tau, scale);
  kl_div_backward(g, q, teacher_torch, 3, 5, tau, scale);
  require_close("kl loss vs torch", &loss, &loss_torch, 1, 1e-12, 1e-12);
  require_close("kl grad vs torch", g, grad_torch, 15, 1e-10, 1e-14);
}

TEST_CASE("kl_div: invalid temperature or shape throws", "[kl_div][error]") {
  float x[4] = {}, t[4] = {}, q[4];
  REQUIRE_THROWS_AS(kl_div_forward(q, x, t, 1, 4, 0.f, 1.f), ValueError);
  REQUIRE_THROWS_AS(kl_div_forward(q, x, t, 1, 4, -1.f, 1.f), ValueError);
  REQUIRE_THROWS_AS(kl_div_forward(q, x, t, 1, 4, NAN, 1.f), ValueError);
  REQUIRE_THROWS_WITH(kl_div_backward(q, x, t, 1, 4, 0.f, 1.f), Contains("tau"));
  REQUIRE_THROWS_AS(kl_div_forward(q, x, t, 1, 0, 1.f, 1.f), ShapeError);
  REQUIRE(kl_div_forward<float>(nullptr, nullptr, nullptr, 0, 4, 1.f, 1.f) == 0.f);
}
