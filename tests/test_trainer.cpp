// The training loop as a library object: checkpoint round trip, exact resume, --init matching,
// non-finite loss handling, and a short real training run that must beat chance by a wide margin.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "skip.hpp"
#include "envit/data/idx.hpp"
#include "envit/train/trainer.hpp"

using namespace envit;

namespace {

// A learnable synthetic set: class k draws a bright square at position k on a dark 8x8 image.
Dataset synthetic(int n, int classes, std::uint64_t seed) {
  Dataset d;
  d.name = "synthetic";
  d.n = n; d.c = 1; d.h = 8; d.w = 8; d.classes = classes;
  d.images.resize(std::size_t(n) * 64);
  d.labels.resize(std::size_t(n));
  CounterRng r(seed, RngStream::init, 1);
  for (int i = 0; i < n; ++i) {
    int k = int(r.below(std::uint32_t(classes)));
    d.labels[i] = k;
    for (int p = 0; p < 64; ++p) d.images[std::size_t(i) * 64 + p] = std::uint8_t(r.below(40));
    int y = (k / 3) * 3, x = (k % 3) * 3;
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) d.images[std::size_t(i) * 64 + (y + dy) * 8 + x + dx] = 220;
  }
  return d;
}

VitConfig small_cfg(int classes) {
  VitConfig c;
  c.image_size = 8; c.channels = 1; c.patch = 4; c.dim = 16; c.depth = 4; c.heads = 2; c.mlp_hidden = 32;
  c.classes = classes; c.exits = {2, 4};
  return c;
}

TrainOptions small_opts() {
  TrainOptions o;
  o.batch = 16; o.epochs = 3; o.lr = 3e-3; o.warmup_steps = 5; o.seed = 42;
  o.obj.scheme = Scheme::envit; o.obj.p_max = 0.5;
  o.aug.crop_pad = 1;
  return o;
}

std::vector<std::int64_t> iota_n(std::int64_t n) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("envit_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

// A synthetic 9-class set of n images, its channel statistics, and Trainers of small_cfg(9) on all
// of it (the Trainer reads `d`: the Fixture outlives them).
struct Fixture {
  Dataset d;
  ChannelStats st;
  Fixture(int n, std::uint64_t seed) : d(synthetic(n, 9, seed)), st(channel_stats(d)) {}
  Trainer trainer(const TrainOptions& o) const { return Trainer(small_cfg(9), o, d, iota_n(d.n), st); }
};

// Two runs' per-step losses are bitwise equal.
void require_same_losses(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("step " << i);
    CHECK(a[i] == b[i]);
  }
}

}  // namespace

TEST_CASE("a resumed run reproduces the uninterrupted run bit for bit", "[trainer][e2e]") {
  Fixture fx(200, 1);
  TrainOptions o = small_opts();
  Trainer a = fx.trainer(o);
  std::vector<double> losses_a;
  while (!a.done()) losses_a.push_back(a.step_once().loss);
  REQUIRE(a.step() == 36);  // 200/16 = 12 steps per epoch, 3 epochs

  Trainer b = fx.trainer(o);
  std::vector<double> losses_b;
  for (int i = 0; i < 17; ++i) losses_b.push_back(b.step_once().loss);  // stop mid-epoch
  const std::string path = tmp_path("resume.safetensors");
  b.save(path);
  Trainer c = fx.trainer(o);
  c.restore(safetensors_read(path));
  CHECK(c.step() == 17);
  while (!c.done()) losses_b.push_back(c.step_once().loss);
  require_same_losses(losses_a, losses_b);
  CHECK(std::memcmp(a.params().values(), c.params().values(), a.params().size() * sizeof(float)) == 0);
  CHECK(std::memcmp(a.optimizer().m.data(), c.optimizer().m.data(), a.params().size() * sizeof(float)) == 0);
  std::remove(path.c_str());
}

TEST_CASE("checkpoint round trip is bit-exact and resume refuses different options", "[trainer][io]") {
  Fixture fx(64, 2);
  TrainOptions o = small_opts();
  Trainer a = fx.trainer(o);
  a.step_once();
  a.step_once();
  const std::string path = tmp_path("rt.safetensors");
  a.save(path);
  StFile f = safetensors_read(path);
  CHECK(checkpoint_config(f).str() == small_cfg(9).str());
  CHECK(f.meta("train.step") == "2");
  ViTParams<float> P(small_cfg(9));
  AdamWState<float> s(P.size());
  checkpoint_restore(f, P, s);
  CHECK(std::memcmp(P.values(), a.params().values(), P.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(s.v.data(), a.optimizer().v.data(), P.size() * sizeof(float)) == 0);
  CHECK(s.step == 2);

  TrainOptions o2 = o;
  o2.obj.p_max = 0.4;
  Trainer b = fx.trainer(o2);
  try {
    b.restore(f);
    FAIL("restore accepted a different p_max");
  } catch (const IoError& e) {
    CHECK_THAT(e.what(), Catch::Contains("train.p_max"));
  }
  ViTParams<float> other(small_cfg(10));  // a different class count
  AdamWState<float> s2(other.size());
  CHECK_THROWS_WITH(checkpoint_restore(f, other, s2), Catch::Contains("config"));
  std::remove(path.c_str());
}

TEST_CASE("load_weights (for --init) lists missing, unexpected and mis-shaped tensors; new heads only on request", "[trainer][io]") {
  ViTParams<float> src(small_cfg(9));
  src.init(5);
  StFile f = checkpoint_build<float>(src, nullptr, {});
  ViTParams<float> same(small_cfg(9));
  WeightMatch w = load_weights(f, same, false);
  CHECK(w.clean());
  CHECK(std::memcmp(same.values(), src.values(), src.size() * sizeof(float)) == 0);

  ViTParams<float> more_classes(small_cfg(5));
  try {
    load_weights(f, more_classes, false);
    FAIL("mis-shaped heads were accepted");
  } catch (const IoError& e) {
    CHECK_THAT(e.what(), Catch::Contains("head.weight: file F32 [9, 16], model [5, 16]"));
    CHECK_THAT(e.what(), Catch::Contains("allow_new_heads"));
  }
  more_classes.init(1);
  std::vector<float> fresh_head(more_classes.value("head.weight"), more_classes.value("head.weight") + 5 * 16);
  WeightMatch w2 = load_weights(f, more_classes, true);
  CHECK(w2.mismatched.size() == 4);  // head.weight/bias and exits.0.head.weight/bias
  CHECK(std::memcmp(more_classes.value("head.weight"), fresh_head.data(), fresh_head.size() * 4) == 0);
  CHECK(std::memcmp(more_classes.value("blocks.1.mlp.fc1.weight"), src.value("blocks.1.mlp.fc1.weight"), 32 * 16 * 4) == 0);

  StFile g = f;
  g.tensors.erase(g.tensors.begin() + 5);  // drop a block tensor: never allowed
  g.add<float>("blocks.9.extra", src.values(), {2});
  ViTParams<float> P(small_cfg(9));
  try {
    load_weights(g, P, true);
    FAIL("missing tensor accepted");
  } catch (const IoError& e) {
    CHECK_THAT(e.what(), Catch::Contains("missing in file"));
    CHECK_THAT(e.what(), Catch::Contains("blocks.9.extra [2]"));
  }
}

TEST_CASE("a non-finite loss stops training with a clear error and leaves parameters untouched", "[trainer]") {
  Fixture fx(64, 3);
  TrainOptions o = small_opts();
  Trainer a = fx.trainer(o);
  a.step_once();
  a.params().value("head.bias")[0] = std::numeric_limits<float>::infinity();
  std::vector<float> before(a.params().values(), a.params().values() + a.params().size());
  CHECK_THROWS_AS(a.step_once(), NonFiniteError);
  CHECK(std::memcmp(before.data(), a.params().values(), before.size() * 4) == 0);
  CHECK(a.step() == 1);
}

TEST_CASE("short EnViT training on real Fashion-MNIST beats chance by a wide margin", "[trainer][e2e]") {
  Dataset train, test;
  try {
    train = fashion_mnist_load(kFashionMnistDir, true);
    test = fashion_mnist_load(kFashionMnistDir, false);
  } catch (const IoError& e) {
    ENVIT_SKIP("Fashion-MNIST not installed: " << e.what());
  }
  VitConfig cfg;
  cfg.image_size = 28; cfg.channels = 1; cfg.patch = 7; cfg.dim = 32; cfg.depth = 4; cfg.heads = 2;
  cfg.mlp_hidden = 64; cfg.classes = 10; cfg.exits = {2, 4};
  TrainOptions o;
  o.batch = 64; o.epochs = 1; o.lr = 2e-3; o.warmup_steps = 20; o.seed = 1;
  Trainer t(cfg, o, train, iota_n(9600), channel_stats(train));
  while (!t.done()) t.step_once();
  std::int64_t n = 0;
  std::vector<std::int64_t> idx = iota_n(2000);
  auto ok = evaluate_exits(t.params(), test, idx, Normalizer(channel_stats(train)), 250, &n);
  REQUIRE(n == 2000);
  INFO("exit accuracies " << ok[0] / 20.0 << "% " << ok[1] / 20.0 << "%");
  CHECK(ok[1] > 900);  // > 45% after 150 steps of 64 (chance: 10%; this run: ~54%)
  CHECK(ok[0] > 800);  // > 40% at the first exit
}

TEST_CASE("cosee: thresholds from the previous epoch's signal range; resume is exact across epochs", "[trainer][e2e]") {
  Fixture fx(200, 3);
  TrainOptions o = small_opts();
  o.obj.scheme = Scheme::cosee;
  o.obj.p_max = 0;
  Trainer a = fx.trainer(o);
  std::vector<double> losses_a;
  double lo1 = 1, hi1 = 0;  // epoch 1's signal range, collected from the steps
  while (!a.done()) {
    const std::int64_t e = a.epoch();
    const StepStats& s = a.step_once();
    losses_a.push_back(s.loss);
    REQUIRE(a.cosee_thresholds().size() == 5);
    const CoseeRange& r = a.cosee_range();
    if (e == 0) {
      CHECK(r.lo == 0.0);
      CHECK(r.hi == 1.0);
      lo1 = std::min(lo1, s.cosee.signal_min);
      hi1 = std::max(hi1, s.cosee.signal_max);
    } else if (e == 1) {
      CHECK(r.lo == lo1);
      CHECK(r.hi == hi1);
    }
    for (double t : a.cosee_thresholds()) {
      CHECK(t >= r.lo);
      CHECK(t <= r.hi);
    }
    CHECK(std::isfinite(s.cosee.cls));
    CHECK(s.cosee.calib >= 0);
  }
  CHECK(lo1 < hi1);
  CHECK(hi1 < 1.0);

  Trainer b = fx.trainer(o);
  std::vector<double> losses_b;
  for (int i = 0; i < 17; ++i) losses_b.push_back(b.step_once().loss);  // mid-epoch 2
  const std::string path = tmp_path("cosee.safetensors");
  b.save(path);
  Trainer c = fx.trainer(o);
  c.restore(safetensors_read(path));
  CHECK(c.cosee_range().lo == b.cosee_range().lo);
  CHECK(c.cosee_range().acc_hi == b.cosee_range().acc_hi);
  while (!c.done()) losses_b.push_back(c.step_once().loss);
  require_same_losses(losses_a, losses_b);
  CHECK(std::memcmp(a.params().values(), c.params().values(), a.params().size() * sizeof(float)) == 0);
  std::remove(path.c_str());
}

TEST_CASE("loss reduction `remaining` divides each exit's sums by its own sample count", "[trainer]") {
  Fixture fx(64, 4);
  TrainOptions o = small_opts();
  o.obj.scheme = Scheme::envit_sd;
  o.obj.p_max = 0.6;
  TrainOptions o2 = o;
  o2.obj.reduction = LossReduction::remaining;
  Trainer a = fx.trainer(o), b = fx.trainer(o2);
  const StepStats sa = a.step_once(), sb = b.step_once();  // same parameters, batch and masks
  const int B = o.batch;
  bool some_dropped = false;
  for (std::size_t j = 0; j < sa.ce.size(); ++j) {
    REQUIRE(sa.n[j] == sb.n[j]);
    some_dropped |= sa.n[j] < B;
    INFO("exit " << j << ": n " << sa.n[j] << ", ce batch " << sa.ce[j] << ", ce remaining " << sb.ce[j]);
    CHECK(sb.ce[j] * sa.n[j] == Approx(sa.ce[j] * B).epsilon(1e-6));
  }
  CHECK(some_dropped);
  Trainer c = fx.trainer(o);
  const std::string path = tmp_path("red.safetensors");
  b.save(path);
  CHECK_THROWS_WITH(c.restore(safetensors_read(path)), Catch::Contains("train.reduction"));
  std::remove(path.c_str());
}

TEST_CASE("clip mode weight-sum clips at clip * sum of exit weights; beem's weights sum to 1", "[trainer]") {
  Fixture fx(64, 5);
  TrainOptions o = small_opts();
  o.obj.scheme = Scheme::vit_ee;
  o.obj.p_max = 0;
  o.clip = 0.05;  // below the gradient norm: both runs clip
  o.clip_mode = ClipMode::weight_sum;
  TrainOptions o2 = o;
  o2.clip_mode = ClipMode::absolute;
  o2.clip = 0.05 * 2;  // M = 2 exits, vit-ee weights 1 each
  Trainer a = fx.trainer(o), b = fx.trainer(o2);
  CHECK(a.step_once().weight_sum == 2.0);
  b.step_once();
  CHECK(a.last_grad_norm() > 0.1);
  CHECK(std::memcmp(a.params().values(), b.params().values(), a.params().size() * sizeof(float)) == 0);
  TrainOptions ob = small_opts();
  ob.obj.scheme = Scheme::beem;
  ob.obj.p_max = 0;
  Trainer e = fx.trainer(ob);
  CHECK(e.step_once().weight_sum == Approx(1.0).epsilon(1e-15));
}

TEST_CASE("evaluate_exits (inference path) matches the training forward's logits and counts", "[trainer]") {
  Fixture fx(70, 11);
  TrainOptions o = small_opts();
  o.epochs = 1;
  Trainer t = fx.trainer(o);
  while (!t.done()) t.step_once();
  const ViTParams<float>& P = t.params();
  const VitConfig& cfg = P.config();
  const int M = cfg.num_exits(), C = cfg.classes, batch = 16;
  const Normalizer norm(fx.st);
  const std::vector<std::int64_t> idx = iota_n(fx.d.n);
  // Reference: the complete model through the training forward, chunk by chunk.
  ViTWorkspace<float> ws(cfg, batch);
  InferenceWorkspace<float> iws(cfg, batch);
  std::vector<float> images(std::size_t(batch) * 64), a(std::size_t(M) * batch * C), b(a.size());
  std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
  std::vector<float*> ptr(static_cast<std::size_t>(M));
  for (int j = 0; j < M; ++j) ptr[j] = a.data() + std::size_t(j) * batch * C;
  std::vector<std::int64_t> ref(static_cast<std::size_t>(M), 0);
  for (std::size_t s = 0; s < idx.size(); s += batch) {
    const int n = int(std::min<std::size_t>(batch, idx.size() - s));
    make_batch(images.data(), labels.data(), fx.d, idx.data() + s, n, norm, Augment{}, 0, 0);
    vit_forward_full<float>(ws, P, images.data(), n, ptr.data());
    infer_all_exits<float>(iws, P, images.data(), n, b.data(), std::ptrdiff_t(batch) * C);
    for (int j = 0; j < M; ++j)
      for (int i = 0; i < n; ++i) {
        const float* z = ptr[j] + std::size_t(i) * C;
        const float* y = b.data() + (std::size_t(j) * batch + i) * C;
        for (int c = 0; c < C; ++c) REQUIRE(z[c] == y[c]);
        ref[j] += int(std::max_element(z, z + C) - z) == labels[i];
      }
  }
  std::int64_t n = 0;
  CHECK(evaluate_exits(P, fx.d, idx, norm, batch, &n) == ref);
  CHECK(n == fx.d.n);
}

TEST_CASE("data-parallel shards: per-shard losses and gradients sum to the whole batch's", "[trainer][dist]") {
  // Without MPI: each Trainer's reduce hook records its (unreduced) gradients and loss at step 0.
  Fixture fx(200, 1);
  TrainOptions o = small_opts();
  o.batch = 15;  // uneven shards: 5 + 5 + 5 over 3 ranks, 7 + 8 over 2
  for (int world : {1, 2, 3}) {
    std::vector<std::vector<float>> grads;
    std::vector<double> losses;
    std::vector<int> seen;
    for (int r = 0; r < world; ++r) {
      Trainer t = fx.trainer(o);
      t.set_shard(r, world, [&](ViTParams<float>& P, StepStats& s) {
        grads.emplace_back(P.grads(), P.grads() + P.size());
        losses.push_back(s.loss);
        seen.push_back(s.n[1]);
      });
      CHECK(t.shard_end() - t.shard_begin() == (r + 1) * 15 / world - r * 15 / world);
      t.step_once();
    }
    static std::vector<float> whole;
    static double whole_loss = 0;
    static int whole_seen = 0;
    std::vector<float> sum(grads[0].size(), 0.f);
    double loss = 0;
    int n = 0;
    for (int r = 0; r < world; ++r) {
      for (std::size_t k = 0; k < sum.size(); ++k) sum[k] += grads[r][k];
      loss += losses[r];
      n += seen[r];
    }
    if (world == 1) {
      whole = sum, whole_loss = loss, whole_seen = n;
      continue;
    }
    INFO("world " << world);
    CHECK(n == whole_seen);  // the same samples execute the last block: masks keyed by global position
    CHECK(loss == Approx(whole_loss).epsilon(1e-6));
    double d2 = 0, w2 = 0;
    for (std::size_t k = 0; k < sum.size(); ++k) {
      d2 += double(sum[k] - whole[k]) * (sum[k] - whole[k]);
      w2 += double(whole[k]) * whole[k];
    }
    CHECK(std::sqrt(d2) <= 1e-5 * std::sqrt(w2));
  }
  Trainer t = fx.trainer(o);
  CHECK_THROWS_AS(t.set_shard(2, 2, {}), ValueError);
  CHECK_THROWS_AS(t.set_shard(0, 16, {}), ValueError);  // more ranks than samples per batch
}

// BF16 training (TrainOptions::precision): deterministic per seed, thread count and kernel set;
// resumed bit for bit; the checkpoint stays FP32 and records the precision; an FP32 checkpoint
// resumes in BF16 (and says so in its history); BF16 steps are not FP32 steps.
TEST_CASE("bf16 training: deterministic, exact resume, fp32 checkpoints resume in bf16", "[trainer][bf16]") {
  Fixture fx(200, 1);
  TrainOptions o = small_opts();
  o.precision = Precision::bf16;
  Trainer a = fx.trainer(o);
  std::vector<double> losses_a;
  while (!a.done()) losses_a.push_back(a.step_once().loss);
  CHECK(matmul_precision() == Precision::fp32);  // the steps restore the process-wide setting
  Trainer a2 = fx.trainer(o);  // the same run again
  std::vector<double> losses_a2;
  while (!a2.done()) losses_a2.push_back(a2.step_once().loss);
  require_same_losses(losses_a, losses_a2);
  CHECK(std::memcmp(a.params().values(), a2.params().values(), a.params().size() * sizeof(float)) == 0);

  Trainer b = fx.trainer(o);
  std::vector<double> losses_b;
  for (int i = 0; i < 17; ++i) losses_b.push_back(b.step_once().loss);
  const std::string path = tmp_path("bf16_resume.safetensors");
  b.save(path);
  StFile f = safetensors_read(path);
  CHECK(f.meta("train.precision") == "bf16");
  CHECK_FALSE(f.has_meta("train.precision_history"));
  CHECK(f.find("blocks.0.attn.qkv.weight")->dtype == "F32");
  Trainer c = fx.trainer(o);
  c.restore(f);
  while (!c.done()) losses_b.push_back(c.step_once().loss);
  require_same_losses(losses_a, losses_b);
  CHECK(std::memcmp(a.params().values(), c.params().values(), a.params().size() * sizeof(float)) == 0);
  CHECK(std::memcmp(a.optimizer().v.data(), c.optimizer().v.data(), a.params().size() * sizeof(float)) == 0);

  // The same run in FP32 takes other steps: BF16 really changes the arithmetic.
  TrainOptions o32 = small_opts();
  Trainer d = fx.trainer(o32);
  std::vector<double> losses_d;
  for (int i = 0; i < 17; ++i) losses_d.push_back(d.step_once().loss);
  CHECK(losses_d[0] != losses_a[0]);
  CHECK(std::memcmp(d.params().values(), b.params().values(), d.params().size() * sizeof(float)) != 0);
  d.save(path);
  StFile f32 = safetensors_read(path);
  CHECK(f32.meta("train.precision") == "fp32");

  // An FP32 checkpoint resumed in BF16: the run continues (same options otherwise), the steps from
  // 17 on are BF16 steps, and the history records both.
  Trainer e = fx.trainer(o);
  e.restore(f32);
  CHECK(e.step() == 17);
  double last = 0;
  while (!e.done()) last = e.step_once().loss;
  CHECK(std::isfinite(last));
  CHECK(e.metadata().at("train.precision") == "bf16");
  CHECK(e.metadata().at("train.precision_history") == "fp32:0,bf16:17");
  Trainer e32 = fx.trainer(o32);  // its FP32 continuation differs
  e32.restore(f32);
  while (!e32.done()) e32.step_once();
  CHECK(std::memcmp(e.params().values(), e32.params().values(), e.params().size() * sizeof(float)) != 0);
  // ... and back to FP32 from the mixed checkpoint: the history grows.
  e.save(path);
  Trainer g = fx.trainer(o32);
  g.restore(safetensors_read(path));
  CHECK(g.metadata().at("train.precision_history") == "fp32:0,bf16:17,fp32:36");
  // A malformed precision in a checkpoint is refused, naming the file and the key.
  StFile bad = safetensors_read(path);
  bad.metadata["train.precision"] = "fp16";
  Trainer h = fx.trainer(o32);
  CHECK_THROWS_WITH(h.restore(bad), Catch::Contains("train.precision") && Catch::Contains("fp16") &&
                                        Catch::Contains("expected fp32 or bf16"));
  std::remove(path.c_str());
}
