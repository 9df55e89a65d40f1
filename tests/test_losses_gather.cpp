// Tests for ops/cross_entropy.hpp, ops/kl_div.hpp and ops/gather.hpp: gradient checks in double,
// float vs naive double references (logits near +-100), values exported from PyTorch, label and
// index validation, gather/scatter invariants.
// Debug checks are forced on in this file so the kernels' ENVIT_DCHECK index preconditions can be
// tested in a Release build (this executable has a single envit translation unit: no ODR mix).
#define ENVIT_DEBUG_CHECKS 1

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "envit/core/parallel.hpp"
#include "envit/ops/cross_entropy.hpp"
#include "envit/ops/gather.hpp"
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

std::vector<int32_t> random_labels(ptrdiff_t R, ptrdiff_t C, std::uint64_t seed) {
  CounterRng r(seed, RngStream::init, 0x1AB);
  std::vector<int32_t> l(R);
  for (auto& v : l) v = static_cast<int32_t>(r.below(static_cast<std::uint32_t>(C)));
  return l;
}

// Naive double log-softmax of x * scale for one row.
template <class T>
std::vector<double> log_softmax_row(const T* x, ptrdiff_t C, double scale) {
  double m = -INFINITY;
  for (ptrdiff_t c = 0; c < C; ++c) m = std::max(m, scale * double(x[c]));
  double s = 0;
  for (ptrdiff_t c = 0; c < C; ++c) s += std::exp(scale * double(x[c]) - m);
  std::vector<double> out(C);
  for (ptrdiff_t c = 0; c < C; ++c) out[c] = scale * double(x[c]) - m - std::log(s);
  return out;
}

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

// ------------------------------------------------------------------------------ cross-entropy

TEST_CASE("cross_entropy: gradient in double, accumulate", "[cross_entropy][grad]") {
  struct Case { ptrdiff_t R, C; size_t max_entries; };
  const Case cases[] = {{1, 1, 256}, {1, 3, 256}, {3, 17, 256}, {2, 33, 256}, {8, 10, 256}, {64, 100, 200}};
  std::uint64_t seed = 2000;
  for (const auto& c : cases) {
    CAPTURE(c.R, c.C);
    auto x = random_vec<double>(c.R * c.C, ++seed, -3.0, 3.0);
    auto labels = random_labels(c.R, c.C, ++seed);
    const double scale = 0.7 / double(c.R);
    std::vector<double> probs(c.R * c.C), scratch(c.C);
    const double l0 = cross_entropy_forward(probs.data(), x.data(), labels.data(), c.R, c.C, scale);
    // Loss for the finite differences: one call per row, rows summed in long double, so a
    // perturbation's effect is not buried in the rounding of a long double-precision sum.
    auto loss_ld = [&] {
      long double s = 0;
      for (ptrdiff_t r = 0; r < c.R; ++r)
        s += cross_entropy_forward(scratch.data(), x.data() + r * c.C, labels.data() + r, 1, c.C, scale);
      return s;
    };
    REQUIRE(std::abs(double(loss_ld()) - l0) <= 1e-13 * (1.0 + std::abs(l0)));
    auto loss = centred(loss_ld);
    REQUIRE(std::isfinite(l0));
    REQUIRE(l0 >= 0.0);
    std::vector<double> dx(c.R * c.C, kPre);
    cross_entropy_backward(dx.data(), probs.data(), labels.data(), c.R, c.C, scale);
    auto g = minus_pre(dx);
    check_grad("cross_entropy dlogits", x.data(), g.data(), g.size(), loss, 1e-6, c.max_entries, kStep);
    if (c.C == 1) REQUIRE(l0 == 0.0);
  }
}

TEST_CASE("cross_entropy: float vs naive double reference, logits near +-100", "[cross_entropy][ref]") {
  std::uint64_t seed = 2100;
  for (ptrdiff_t C : {1, 7, 15, 16, 17, 32, 48, 50, 191, 192, 768, 1000}) {
    for (bool extreme : {false, true}) {
      CAPTURE(C, extreme);
      const ptrdiff_t R = 12;
      auto x = extreme ? extreme_logits<float>(R, C, ++seed) : random_vec<float>(R * C, ++seed, -5.0, 5.0);
      auto labels = random_labels(R, C, ++seed);
      const double scale = 1.0 / double(R);
      double loss_ref = 0;
      std::vector<double> p_ref(R * C), d_ref(R * C);
      for (ptrdiff_t r = 0; r < R; ++r) {
        auto l = log_softmax_row(x.data() + r * C, C, 1.0);
        loss_ref -= l[labels[r]];
        for (ptrdiff_t c = 0; c < C; ++c) {
          p_ref[r * C + c] = std::exp(l[c]);
          d_ref[r * C + c] = scale * (p_ref[r * C + c] - (c == labels[r] ? 1.0 : 0.0));
        }
      }
      loss_ref *= scale;
      std::vector<float> p(R * C), dx(R * C, float(kPre));
      float loss = cross_entropy_forward(p.data(), x.data(), labels.data(), R, C, float(scale));
      cross_entropy_backward(dx.data(), p.data(), labels.data(), R, C, float(scale));
      require_finite("probs", p);
      REQUIRE(std::isfinite(loss));
      require_close("cross_entropy loss", &loss, &loss_ref, 1, 1e-5, 1e-6);
      require_close("cross_entropy probs", p.data(), p_ref.data(), p.size(), 1e-5, 1e-7);
      auto g = minus_pre(dx);
      require_close("cross_entropy dlogits", g.data(), d_ref.data(), g.size(), 1e-5, 1e-7);
      // probs may alias logits
      std::vector<float> xi(x);
      float loss_i = cross_entropy_forward(xi.data(), xi.data(), labels.data(), R, C, float(scale));
      REQUIRE(loss_i == loss);
      REQUIRE(std::memcmp(xi.data(), p.data(), p.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("cross_entropy: a probability that underflows still gives a finite loss",
          "[cross_entropy][ref]") {
  const float x[] = {100.f, -100.f, 100.f};  // label 1: p = exp(-200 - log 2) underflows in float
  const int32_t label = 1;
  float p[3];
  float loss = cross_entropy_forward(p, x, &label, 1, 3, 1.0f);
  REQUIRE(std::isfinite(loss));
  REQUIRE(std::abs(double(loss) - (200.0 + std::log(2.0))) < 1e-4);
  REQUIRE(p[1] == 0.f);
}

TEST_CASE("cross_entropy: matches PyTorch F.cross_entropy (mean)", "[cross_entropy][ref]") {
  // torch.nn.functional.cross_entropy(x, labels, reduction='mean') in float64, with x.grad.
  const double x[] = {1.5, -0.25, 3.0, 0.0, -2.0, 0.1, 0.2, 0.3, 0.4, 0.5, 100.0, -100.0, 99.0, 0.0, -50.0};
  const int32_t labels[] = {2, 0, 1};
  const double loss_torch = 67.46970639534867;
  const double grad_torch[] = {0.056413123819082506, 0.009803130988400206, -0.0805072528897233,
                               0.012587469352225083, 0.0017035287300155634, -0.27929321737714224,
                               0.05972356456421814,  0.06600474668018719,  0.07294652648589303,
                               0.08061837964684393,  0.2436861928766683,   -0.3333333333333333,
                               0.08964714045666503,  9.065311518084752e-45, 1.7484718212251272e-66};
  double p[15], g[15] = {};
  double loss = cross_entropy_forward(p, x, labels, 3, 5, 1.0 / 3.0);
  cross_entropy_backward(g, p, labels, 3, 5, 1.0 / 3.0);
  require_close("loss vs torch", &loss, &loss_torch, 1, 1e-12, 1e-12);
  require_close("grad vs torch", g, grad_torch, 15, 1e-12, 1e-15);
}

TEST_CASE("cross_entropy: labels out of range throw ValueError naming row and label",
          "[cross_entropy][error]") {
  const ptrdiff_t R = 4, C = 5;
  std::vector<float> x(R * C, 0.f), p(R * C), d(R * C);
  std::vector<int32_t> bad_hi = {0, 1, 5, 2}, bad_neg = {-1, 1, 2, 3};
  REQUIRE_THROWS_AS(cross_entropy_forward(p.data(), x.data(), bad_hi.data(), R, C, 1.f), ValueError);
  REQUIRE_THROWS_WITH(cross_entropy_forward(p.data(), x.data(), bad_hi.data(), R, C, 1.f),
                      Contains("row 2") && Contains("label 5"));
  REQUIRE_THROWS_WITH(cross_entropy_forward(p.data(), x.data(), bad_neg.data(), R, C, 1.f),
                      Contains("row 0") && Contains("label -1"));
  REQUIRE_THROWS_AS(cross_entropy_backward(d.data(), p.data(), bad_hi.data(), R, C, 1.f), ValueError);
  REQUIRE_THROWS_AS(cross_entropy_forward(p.data(), x.data(), bad_hi.data(), R, 0, 1.f), ShapeError);
  // rows = 0: loss 0, nothing touched
  REQUIRE(cross_entropy_forward<float>(nullptr, nullptr, nullptr, 0, C, 1.f) == 0.f);
}

TEST_CASE("cross_entropy: loss is bitwise reproducible with 2 threads", "[cross_entropy][determinism]") {
  ThreadGuard guard;
  set_num_threads(2);
  const ptrdiff_t R = 512, C = 1000;
  auto x = random_vec<float>(R * C, 2200, -4.0, 4.0);
  auto labels = random_labels(R, C, 2201);
  std::vector<float> p(R * C);
  float a = cross_entropy_forward(p.data(), x.data(), labels.data(), R, C, 1.f / R);
  float b = cross_entropy_forward(p.data(), x.data(), labels.data(), R, C, 1.f / R);
  REQUIRE(std::memcmp(&a, &b, sizeof a) == 0);
}

// ------------------------------------------------------------------------------------- kl_div

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

// ------------------------------------------------------------------------------------- gather

TEST_CASE("gather then scatter is the identity on selected rows; others untouched", "[gather]") {
  struct Case { ptrdiff_t N, L; };
  for (auto [N, L] : {Case{10, 5}, Case{10, 1}, Case{3, 0}, Case{4096, 192}}) {
    CAPTURE(N, L);
    auto src = random_vec<float>(N * L, 4000 + N);
    std::vector<int32_t> idx;
    for (int32_t i = 0; i < N; ++i) if (i % 3 != 1) idx.push_back(i);
    const ptrdiff_t n = ptrdiff_t(idx.size());
    check_row_indices(idx.data(), n, N, "test");
    std::vector<float> dense(n * L, -1.f);
    gather_rows(dense.data(), src.data(), idx.data(), n, L);
    std::vector<float> expect_dense(n * L);
    for (ptrdiff_t i = 0; i < n; ++i)
      for (ptrdiff_t j = 0; j < L; ++j) expect_dense[i * L + j] = src[idx[i] * L + j];
    REQUIRE(dense == expect_dense);
    // scatter back into a copy: identity
    std::vector<float> back(src);
    scatter_rows(back.data(), dense.data(), idx.data(), n, L);
    REQUIRE(back == src);
    // scatter into a sentinel-filled buffer: selected rows copied, others untouched;
    // scatter-add: selected rows gain src, others keep the prefill
    std::vector<float> out(N * L, 7.f), acc(N * L, 0.5f);
    scatter_rows(out.data(), dense.data(), idx.data(), n, L);
    scatter_add_rows(acc.data(), dense.data(), idx.data(), n, L);
    std::vector<float> expect_out(N * L), expect_acc(N * L);
    for (ptrdiff_t r = 0; r < N; ++r)
      for (ptrdiff_t j = 0; j < L; ++j) {
        const bool selected = r % 3 != 1;
        expect_out[r * L + j] = selected ? src[r * L + j] : 7.f;
        expect_acc[r * L + j] = selected ? 0.5f + src[r * L + j] : 0.5f;
      }
    REQUIRE(out == expect_out);
    REQUIRE(acc == expect_acc);
  }
}

TEST_CASE("gather/scatter: backward of gather is scatter-add, backward of scatter is gather",
          "[gather][grad]") {
  const ptrdiff_t N = 6, L = 3;
  const std::vector<int32_t> idx = {0, 2, 3, 5};
  const ptrdiff_t n = 4;
  auto src = random_vec<double>(N * L, 4100), G = random_vec<double>(n * L, 4101);
  // loss = <gather(src), G>  =>  dsrc = scatter_add(0, G)
  auto loss_g = [&] {
    std::vector<double> d(n * L);
    gather_rows(d.data(), src.data(), idx.data(), n, L);
    double s = 0;
    for (ptrdiff_t i = 0; i < n * L; ++i) s += d[i] * G[i];
    return s;
  };
  std::vector<double> dsrc(N * L, 0.0);
  scatter_add_rows(dsrc.data(), G.data(), idx.data(), n, L);
  check_grad("gather backward", src.data(), dsrc.data(), dsrc.size(), loss_g);
  // loss = <scatter(base, s), H>  =>  ds = gather(H)
  auto s = random_vec<double>(n * L, 4102), base = random_vec<double>(N * L, 4103);
  auto H = random_vec<double>(N * L, 4104);
  auto loss_s = [&] {
    std::vector<double> out(base);
    scatter_rows(out.data(), s.data(), idx.data(), n, L);
    double t = 0;
    for (ptrdiff_t i = 0; i < N * L; ++i) t += out[i] * H[i];
    return t;
  };
  std::vector<double> ds(n * L);
  gather_rows(ds.data(), H.data(), idx.data(), n, L);
  check_grad("scatter backward", s.data(), ds.data(), ds.size(), loss_s);
}

TEST_CASE("gather/scatter: empty selection works", "[gather]") {
  std::vector<float> src(12, 1.f), dst(12, 2.f);
  gather_rows<float>(nullptr, src.data(), nullptr, 0, 4);
  scatter_rows<float>(dst.data(), nullptr, nullptr, 0, 4);
  scatter_add_rows<float>(dst.data(), nullptr, nullptr, 0, 4);
  for (float v : dst) REQUIRE(v == 2.f);
  check_row_indices(nullptr, 0, 3, "test");
  check_row_indices(nullptr, 0, 0, "test");
}

TEST_CASE("check_row_indices: unsorted, duplicate, negative, out of range", "[gather][error]") {
  const int32_t unsorted[] = {0, 3, 2}, dup[] = {1, 1, 2}, neg[] = {-1, 0, 1}, big[] = {0, 1, 5};
  REQUIRE_THROWS_AS(check_row_indices(unsorted, 3, 5, "mask"), ValueError);
  REQUIRE_THROWS_WITH(check_row_indices(unsorted, 3, 5, "mask"),
                      Contains("mask") && Contains("not sorted") && Contains("position 2") && Contains(": 2"));
  REQUIRE_THROWS_WITH(check_row_indices(dup, 3, 5, "mask"), Contains("duplicate") && Contains("position 1"));
  REQUIRE_THROWS_WITH(check_row_indices(neg, 3, 5, "mask"), Contains("negative") && Contains("position 0"));
  REQUIRE_THROWS_WITH(check_row_indices(big, 3, 5, "mask"),
                      Contains("out of range") && Contains("position 2") && Contains("5 >= 5"));
  const int32_t ok[] = {0, 1, 2, 3};
  REQUIRE_THROWS_AS(check_row_indices(ok, 4, 3, "mask"), ValueError);  // more indices than rows
  REQUIRE_NOTHROW(check_row_indices(ok, 4, 4, "mask"));
}

TEST_CASE("gather/scatter kernels check index order in debug builds", "[gather][error]") {
  // ENVIT_DEBUG_CHECKS is defined at the top of this file.
  const int32_t unsorted[] = {2, 1}, neg[] = {-3, 1};
  std::vector<float> big(20, 0.f), small(10, 0.f);
  REQUIRE_THROWS_AS(gather_rows(small.data(), big.data(), unsorted, 2, 5), ValueError);
  REQUIRE_THROWS_AS(scatter_rows(big.data(), small.data(), unsorted, 2, 5), ValueError);
  REQUIRE_THROWS_AS(scatter_add_rows(big.data(), small.data(), neg, 2, 5), ValueError);
  for (float v : big) REQUIRE(v == 0.f);  // nothing written before the check
}
