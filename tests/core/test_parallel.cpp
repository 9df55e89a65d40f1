// Tests for core/parallel.hpp: static row partitions.
#include <catch2/catch.hpp>

#include <cstddef>

#include "envit/core/parallel.hpp"

using namespace envit;

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
