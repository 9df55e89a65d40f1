// Tests of envit/data/dataset.hpp: channel statistics, normalisation, crop/flip on hand-made
// images, augmentation determinism (seed, epoch, index) and thread-count independence, make_batch
// without allocation, shuffles that are permutations, and validation splits.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <numeric>
#include <vector>

#include "envit/data/dataset.hpp"
#include "alloc_counter.hpp"

using namespace envit;
using Catch::Matchers::Contains;
using envit::testing::g_allocs;
using envit::testing::g_count_allocs;

namespace {

// n images of c x h x w with pixel (i, ch, y, x) = (i * 13 + ch * 50 + y * w + x) mod 256.
Dataset synthetic(std::int64_t n, int c, int h, int w, int classes = 10) {
  Dataset d;
  d.name = "synthetic";
  d.n = n, d.c = c, d.h = h, d.w = w, d.classes = classes;
  d.images.resize(static_cast<std::size_t>(n * c * h * w));
  d.labels.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    d.labels[i] = static_cast<std::int32_t>((i * 7) % classes);
    for (int ch = 0; ch < c; ++ch)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          d.images[((i * c + ch) * h + y) * w + x] = static_cast<std::uint8_t>((i * 13 + ch * 50 + y * w + x) % 256);
  }
  return d;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("channel statistics and normalisation", "[data]") {
  // Two 1x2 images, 2 channels: channel 0 = {0, 255, 255, 255}, channel 1 = constant 51.
  Dataset d;
  d.name = "tiny";
  d.n = 2, d.c = 2, d.h = 1, d.w = 2, d.classes = 2;
  d.images = {0, 255, 51, 51, 255, 255, 51, 51};
  d.labels = {0, 1};
  REQUIRE_NOTHROW(d.check());
  ChannelStats s = channel_stats(d);
  CHECK(s.mean[0] == Approx(0.75).epsilon(1e-12));
  CHECK(s.std[0] == Approx(std::sqrt(0.75 * 0.25)).epsilon(1e-12));
  CHECK(s.mean[1] == Approx(0.2).epsilon(1e-12));
  CHECK(s.std[1] == Approx(0.0).margin(1e-12));
  // Statistics over a subset (only image 1: channel 0 all 255).
  std::int64_t one = 1;
  ChannelStats s1 = channel_stats(d, &one, 1);
  CHECK(s1.mean[0] == 1.0);
  CHECK(s1.std[0] == 0.0);
  // A zero std cannot normalise.
  CHECK_THROWS_AS(Normalizer(s), ValueError);
  Normalizer nz({0.5, 0.25}, {0.5, 2.0});
  CHECK(nz(0, 0) == -1.0f);
  CHECK(nz(0, 255) == 1.0f);
  CHECK(nz(1, 51) == static_cast<float>((0.2 - 0.25) / 2.0));
  CHECK(Normalizer::identity(1)(0, 255) == 1.0f);
  // Bad datasets are caught by check().
  Dataset bad = d;
  bad.labels[1] = 2;
  CHECK_THROWS_AS(bad.check(), ValueError);
  bad = d;
  bad.images.pop_back();
  CHECK_THROWS_AS(bad.check(), ValueError);
}

TEST_CASE("crop with zero padding and flip on a hand-made image", "[data][augment]") {
  // One channel, 3 x 4 image with pixels 1..12, identity normalisation times 255 -> pixel values.
  const std::uint8_t img[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  Normalizer id(std::vector<double>{0.0}, std::vector<double>{1.0 / 255.0});  // value = pixel
  float out[12];
  auto run = [&](int pad, AugmentDraw d) {
    transform_image(out, img, 1, 3, 4, pad, d, id);
    return std::vector<float>(out, out + 12);
  };
  using V = std::vector<float>;
  CHECK(run(0, {0, 0, false}) == V{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  CHECK(run(1, {1, 1, false}) == V{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});  // centred window
  CHECK(run(1, {0, 0, false}) == V{0, 0, 0, 0, 0, 1, 2, 3, 0, 5, 6, 7});     // window at top-left
  CHECK(run(1, {2, 2, false}) == V{6, 7, 8, 0, 10, 11, 12, 0, 0, 0, 0, 0});  // bottom-right
  CHECK(run(1, {1, 2, false}) == V{2, 3, 4, 0, 6, 7, 8, 0, 10, 11, 12, 0});  // shifted left
  CHECK(run(0, {0, 0, true}) == V{4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9});   // pure flip
  // Crop then flip: the flipped version of the {1, 2} window above.
  CHECK(run(1, {1, 2, true}) == V{0, 4, 3, 2, 0, 8, 7, 6, 0, 12, 11, 10});
  CHECK(run(2, {0, 4, false}) == V{0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 0, 0});
  // Padding is black in pixel space: after normalisation it is (0 - mean) / std, not 0.
  Normalizer cn(std::vector<double>{0.5}, std::vector<double>{0.25});
  transform_image(out, img, 1, 3, 4, 1, {0, 0, false}, cn);
  CHECK(out[0] == -2.0f);
  CHECK(out[5] == cn(0, 1));
}

TEST_CASE("augmentation draws are pure, in range and roughly uniform", "[data][augment]") {
  Augment a{4, true};
  std::vector<int> dy_hist(9, 0), dx_hist(9, 0);
  int flips = 0;
  const int n = 9000;
  for (int i = 0; i < n; ++i) {
    AugmentDraw d = augment_draw(a, 123, 5, i);
    AugmentDraw e = augment_draw(a, 123, 5, i);
    REQUIRE(d.dy == e.dy);
    REQUIRE(d.dx == e.dx);
    REQUIRE(d.flip == e.flip);
    REQUIRE(d.dy >= 0);
    REQUIRE(d.dy <= 8);
    REQUIRE(d.dx >= 0);
    REQUIRE(d.dx <= 8);
    ++dy_hist[d.dy];
    ++dx_hist[d.dx];
    flips += d.flip;
  }
  for (int k = 0; k < 9; ++k) {
    INFO("offset " << k << ": dy count " << dy_hist[k] << ", dx count " << dx_hist[k] << " of ~1000");
    CHECK(std::abs(dy_hist[k] - 1000) < 150);
    CHECK(std::abs(dx_hist[k] - 1000) < 150);
  }
  CHECK(std::abs(flips - n / 2) < 300);
  // No flip unless asked, no offset without padding.
  for (int i = 0; i < 200; ++i) {
    AugmentDraw d = augment_draw(Augment{0, false}, 1, 0, i);
    CHECK(d.dy == 0);
    CHECK(d.dx == 0);
    CHECK(!d.flip);
  }
  // Index bits above 32 matter.
  int differ = 0;
  for (std::int64_t i = 0; i < 64; ++i) {
    AugmentDraw d = augment_draw(a, 9, 0, i), e = augment_draw(a, 9, 0, i + (std::int64_t{1} << 32));
    differ += d.dy != e.dy || d.dx != e.dx || d.flip != e.flip;
  }
  CHECK(differ > 32);
}

TEST_CASE("make_batch is deterministic in (seed, epoch, index) and thread-count independent", "[data][augment]") {
  const Dataset d = synthetic(300, 3, 16, 16);
  const Normalizer norm(channel_stats(d));
  const Augment aug{4, true};
  const int B = 256;
  std::vector<std::int64_t> idx(B);
  epoch_permutation(idx.data(), B, 77, 0);
  const std::size_t sz = static_cast<std::size_t>(d.image_size());
  std::vector<float> x1(B * sz), x2(B * sz), x3(B * sz), x4(B * sz);
  std::vector<std::int32_t> l1(B), l2(B);

  make_batch(x1.data(), l1.data(), d, idx.data(), B, norm, aug, 42, 3);
  make_batch(x2.data(), l2.data(), d, idx.data(), B, norm, aug, 42, 3);
  CHECK(same_bits(x1, x2));
  CHECK(l1 == l2);
  for (int b = 0; b < B; ++b) REQUIRE(l1[b] == d.labels[idx[b]]);

  make_batch(x3.data(), nullptr, d, idx.data(), B, norm, aug, 42, 4);  // next epoch
  CHECK(!same_bits(x1, x3));
  make_batch(x4.data(), nullptr, d, idx.data(), B, norm, aug, 43, 3);  // other seed
  CHECK(!same_bits(x1, x4));

  // Each sample equals the single-image transform with its own draw: the batch position and the
  // other samples do not matter.
  std::vector<float> one(sz);
  for (int b : {0, 1, 100, B - 1}) {
    transform_image(one.data(), d.image(idx[b]), d.c, d.h, d.w, aug.crop_pad, augment_draw(aug, 42, 3, idx[b]), norm);
    INFO("batch position " << b);
    CHECK(std::memcmp(one.data(), x1.data() + b * sz, sz * sizeof(float)) == 0);
  }
  std::vector<std::int64_t> rev(idx.rbegin(), idx.rend());
  make_batch(x2.data(), nullptr, d, rev.data(), B, norm, aug, 42, 3);
  for (int b = 0; b < B; ++b)
    REQUIRE(std::memcmp(x2.data() + (B - 1 - b) * sz, x1.data() + b * sz, sz * sizeof(float)) == 0);

  // Thread count does not change a single bit.
  const int saved = num_threads();
  set_num_threads(1);
  make_batch(x2.data(), nullptr, d, idx.data(), B, norm, aug, 42, 3);
  set_num_threads(std::max(2, saved));
  make_batch(x3.data(), nullptr, d, idx.data(), B, norm, aug, 42, 3);
  set_num_threads(saved);
  CHECK(same_bits(x1, x2));
  CHECK(same_bits(x1, x3));

  // Without augmentation the batch is the plain normalised images.
  make_batch(x2.data(), nullptr, d, idx.data(), B, norm, Augment{}, 42, 3);
  for (std::size_t k = 0; k < sz; ++k) {
    const int ch = static_cast<int>(k / (16 * 16));
    REQUIRE(x2[k] == norm(ch, d.image(idx[0])[k]));
  }
}

TEST_CASE("make_batch allocates nothing and validates its arguments", "[data]") {
  const Dataset d = synthetic(64, 3, 32, 32);
  const Normalizer norm(channel_stats(d));
  const int B = 64;
  std::vector<std::int64_t> idx(B);
  std::iota(idx.begin(), idx.end(), 0);
  std::vector<float> x(B * static_cast<std::size_t>(d.image_size()));
  std::vector<std::int32_t> l(B);
  make_batch(x.data(), l.data(), d, idx.data(), B, norm, Augment{4, true}, 1, 0);  // warm up threads
  g_allocs = 0;
  g_count_allocs = true;
  for (std::uint32_t e = 0; e < 3; ++e) make_batch(x.data(), l.data(), d, idx.data(), B, norm, Augment{4, true}, 1, e);
  g_count_allocs = false;
  CHECK(g_allocs.load() == 0);

  idx[5] = 64;
  CHECK_THROWS_WITH(make_batch(x.data(), l.data(), d, idx.data(), B, norm, Augment{}, 1, 0),
                    Contains("index 64 at batch position 5 is outside [0, 64)"));
  idx[5] = 5;
  CHECK_THROWS_AS(make_batch(x.data(), l.data(), d, idx.data(), B, Normalizer::identity(1), Augment{}, 1, 0), ValueError);
  CHECK_THROWS_AS(make_batch(x.data(), l.data(), d, idx.data(), B, norm, Augment{-1, false}, 1, 0), ValueError);
  CHECK_NOTHROW(make_batch(x.data(), l.data(), d, idx.data(), 0, norm, Augment{}, 1, 0));
}

TEST_CASE("shuffles are seeded permutations", "[data][shuffle]") {
  for (std::int64_t n : {0, 1, 2, 10, 1000}) {
    std::vector<std::int64_t> a(n), b(n), c(n);
    epoch_permutation(a.data(), n, 5, 0);
    epoch_permutation(b.data(), n, 5, 0);
    epoch_permutation(c.data(), n, 5, 1);
    CHECK(a == b);
    std::vector<std::int64_t> s = a;
    std::sort(s.begin(), s.end());
    std::vector<std::int64_t> iota(n);
    std::iota(iota.begin(), iota.end(), 0);
    CHECK(s == iota);
    if (n >= 10) CHECK(a != c);
    if (n >= 10) CHECK(a != iota);
  }
  // Shuffling arbitrary contents permutes them.
  std::vector<std::int64_t> v = {10, 20, 30, 40, 50, 60};
  shuffle_indices(v.data(), 6, 1, 2);
  std::sort(v.begin(), v.end());
  CHECK(v == std::vector<std::int64_t>{10, 20, 30, 40, 50, 60});
  // Every element lands in every position about equally often over epochs.
  std::vector<int> where0(5, 0);
  for (std::uint32_t e = 0; e < 2000; ++e) {
    std::int64_t p[5];
    epoch_permutation(p, 5, 9, e);
    ++where0[std::find(p, p + 5, 0) - p];
  }
  for (int k = 0; k < 5; ++k) {
    INFO("element 0 at position " << k << ": " << where0[k] << " of ~400");
    CHECK(std::abs(where0[k] - 400) < 80);
  }
}

TEST_CASE("validation splits are deterministic, disjoint and covering", "[data][split]") {
  const std::int64_t n = 1000;
  Split s = split_train_val(n, 100, 11);
  CHECK(s.val.size() == 100);
  CHECK(s.train.size() == 900);
  CHECK(std::is_sorted(s.val.begin(), s.val.end()));
  CHECK(std::is_sorted(s.train.begin(), s.train.end()));
  std::vector<std::int64_t> all;
  std::set_union(s.train.begin(), s.train.end(), s.val.begin(), s.val.end(), std::back_inserter(all));
  std::vector<std::int64_t> iota(n);
  std::iota(iota.begin(), iota.end(), 0);
  CHECK(all == iota);  // covering and (with the sizes) disjoint
  std::vector<std::int64_t> both;
  std::set_intersection(s.train.begin(), s.train.end(), s.val.begin(), s.val.end(), std::back_inserter(both));
  CHECK(both.empty());
  Split again = split_train_val(n, 100, 11);
  CHECK(again.val == s.val);
  CHECK(again.train == s.train);
  CHECK(split_train_val(n, 100, 12).val != s.val);
  // Not simply the first or last samples.
  CHECK(s.val.front() < 100);
  CHECK(s.val.back() > 900);
  CHECK(split_train_val(n, 0, 1).train.size() == 1000);
  CHECK(split_train_val(n, n, 1).val.size() == 1000);
  CHECK_THROWS_AS(split_train_val(n, n + 1, 1), ValueError);
  CHECK_THROWS_AS(split_train_val(n, -1, 1), ValueError);

  // A subset materialises the chosen samples.
  const Dataset d = synthetic(20, 1, 2, 2);
  std::vector<std::int64_t> pick = {3, 0, 19};
  Dataset sub = dataset_subset(d, pick.data(), 3);
  CHECK(sub.n == 3);
  CHECK(sub.labels[2] == d.labels[19]);
  CHECK(std::equal(sub.image(0), sub.image(0) + 4, d.image(3)));
  CHECK_NOTHROW(sub.check());
  pick[1] = 20;
  CHECK_THROWS_AS(dataset_subset(d, pick.data(), 3), ValueError);
}
