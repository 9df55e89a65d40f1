// Tests for ops/channel_kl.hpp (LGViT's heterogeneous distillation): value against a naive KL,
// gradient in double, float against double.
#include <vector>

#include "envit/ops/channel_kl.hpp"
#include "testing.hpp"

using namespace envit;
using namespace envit::testing;
using std::ptrdiff_t;
using std::size_t;

TEST_CASE("channel_kl: value vs naive KL, gradient in double, float vs double", "[channel_kl][grad][ref]") {
  for (auto [R, D] : {std::pair<ptrdiff_t, ptrdiff_t>{1, 2}, {10, 7}, {49, 33}}) {
    CAPTURE(R, D);
    auto s = random_vec<double>(size_t(R * D), 21 + R, -3.0, 3.0), t = random_vec<double>(size_t(R * D), 22 + R, -3.0, 3.0);
    std::vector<double> q(s.size()), tl(s.size());
    const double scale = 0.5;
    auto run = [&] { return channel_kl_forward<double>({q.data(), tl.data()}, s.data(), t.data(), {R, D}, scale); };
    double v = run();
    double ref = 0;
    for (ptrdiff_t r = 0; r < R; ++r) {
      double ms = -1e300, mt = -1e300, zs = 0, zt = 0;
      for (ptrdiff_t d = 0; d < D; ++d) { ms = std::max(ms, s[r * D + d]); mt = std::max(mt, t[r * D + d]); }
      for (ptrdiff_t d = 0; d < D; ++d) { zs += std::exp(s[r * D + d] - ms); zt += std::exp(t[r * D + d] - mt); }
      for (ptrdiff_t d = 0; d < D; ++d) {
        double lp = t[r * D + d] - mt - std::log(zt), lq = s[r * D + d] - ms - std::log(zs);
        ref += std::exp(lp) * (lp - lq);
      }
    }
    CHECK(std::abs(v - scale * ref) < 1e-12);
    std::vector<double> ds(s.size(), kPre);
    channel_kl_backward<double>(ds.data(), {q.data(), tl.data()}, {R, D}, scale);
    auto gs = minus_pre(ds);
    check_grad("channel_kl ds", s.data(), gs.data(), gs.size(), [&] { return double(run()); }, 1e-6, 256, kStep);
    auto sf = cast_vec<float>(s), tf = cast_vec<float>(t);
    std::vector<float> qf(s.size()), tlf(s.size()), dsf(s.size(), 0);
    float vf = channel_kl_forward<float>({qf.data(), tlf.data()}, sf.data(), tf.data(), {R, D}, float(scale));
    CHECK(std::abs(vf - v) <= 1e-5 * std::abs(v) + 1e-6);
    channel_kl_backward<float>(dsf.data(), {qf.data(), tlf.data()}, {R, D}, float(scale));
    require_close("channel_kl ds float", dsf.data(), gs.data(), gs.size(), 1e-5, 1e-6);
  }
}
