// Tests for core/arena.hpp: arenas planned, then carved.
#include <catch2/catch.hpp>

#include <cstdint>

#include "envit/core/arena.hpp"

using namespace envit;

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
