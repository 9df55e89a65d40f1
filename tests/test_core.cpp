// Core types: aligned buffers, arenas, Philox, partitions.
#include <catch2/catch.hpp>

#include <cstdint>

#include "envit/core/arena.hpp"
#include "envit/core/parallel.hpp"
#include "envit/core/rng.hpp"
#include "envit/core/tensor.hpp"

using namespace envit;

TEST_CASE("aligned_buffer: 64-byte aligned and zeroed", "[core]") {
  for (std::size_t n : {std::size_t(1), std::size_t(15), std::size_t(105), std::size_t(4097)}) {
    auto b = aligned_buffer<float>(n);
    CHECK(reinterpret_cast<std::uintptr_t>(b.get()) % kAlign == 0);
    for (std::size_t i = 0; i < n; ++i) REQUIRE(b[i] == 0.0f);
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
