// Core types: Tensor alignment and views, shape errors, Eigen interop, arenas, Philox, partitions.
#include <catch2/catch.hpp>

#include <cstdint>

#include "envit/core/arena.hpp"
#include "envit/core/parallel.hpp"
#include "envit/core/rng.hpp"
#include "envit/core/tensor.hpp"

using namespace envit;

TEST_CASE("Tensor: aligned, zeroed, row-major strides, deep copy", "[core]") {
  Tensor<float> t({3, 5, 7});
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  CHECK(t.numel() == 105);
  CHECK(t.stride(0) == 35);
  CHECK(t.stride(1) == 7);
  CHECK(t.stride(2) == 1);
  for (std::ptrdiff_t i = 0; i < t.numel(); ++i) REQUIRE(t[i] == 0.0f);
  t[4] = 2.5f;
  Tensor<float> u = t;
  u[4] = 1.0f;
  CHECK(t[4] == 2.5f);
  CHECK_THROWS_AS(Tensor<float>({1, 2, 3, 4, 5}), ShapeError);
  CHECK_THROWS_AS(Tensor<float>({2, -1}), ShapeError);
}

TEST_CASE("TensorView: row ranges, reshape, Eigen maps share memory", "[core]") {
  Tensor<double> t({4, 3});
  for (int i = 0; i < 12; ++i) t[i] = i;
  auto r = t.rows(1, 3);
  CHECK(r.shape == Shape{2, 3});
  CHECK(r.data[0] == 3.0);
  auto m = t.matrix();
  CHECK(m(2, 1) == 7.0);
  m(2, 1) = -1;
  CHECK(t[7] == -1.0);
  auto v = t.reshape({2, 6});
  CHECK(v.matrix()(1, 0) == 6.0);
  CHECK_THROWS_AS(t.rows(3, 5), ShapeError);
  try {
    t.reshape({5, 2});
    FAIL("reshape to a different size was accepted");
  } catch (const ShapeError& e) {
    CHECK_THAT(e.what(), Catch::Contains("(4, 3)") && Catch::Contains("(5, 2)"));
  }
}

TEST_CASE("check_shape names the operation and both shapes", "[core]") {
  CHECK_NOTHROW(check_shape("op", Shape{2, 3}, Shape{2, 3}));
  try {
    check_shape("linear_forward", Shape{2, 3}, Shape{3, 2});
    FAIL("mismatch accepted");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()) == "linear_forward: expected shape (2, 3), got (3, 2)");
  }
}

TEST_CASE("Arena: plan and carve give the same aligned slices; overflow is an error", "[core]") {
  ArenaPlan<float> plan;
  plan.take(3);
  plan.take(17);
  plan.take(1);
  CHECK(plan.total == 16 + 32 + 16);
  Arena<float> a(plan.total);
  float* p0 = a.take(3);
  float* p1 = a.take(17);
  float* p2 = a.take(1);
  CHECK(p1 - p0 == 16);
  CHECK(p2 - p1 == 32);
  CHECK(reinterpret_cast<std::uintptr_t>(p2) % 64 == 0);
  CHECK_THROWS_AS(a.take(1), ValueError);
  a.reset();
  CHECK(a.take(3) == p0);
}

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors", "[core][rng]") {
  // Random123 kat_vectors: philox4x32 10 rounds, counter 0, key 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8
  Philox4 r = philox4x32({0, 0, 0, 0}, 0);
  CHECK(r == Philox4{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  // counter ffffffff x4, key ffffffff x2 -> 408f276d 41c83b0e a20bc7c6 6d5451fd
  Philox4 s = philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, ~0ull);
  CHECK(s == Philox4{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  CounterRng a(7, RngStream::shuffle, 3), b(7, RngStream::shuffle, 3);
  for (int i = 0; i < 100; ++i) REQUIRE(a.next_u32() == b.next_u32());
  for (int i = 0; i < 1000; ++i) REQUIRE(a.below(10) < 10);
}

TEST_CASE("partition covers [0, n) with contiguous chunks differing by at most one", "[core]") {
  for (int parts : {1, 2, 3, 7})
    for (std::ptrdiff_t n : {0, 1, 5, 100}) {
      std::ptrdiff_t next = 0;
      for (int i = 0; i < parts; ++i) {
        auto [b, e] = partition(n, parts, i);
        REQUIRE(b == next);
        REQUIRE(e - b <= n / parts + 1);
        next = e;
      }
      REQUIRE(next == n);
    }
}
