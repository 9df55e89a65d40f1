// Tests for ops/linear.hpp: gradient checks in double, float kernels against a naive double loop,
// accumulate (+=) semantics, null gradient pointers, bitwise determinism with two threads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "envit/core/parallel.hpp"
#include "envit/ops/linear.hpp"
#include "testing.hpp"

using namespace envit;
using envit::testing::check_grad;
using envit::testing::random_vec;
using envit::testing::require_close;
using std::ptrdiff_t;
using std::size_t;

using namespace envit::testing;

namespace {

// Naive double reference: y = x W^T + b and its gradients for upstream dy.
struct LinearRef {
  std::vector<double> y, dx, dw, db;
};
template <class T>
LinearRef linear_ref(const std::vector<T>& x, const std::vector<T>& w, const std::vector<T>* b,
                     const std::vector<T>& dy, ptrdiff_t R, ptrdiff_t I, ptrdiff_t O) {
  LinearRef r{std::vector<double>(R * O), std::vector<double>(R * I, 0.0),
              std::vector<double>(O * I, 0.0), std::vector<double>(O, 0.0)};
  for (ptrdiff_t i = 0; i < R; ++i)
    for (ptrdiff_t o = 0; o < O; ++o) {
      double s = b ? double((*b)[o]) : 0.0;
      for (ptrdiff_t k = 0; k < I; ++k) s += double(x[i * I + k]) * double(w[o * I + k]);
      r.y[i * O + o] = s;
    }
  for (ptrdiff_t i = 0; i < R; ++i)
    for (ptrdiff_t k = 0; k < I; ++k) {
      double s = 0;
      for (ptrdiff_t o = 0; o < O; ++o) s += double(dy[i * O + o]) * double(w[o * I + k]);
      r.dx[i * I + k] = s;
    }
  for (ptrdiff_t o = 0; o < O; ++o) {
    for (ptrdiff_t k = 0; k < I; ++k) {
      double s = 0;
      for (ptrdiff_t i = 0; i < R; ++i) s += double(dy[i * O + o]) * double(x[i * I + k]);
      r.dw[o * I + k] = s;
    }
    double s = 0;
    for (ptrdiff_t i = 0; i < R; ++i) s += double(dy[i * O + o]);
    r.db[o] = s;
  }
  return r;
}

// Restores the float GEMM backend on scope exit.
struct BackendGuard {
  GemmBackend saved = gemm_backend();
  ~BackendGuard() { set_gemm_backend(saved); }
};

}  // namespace

TEST_CASE("linear: gradients in double, with and without bias, accumulate", "[linear][grad]") {
  struct Case { ptrdiff_t R, I, O; size_t max_entries; };
  const Case cases[] = {{1, 1, 1, 256},  {1, 3, 17, 256}, {4, 17, 3, 256},  {3, 33, 5, 256},
                        {5, 7, 16, 256}, {2, 16, 33, 256}, {40, 192, 96, 200}};
  std::uint64_t seed = 10;
  for (const auto& c : cases) {
    for (bool bias : {true, false}) {
      CAPTURE(c.R, c.I, c.O, bias);
      const ptrdiff_t R = c.R, I = c.I, O = c.O;
      auto x = random_vec<double>(R * I, ++seed);
      auto w = random_vec<double>(O * I, ++seed);
      auto b = random_vec<double>(O, ++seed);
      auto G = random_vec<double>(R * O, ++seed);  // loss = sum(y * G), so dy = G
      const LinearShape s{R, I, O};
      auto params = [&] { return LinearParams<double>{w.data(), bias ? b.data() : nullptr}; };
      auto loss = centred([&] {
        std::vector<double> y(R * O);
        linear_forward(y.data(), x.data(), params(), s);
        return dot_ld(y, G);
      });
      std::vector<double> dx(R * I, kPre), dw(O * I, kPre), db(O, kPre);
      linear_backward(dx.data(), {dw.data(), bias ? db.data() : nullptr}, G.data(), x.data(), params(), s);
      auto gx = minus_pre(dx), gw = minus_pre(dw), gb = minus_pre(db);
      check_grad("linear dx", x.data(), gx.data(), gx.size(), loss, 1e-6, c.max_entries);
      check_grad("linear dw", w.data(), gw.data(), gw.size(), loss, 1e-6, c.max_entries);
      if (bias) {
        check_grad("linear db", b.data(), gb.data(), gb.size(), loss, 1e-6, c.max_entries);
      } else {
        for (double v : db) REQUIRE(v == kPre);  // db not passed: untouched
      }
    }
  }
}

TEST_CASE("linear: null gradient pointers are skipped; rows = 0 leaves grads unchanged",
          "[linear][grad]") {
  const ptrdiff_t R = 3, I = 5, O = 4;
  auto x = random_vec<double>(R * I, 1), w = random_vec<double>(O * I, 2), b = random_vec<double>(O, 3);
  auto dy = random_vec<double>(R * O, 4);
  std::vector<double> dw(O * I, kPre);
  linear_backward<double>(nullptr, {dw.data(), nullptr}, dy.data(), x.data(), {w.data(), b.data()},
                          {R, I, O});
  auto ref = linear_ref(x, w, &b, dy, R, I, O);
  auto gw = minus_pre(dw);
  require_close("dw only", gw.data(), ref.dw.data(), gw.size(), 1e-12, 1e-12);

  std::vector<double> dw0(O * I, kPre), db0(O, kPre);
  std::vector<double> y0(1);
  linear_forward<double>(y0.data(), x.data(), {w.data(), b.data()}, {0, I, O});
  linear_backward<double>(nullptr, {dw0.data(), db0.data()}, dy.data(), x.data(), {w.data(), b.data()},
                          {0, I, O});
  for (double v : dw0) REQUIRE(v == kPre);
  for (double v : db0) REQUIRE(v == kPre);
  REQUIRE_THROWS_AS(linear_forward<double>(y0.data(), x.data(), {w.data(), nullptr}, {1, 0, O}),
                    ShapeError);
}

TEST_CASE("linear: float kernels vs naive double reference", "[linear][ref]") {
  const ptrdiff_t sizes[] = {1, 7, 15, 16, 17, 32, 48, 50, 191, 192, 768};
  struct Case { ptrdiff_t R, I, O; };
  std::vector<Case> cases;
  for (ptrdiff_t d : sizes) {
    cases.push_back({7, d, 17});   // sweep the reduction dim (forward) / dx columns
    cases.push_back({17, 16, d});  // sweep the output dim
    cases.push_back({d, 33, 15});  // sweep rows (the dW/db reduction dim)
  }
  cases.push_back({50, 192, 768});
  cases.push_back({50, 768, 192});
  BackendGuard guard;
  for (GemmBackend be : {GemmBackend::packed, GemmBackend::eigen}) {
    set_gemm_backend(be);
    std::uint64_t seed = 100;
    for (const auto& c : cases) {
      CAPTURE(be == GemmBackend::packed ? "packed" : "eigen", c.R, c.I, c.O);
      const ptrdiff_t R = c.R, I = c.I, O = c.O;
      auto x = random_vec<float>(R * I, ++seed), w = random_vec<float>(O * I, ++seed);
      auto b = random_vec<float>(O, ++seed), dy = random_vec<float>(R * O, ++seed);
      auto ref = linear_ref(x, w, &b, dy, R, I, O);
      std::vector<float> y(R * O), dx(R * I, float(kPre)), dw(O * I, float(kPre)), db(O, float(kPre));
      linear_forward(y.data(), x.data(), {w.data(), b.data()}, {R, I, O});
      linear_backward(dx.data(), {dw.data(), db.data()}, dy.data(), x.data(), {w.data(), b.data()}, {R, I, O});
      // Float dot products of length K with entries in [-1, 1]: absolute error ~ K * 2^-24 worst case.
      auto tol = [](ptrdiff_t K) { return 2e-7 * double(K) + 1e-6; };
      require_close("linear y", y.data(), ref.y.data(), y.size(), 1e-5, tol(I));
      auto gx = minus_pre(dx), gw = minus_pre(dw), gb = minus_pre(db);
      require_close("linear dx", gx.data(), ref.dx.data(), gx.size(), 1e-5, tol(O));
      require_close("linear dw", gw.data(), ref.dw.data(), gw.size(), 1e-5, tol(R));
      require_close("linear db", gb.data(), ref.db.data(), gb.size(), 1e-5, tol(R));
    }
  }
}

TEST_CASE("linear: backward with 2 threads is bitwise reproducible", "[linear][determinism]") {
  ThreadGuard guard;
  BackendGuard backend_guard;
  set_num_threads(2);
  for (GemmBackend be : {GemmBackend::packed, GemmBackend::eigen}) {
    set_gemm_backend(be);
    CAPTURE(be == GemmBackend::packed ? "packed" : "eigen");
    const ptrdiff_t R = 400, I = 192, O = 384;
    auto x = random_vec<float>(R * I, 7), w = random_vec<float>(O * I, 8), b = random_vec<float>(O, 9);
    auto dy = random_vec<float>(R * O, 10);
    auto run = [&] {
      std::vector<float> dx(R * I, 0.f), dw(O * I, 0.f), db(O, 0.f);
      linear_backward(dx.data(), {dw.data(), db.data()}, dy.data(), x.data(), {w.data(), b.data()}, {R, I, O});
      std::vector<float> all(dx);
      all.insert(all.end(), dw.begin(), dw.end());
      all.insert(all.end(), db.begin(), db.end());
      return all;
    };
    auto a = run(), c = run();
    REQUIRE(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) == 0);
  }
}
