// Tests for ops/exit_head.hpp (LayerNorm + Linear on the class token): gradients in double for
// the tokens (class-token rows only, with and without the extra feature gradient) and the four
// parameters, accumulate (+=) semantics, and float against the double forward and backward.
#include <cstdint>
#include <vector>

#include "envit/core/parallel.hpp"
#include "envit/ops/exit_head.hpp"
#include "testing.hpp"

using namespace envit;
using namespace envit::testing;
using std::ptrdiff_t;
using std::size_t;

namespace {

// Buffers for the cache and workspace, taken the way an arena hands them out.
template <class T>
struct VecArena {
  std::vector<std::vector<T>> bufs;
  T* take(ptrdiff_t n) {
    bufs.emplace_back(size_t(n), T(0));
    return bufs.back().data();
  }
};

// One exit head's tensors in T, from the same seeds for every T.
template <class T>
struct Head {
  ExitHeadShape s;
  std::vector<T> tokens, nw, nb, hw, hb, dlogits, extra;
  Head(ExitHeadShape sh, std::uint64_t seed)
      : s(sh),
        tokens(random_vec<T>(size_t(sh.rows * sh.tokens * sh.dim), seed, -2.0, 2.0)),
        nw(random_vec<T>(size_t(sh.dim), seed + 1, 0.5, 1.5)),
        nb(random_vec<T>(size_t(sh.dim), seed + 2)),
        hw(random_vec<T>(size_t(sh.classes * sh.dim), seed + 3)),
        hb(random_vec<T>(size_t(sh.classes), seed + 4)),
        dlogits(random_vec<T>(size_t(sh.rows * sh.classes), seed + 5)),
        extra(random_vec<T>(size_t(sh.rows * sh.dim), seed + 6)) {}
  ExitHeadParams<T> p() const { return {nw.data(), nb.data(), hw.data(), hb.data()}; }
};

// Forward and backward of one head with every gradient pre-filled with kPre.
template <class T>
struct Run {
  std::vector<T> logits, dtokens, dnw, dnb, dhw, dhb;
};
template <class T>
Run<T> run(const Head<T>& h, bool with_extra, T eps) {
  const ExitHeadShape s = h.s;
  VecArena<T> a;
  auto c = exit_head_cache_take<T>(a, s);
  auto w = exit_head_workspace_take<T>(a, s);
  Run<T> r{std::vector<T>(size_t(s.rows * s.classes)), std::vector<T>(h.tokens.size(), T(kPre)),
           std::vector<T>(h.nw.size(), T(kPre)), std::vector<T>(h.nb.size(), T(kPre)),
           std::vector<T>(h.hw.size(), T(kPre)), std::vector<T>(h.hb.size(), T(kPre))};
  exit_head_forward<T>(r.logits.data(), c, h.tokens.data(), h.p(), s, eps);
  exit_head_backward<T>(r.dtokens.data(), {r.dnw.data(), r.dnb.data(), r.dhw.data(), r.dhb.data()},
                        h.dlogits.data(), with_extra ? h.extra.data() : nullptr, c, h.p(), s, w);
  return r;
}

}  // namespace

TEST_CASE("exit_head: gradients in double, class-token rows only, extra gradient, accumulate",
          "[exit_head][grad]") {
  const ExitHeadShape shapes[] = {{1, 1, 1, 1}, {2, 3, 5, 4}, {3, 5, 17, 10}, {4, 2, 48, 7}};
  std::uint64_t seed = 900;
  for (const auto& s : shapes) {
    for (bool with_extra : {false, true}) {
      CAPTURE(s.rows, s.tokens, s.dim, s.classes, with_extra);
      Head<double> h(s, seed += 10);
      const double eps = 1e-6;
      // L = <logits, dlogits> (+ sum_r <x_cls[r], extra[r]>): its gradients are what backward gives.
      auto loss = centred([&] {
        VecArena<double> a;
        auto c = exit_head_cache_take<double>(a, s);
        std::vector<double> logits(size_t(s.rows * s.classes));
        exit_head_forward<double>(logits.data(), c, h.tokens.data(), h.p(), s, eps);
        long double l = dot_ld(logits, h.dlogits);
        if (with_extra)
          for (ptrdiff_t r = 0; r < s.rows; ++r)
            for (ptrdiff_t i = 0; i < s.dim; ++i)
              l += static_cast<long double>(h.tokens[size_t(r * s.tokens * s.dim + i)]) * h.extra[size_t(r * s.dim + i)];
        return l;
      });
      auto r = run(h, with_extra, eps);
      auto gt = minus_pre(r.dtokens);
      // Tokens other than the class token get nothing: exactly the pre-filled value stays.
      for (ptrdiff_t q = 0; q < s.rows; ++q)
        for (ptrdiff_t t = 1; t < s.tokens; ++t)
          for (ptrdiff_t i = 0; i < s.dim; ++i) REQUIRE(r.dtokens[size_t((q * s.tokens + t) * s.dim + i)] == kPre);
      check_grad("exit_head dtokens", h.tokens.data(), gt.data(), gt.size(), loss, 1e-6, 256, kStep);
      auto gnw = minus_pre(r.dnw), gnb = minus_pre(r.dnb), ghw = minus_pre(r.dhw), ghb = minus_pre(r.dhb);
      check_grad("exit_head dnorm_w", h.nw.data(), gnw.data(), gnw.size(), loss, 1e-6, 256, kStep);
      check_grad("exit_head dnorm_b", h.nb.data(), gnb.data(), gnb.size(), loss, 1e-6, 256, kStep);
      check_grad("exit_head dhead_w", h.hw.data(), ghw.data(), ghw.size(), loss, 1e-6, 256, kStep);
      check_grad("exit_head dhead_b", h.hb.data(), ghb.data(), ghb.size(), loss, 1e-6, 256, kStep);
    }
  }
}

TEST_CASE("exit_head: float forward and backward vs double", "[exit_head][ref]") {
  const ExitHeadShape shapes[] = {{1, 1, 1, 1}, {3, 5, 17, 10}, {8, 4, 192, 10}, {5, 2, 33, 100}};
  std::uint64_t seed = 950;
  for (const auto& s : shapes) {
    CAPTURE(s.rows, s.tokens, s.dim, s.classes);
    seed += 10;
    Head<double> hd(s, seed);
    Head<float> hf(s, seed);
    auto rd = run(hd, true, 1e-6);
    auto rf = run(hf, true, 1e-6f);
    require_close("exit_head logits", rf.logits.data(), rd.logits.data(), rd.logits.size(), 1e-4, 1e-5);
    require_close("exit_head dtokens", rf.dtokens.data(), rd.dtokens.data(), rd.dtokens.size(), 1e-4, 1e-5);
    require_close("exit_head dnorm_w", rf.dnw.data(), rd.dnw.data(), rd.dnw.size(), 1e-4, 1e-5);
    require_close("exit_head dnorm_b", rf.dnb.data(), rd.dnb.data(), rd.dnb.size(), 1e-4, 1e-5);
    require_close("exit_head dhead_w", rf.dhw.data(), rd.dhw.data(), rd.dhw.size(), 1e-4, 1e-5);
    require_close("exit_head dhead_b", rf.dhb.data(), rd.dhb.data(), rd.dhb.size(), 1e-4, 1e-5);
  }
}
