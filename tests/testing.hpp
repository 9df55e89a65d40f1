// tests/testing.hpp — shared helpers for envit's tests: seeded random fills, finite-difference
// gradient checks in double, and float-vs-double reference comparisons with a hybrid tolerance.
#pragma once
#include <catch2/catch.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "envit/core/rng.hpp"

namespace envit::testing {

// Uniform values in [lo, hi) from a seeded counter RNG.
template <class T>
void fill_uniform(T* x, std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  CounterRng r(seed, RngStream::init, 0x7E57);
  for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<T>(lo + (hi - lo) * r.uniform());
}
template <class T>
std::vector<T> random_vec(std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::vector<T> v(n);
  fill_uniform(v.data(), n, seed, lo, hi);
  return v;
}

// Relative error used by every gradient check: |a - b| / max(|a| + |b|, floor).
// Central differences in double with eps = 1e-6 on an O(1) loss carry about 1e-10 of rounding
// noise (1e-16 * |loss| / eps); the floor (1e-3) keeps entries whose true gradient is ~0 from
// failing on that noise while every gradient above 1e-3 is held to the relative tolerance.
inline double rel_err(double a, double b, double floor = 1e-3) {
  return std::abs(a - b) / std::max(std::abs(a) + std::abs(b), floor);
}

// Central-difference check of the analytic gradient `g` (n entries) of the scalar `loss()`
// with respect to the n values at `x` (perturbed in place and restored).
// Checks every entry when n <= max_entries, otherwise a seeded random subset of max_entries.
template <class F>
void check_grad(const std::string& what, double* x, const double* g, std::size_t n, F&& loss,
                double tol = 1e-6, std::size_t max_entries = 256, double eps = 1e-6,
                std::uint64_t seed = 1) {
  std::vector<std::size_t> idx;
  if (n <= max_entries) {
    for (std::size_t i = 0; i < n; ++i) idx.push_back(i);
  } else {
    CounterRng r(seed, RngStream::init, 0x6C);
    for (std::size_t k = 0; k < max_entries; ++k) idx.push_back(r.below(static_cast<std::uint32_t>(n)));
  }
  double worst = 0;
  std::size_t worst_i = 0;
  double worst_a = 0, worst_n = 0;
  for (std::size_t i : idx) {
    double keep = x[i];
    x[i] = keep + eps;
    double lp = loss();
    x[i] = keep - eps;
    double lm = loss();
    x[i] = keep;
    double num = (lp - lm) / (2 * eps);
    double e = rel_err(g[i], num);
    if (e > worst) { worst = e; worst_i = i; worst_a = g[i]; worst_n = num; }
  }
  INFO(what << ": worst rel err " << worst << " at index " << worst_i << " analytic " << worst_a
            << " numeric " << worst_n << " (checked " << idx.size() << " of " << n << ")");
  CHECK(worst < tol);
}

// Float result vs double reference: |got - ref| <= abs_tol || |got - ref| <= rel_tol * |ref|.
template <class A, class B>
void require_close(const std::string& what, const A* got, const B* ref, std::size_t n,
                   double rel_tol = 1e-5, double abs_tol = 1e-6) {
  std::size_t bad = 0, first = n;
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double d = std::abs(double(got[i]) - double(ref[i]));
    bool ok = d <= abs_tol || d <= rel_tol * std::abs(double(ref[i]));
    if (!ok) { if (first == n) first = i; ++bad; }
    if (!(d <= worst)) worst = d;  // also catches NaN
  }
  INFO(what << ": " << bad << " of " << n << " entries out of tolerance (rel " << rel_tol
            << ", abs " << abs_tol << "), largest abs diff " << worst
            << (first < n ? ", first at index " + std::to_string(first) + " got " +
                                std::to_string(double(got[first])) + " ref " +
                                std::to_string(double(ref[first]))
                          : std::string()));
  CHECK(bad == 0);
}


// ---- helpers shared by the op tests ------------------------------------------------------------

// Known value pre-filled into accumulated (+=) gradients, so a test sees both that the op adds
// and what it adds: compare minus_pre(g) with the reference.
constexpr double kPre = 0.25;
template <class T>
std::vector<T> minus_pre(const std::vector<T>& g, double pre = kPre) {
  std::vector<T> out(g);
  for (auto& v : out) v -= T(pre);
  return out;
}

// Finite-difference step for the nonlinear ops. A perturbation changes k outputs of size ~|y|,
// each carrying a few ulp of non-smooth rounding (exp, erf, log, sqrt), so the numeric derivative
// has noise ~ sqrt(k) * ulp(|y|) / h: at h = 1e-6 that reaches 2e-6 relative on LayerNorm entries
// with gradients ~1e-3. h = 1e-5 cuts the noise tenfold while the O(h^2 f''') truncation stays
// ~1e-11 for these smooth inputs. (Linear maps are exact in h and keep check_grad's 1e-6.)
constexpr double kStep = 1e-5;

// The scalar loss <a, b> of a gradient check, accumulated in long double.
inline long double dot_ld(const std::vector<double>& a, const std::vector<double>& b) {
  long double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += static_cast<long double>(a[i]) * b[i];
  return s;
}

// Wraps a long-double loss so that check_grad sees L(x) - L(x0). Returning L itself as a double
// rounds it to ulp(|L|) (1.4e-14 for |L| ~ 100), i.e. ~1e-8 of finite-difference noise at
// h = 1e-6 — more than the gradients of many entries times the 1e-6 tolerance. The difference
// is rounded relative to the change a perturbation makes instead.
template <class F>
auto centred(F f) {
  const long double base = f();
  return [f, base]() { return static_cast<double>(f() - base); };
}

template <class T>
void require_finite(const char* what, const std::vector<T>& v) {
  std::size_t bad = 0;
  for (T x : v) bad += !std::isfinite(x);
  INFO(what << ": " << bad << " non-finite entries");
  REQUIRE(bad == 0);
}

// Logits near +100 and -100: rows alternate all-near-+100, all-near--100, and mixed.
template <class T>
std::vector<T> extreme_logits(std::ptrdiff_t R, std::ptrdiff_t C, std::uint64_t seed) {
  auto v = random_vec<T>(std::size_t(R * C), seed, -0.5, 0.5);
  for (std::ptrdiff_t r = 0; r < R; ++r)
    for (std::ptrdiff_t c = 0; c < C; ++c)
      v[r * C + c] += r % 3 == 0 ? T(100) : r % 3 == 1 ? T(-100) : ((c * 7 + r) % 2 ? T(100) : T(-100));
  return v;
}

// The same values in another scalar type (a double test vector as float, for float-vs-double checks).
template <class T>
std::vector<T> cast_vec(const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); }

// Naive double log-softmax of x * scale for one row of C values, max-subtracted.
template <class T>
std::vector<double> log_softmax_row(const T* x, std::ptrdiff_t C, double scale) {
  double m = -INFINITY;
  for (std::ptrdiff_t c = 0; c < C; ++c) m = std::max(m, scale * double(x[c]));
  double s = 0;
  for (std::ptrdiff_t c = 0; c < C; ++c) s += std::exp(scale * double(x[c]) - m);
  std::vector<double> out(C);
  for (std::ptrdiff_t c = 0; c < C; ++c) out[c] = scale * double(x[c]) - m - std::log(s);
  return out;
}

// Restores the OpenMP thread count on scope exit.
struct ThreadGuard {
  int saved = omp_get_max_threads();
  ~ThreadGuard() { omp_set_num_threads(saved); }
};

}  // namespace envit::testing
