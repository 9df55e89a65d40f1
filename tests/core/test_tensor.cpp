// Tests for core/tensor.hpp: aligned buffers.
#include <catch2/catch.hpp>

#include <cstdint>

#include "envit/core/tensor.hpp"

using namespace envit;

TEST_CASE("aligned_buffer: 64-byte aligned and zeroed", "[core]") {
  for (std::size_t n : {std::size_t(1), std::size_t(15), std::size_t(105), std::size_t(4097)}) {
    auto b = aligned_buffer<float>(n);
    CHECK(reinterpret_cast<std::uintptr_t>(b.get()) % kAlign == 0);
    for (std::size_t i = 0; i < n; ++i) REQUIRE(b[i] == 0.0f);
  }
}
