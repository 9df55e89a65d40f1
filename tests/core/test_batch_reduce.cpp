// Batch statistics under data parallelism without MPI: shards run in threads of one process and
// core/batch_reduce.hpp's hook sums over them through a barrier (ThreadGroup below, summing in
// shard order). BatchNorm on 2 and 3 row shards equals BatchNorm on the whole batch (double, to
// rounding); Trainer shards of lgvit (both stages), cosee, `remaining` and BYOT mmrazor sum to the
// whole batch's loss and gradient (float); a trainer refuses such options on shards without the hook.
#include <catch2/catch.hpp>

#include <barrier>
#include <cmath>
#include <functional>
#include <numeric>
#include <thread>
#include <vector>

#include "envit/core/batch_reduce.hpp"
#include "envit/core/rng.hpp"
#include "envit/ops/batchnorm.hpp"
#include "envit/train/trainer.hpp"

using namespace envit;

namespace {

// n members exchanging doubles through a barrier; each op combines the members' values in member
// order, so every member gets the same result.
class ThreadGroup {
 public:
  explicit ThreadGroup(int n) : bar_(n), slots_(std::size_t(n)) {}
  template <class T, class Op>
  void all(int rank, T* x, std::size_t k, Op op) {
    slots_[std::size_t(rank)].assign(x, x + k);
    bar_.arrive_and_wait();
    for (std::size_t i = 0; i < k; ++i) {
      double a = slots_[0][i];
      for (std::size_t r = 1; r < slots_.size(); ++r) a = op(a, slots_[r][i]);
      x[i] = T(a);
    }
    bar_.arrive_and_wait();
  }
  BatchReduce reduce(int rank) {
    return {[this, rank](double* x, int k) { all(rank, x, std::size_t(k), std::plus<double>()); },
            [this, rank](double* x, int k) { all(rank, x, std::size_t(k), [](double a, double b) { return std::max(a, b); }); }};
  }
  // The gradient and step-statistics sum (what examples/envit/dist.hpp does with MPI).
  GradReduce<float> grads(int rank) {
    return [this, rank](ViTParams<float>& P, StepStats& s) {
      all(rank, P.grads(), P.size(), std::plus<double>());
      all(rank, &s.loss, 1, std::plus<double>());
      for (auto* v : {&s.ce, &s.kl, &s.feat}) all(rank, v->data(), v->size(), std::plus<double>());
      for (auto* v : {&s.n, &s.correct}) all(rank, v->data(), v->size(), std::plus<double>());
    };
  }

 private:
  std::barrier<> bar_;
  std::vector<std::vector<double>> slots_;
};

template <class F>
void run_members(int n, F f) {
  std::vector<std::thread> t;
  for (int r = 0; r < n; ++r) t.emplace_back(f, r);
  for (auto& x : t) x.join();
}

double rel_l2(const float* a, const float* b, std::size_t n) {
  double d2 = 0, a2 = 0;
  for (std::size_t i = 0; i < n; ++i) {
    d2 += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    a2 += double(a[i]) * a[i];
  }
  return std::sqrt(d2) / std::max(std::sqrt(a2), 1e-30);
}

Dataset blobs(int n, int classes) {  // class k: a bright 4x4 square at a class-dependent place, noise
  Dataset d;
  d.name = "blobs";
  d.n = n, d.c = 1, d.h = 8, d.w = 8, d.classes = classes;
  d.images.assign(std::size_t(n) * 64, 0);
  d.labels.resize(std::size_t(n));
  for (int i = 0; i < n; ++i) {
    const int k = i % classes;
    d.labels[std::size_t(i)] = k;
    for (int p = 0; p < 64; ++p)
      d.images[std::size_t(i) * 64 + std::size_t(p)] =
          std::uint8_t(40 * uniform_at(7, RngStream::thresholds, std::uint32_t(i), std::uint32_t(p), 0));
    const int y0 = (k / 2) % 2 * 4, x0 = k % 2 * 4;
    for (int y = y0; y < y0 + 4; ++y)
      for (int x = x0; x < x0 + 4; ++x) d.images[std::size_t(i) * 64 + std::size_t(y * 8 + x)] = 200;
  }
  return d;
}

}  // namespace

TEST_CASE("BatchNorm on row shards with a BatchReduce equals BatchNorm on the whole batch", "[batch_reduce][ref]") {
  const std::ptrdiff_t R = 23, D = 5;
  std::vector<double> x(std::size_t(R * D)), dy(x.size()), gamma(static_cast<std::size_t>(D)),
      beta(static_cast<std::size_t>(D));
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = 3.0 + 2.0 * uniform_at(1, RngStream::thresholds, std::uint32_t(i), 0, 0);
    dy[i] = uniform_at(1, RngStream::thresholds, std::uint32_t(i), 1, 0) - 0.5;
  }
  for (std::ptrdiff_t d = 0; d < D; ++d) gamma[std::size_t(d)] = 0.5 + 0.1 * double(d), beta[std::size_t(d)] = 0.1 * double(d);
  const BatchNormParams<double> p{gamma.data(), beta.data(), nullptr, nullptr};
  struct Out { std::vector<double> y, dx, dg, db, mean, var, rstd; };
  auto run = [&](std::ptrdiff_t r0, std::ptrdiff_t r1, BatchNormGroup g) {
    const std::ptrdiff_t n = r1 - r0;
    Out o{std::vector<double>(std::size_t(n * D)), std::vector<double>(std::size_t(n * D), 0.0),
          std::vector<double>(std::size_t(D), 0.0), std::vector<double>(std::size_t(D), 0.0),
          std::vector<double>(std::size_t(D)), std::vector<double>(std::size_t(D)), std::vector<double>(std::size_t(D))};
    const BatchNormCache<double> c{o.mean.data(), o.var.data(), o.rstd.data()};
    batchnorm_forward<double>(o.y.data(), c, x.data() + r0 * D, p, {n, D}, 1e-5, BnMode::train, g);
    batchnorm_backward<double>(o.dx.data(), {o.dg.data(), o.db.data()}, dy.data() + r0 * D, x.data() + r0 * D, c, p,
                               {n, D}, BnMode::train, g);
    return o;
  };
  const Out whole = run(0, R, {});
  for (int world : {1, 2, 3}) {
    ThreadGroup grp(world);
    std::vector<Out> part(static_cast<std::size_t>(world));
    run_members(world, [&](int r) {
      set_num_threads(1);
      BatchReduce red = grp.reduce(r);
      std::vector<double> acc(std::size_t(2 * D + 1));
      part[std::size_t(r)] = run(R * r / world, R * (r + 1) / world, {&red, acc.data()});
    });
    INFO("shards " << world);
    std::vector<double> dg(static_cast<std::size_t>(D), 0.0), db(static_cast<std::size_t>(D), 0.0);
    for (int r = 0; r < world; ++r) {
      const Out& o = part[std::size_t(r)];
      const std::ptrdiff_t r0 = R * r / world;
      for (std::size_t i = 0; i < o.y.size(); ++i) {
        CHECK_THAT(o.y[i], Catch::Matchers::WithinAbs(whole.y[std::size_t(r0 * D) + i], 1e-12));
        CHECK_THAT(o.dx[i], Catch::Matchers::WithinAbs(whole.dx[std::size_t(r0 * D) + i], 1e-12));
      }
      for (std::ptrdiff_t d = 0; d < D; ++d) {
        CHECK_THAT(o.var[std::size_t(d)], Catch::Matchers::WithinRel(whole.var[std::size_t(d)], 1e-12));
        dg[std::size_t(d)] += o.dg[std::size_t(d)], db[std::size_t(d)] += o.db[std::size_t(d)];
      }
    }
    for (std::ptrdiff_t d = 0; d < D; ++d) {  // parameter gradients: the shards' parts sum to the whole's
      CHECK_THAT(dg[std::size_t(d)], Catch::Matchers::WithinAbs(whole.dg[std::size_t(d)], 1e-12));
      CHECK_THAT(db[std::size_t(d)], Catch::Matchers::WithinAbs(whole.db[std::size_t(d)], 1e-12));
    }
  }
  // Without the hook a shard normalises with its own statistics: a different result (the test can fail).
  const Out half = run(0, R / 2, {});
  CHECK(std::fabs(half.y[0] - whole.y[0]) > 1e-6);
}

TEST_CASE("trainer shards with batch statistics sum to the whole batch's loss and gradient", "[batch_reduce][trainer]") {
  set_num_threads(1);
  const Dataset d = blobs(96, 4);
  const ChannelStats st = channel_stats(d);
  std::vector<std::int64_t> idx(std::size_t(d.n));
  std::iota(idx.begin(), idx.end(), 0);
  struct Case { const char* name; Scheme scheme; LossReduction red; ByotVariant byot; double p_max; bool lgvit; };
  for (const Case c : {Case{"lgvit", Scheme::lgvit, LossReduction::batch, ByotVariant::released, 0.0, true},
                       Case{"cosee", Scheme::cosee, LossReduction::batch, ByotVariant::released, 0.0, false},
                       Case{"remaining", Scheme::envit, LossReduction::remaining, ByotVariant::released, 0.5, false},
                       Case{"mmrazor", Scheme::byot, LossReduction::batch, ByotVariant::mmrazor, 0.0, false}}) {
    VitConfig cfg;
    cfg.image_size = 8; cfg.channels = 1; cfg.patch = 2; cfg.dim = 16; cfg.depth = 4; cfg.heads = 2;
    cfg.mlp_hidden = 32; cfg.classes = 4; cfg.exits = {1, 2, 3, 4};
    if (c.lgvit) cfg.exit_head = "lgvit";
    TrainOptions o;
    o.batch = 12; o.epochs = 2; o.max_steps = 9; o.lr = 3e-3; o.warmup_steps = 0; o.seed = 5;
    o.obj.scheme = c.scheme; o.obj.reduction = c.red; o.obj.set_byot(c.byot); o.obj.p_max = c.p_max;
    o.obj.lgvit_stage1_frac = 0.5;  // steps 0-4 stage 1, 5-8 stage 2
    // The whole batch: gradients and losses of every step (steps_per_epoch 8: cosee's second
    // epoch uses the first's signal range).
    std::vector<std::vector<float>> g_whole;
    std::vector<double> l_whole;
    Trainer whole(cfg, o, d, idx, st);
    whole.set_shard(0, 1, [&](ViTParams<float>& P, StepStats& s) {
      g_whole.emplace_back(P.grads(), P.grads() + P.size());
      l_whole.push_back(s.loss);
    });
    while (!whole.done()) whole.step_once();
    for (int world : {2, 3}) {
      INFO(c.name << ", " << world << " shards");
      ThreadGroup grp(world);
      std::vector<std::vector<float>> g_shard;  // member 0's summed gradients
      std::vector<double> l_shard;
      std::vector<CoseeRange> range(static_cast<std::size_t>(world));
      run_members(world, [&](int r) {
        set_num_threads(1);
        Trainer t(cfg, o, d, idx, st);
        GradReduce<float> sum = grp.grads(r);
        t.set_shard(r, world, [&, r](ViTParams<float>& P, StepStats& s) {
          sum(P, s);
          if (r == 0) g_shard.emplace_back(P.grads(), P.grads() + P.size()), l_shard.push_back(s.loss);
        }, grp.reduce(r));
        while (!t.done()) t.step_once();
        range[std::size_t(r)] = t.cosee_range();
      });
      REQUIRE(g_shard.size() == g_whole.size());
      for (std::size_t k = 0; k < g_whole.size(); ++k) {
        INFO("step " << k);
        CHECK_THAT(l_shard[k], Catch::Matchers::WithinRel(l_whole[k], 1e-5));
        CHECK(rel_l2(g_whole[k].data(), g_shard[k].data(), g_whole[k].size()) < 1e-4);
      }
      for (const CoseeRange& q : range) {  // every shard holds the whole batch's signal range
        CHECK(q.lo == range[0].lo);
        CHECK(q.acc_hi == range[0].acc_hi);
        CHECK_THAT(q.acc_hi, Catch::Matchers::WithinRel(whole.cosee_range().acc_hi, 1e-5));
        CHECK_THAT(q.lo, Catch::Matchers::WithinRel(whole.cosee_range().lo, 1e-5));
      }
    }
    Trainer t(cfg, o, d, idx, st);
    CHECK_THROWS_AS(t.set_shard(0, 2, {}), ValueError);  // batch statistics need the hook
  }
}
