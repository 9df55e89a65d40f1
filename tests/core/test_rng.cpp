// Tests for core/rng.hpp: Philox4x32-10 and the counter RNG.
#include <catch2/catch.hpp>

#include "envit/core/rng.hpp"

using namespace envit;

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
