// Inputs found by fuzzing (tests/fuzz, docs/reliability.md) that once misbehaved, kept as tests.
// This executable replaces the global operator new to record the largest single request while
// `g_track` is set (the other replaceable forms route here, so allocation and release pair up).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

#include "envit/data/idx.hpp"
#include "io/io_util.hpp"

namespace {
std::atomic<bool> g_track{false};
std::atomic<std::size_t> g_largest{0};
}  // namespace

void* operator new(std::size_t n) {
  if (g_track.load(std::memory_order_relaxed) && n > g_largest.load(std::memory_order_relaxed))
    g_largest.store(n, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete[](void* p) noexcept { ::operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { ::operator delete(p); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return ::operator new(n, t); }
void operator delete(void* p, const std::nothrow_t&) noexcept { ::operator delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { ::operator delete(p); }

using namespace envit;

// fuzz_idx_gz ran at 17 executions/s: every short input whose header announced a large array made
// idx_read allocate a 16 MiB first chunk. The buffer now grows from 64 KiB.
TEST_CASE("fuzz regression: a 20-byte IDX file announcing 2^36 bytes allocates at most 64 KiB", "[fault][fuzz]") {
  envit::testing::TempDir t;
  const std::string p = t.file("lying");
  // Magic 0x00000803, dimensions 65536 x 65536 x 16 (2^36 bytes, under the 2^40 sanity limit), 4 data bytes.
  const std::string bytes = std::string{0, 0, 8, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 16} + std::string(4, '\x07');
  envit::testing::write_bytes(p, bytes);
  g_largest = 0;
  g_track = true;
  std::string m;
  try {
    idx_read(p);
  } catch (const IoError& e) {
    m = e.what();
  }
  g_track = false;
  CHECK_THAT(m, Catch::Contains("announce 68719476736 data bytes") && Catch::Contains("got 4"));
  CHECK(g_largest.load() <= (std::size_t{1} << 16));
}
