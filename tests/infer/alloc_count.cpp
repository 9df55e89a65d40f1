// Replacement global operator new/delete that count allocations while enabled (see alloc_count.hpp).
#include "infer/alloc_count.hpp"

#include <cstdlib>
#include <new>

namespace envit::testing::infer {
std::atomic<bool> count_allocs{false};
std::atomic<long> allocs{0};
}  // namespace envit::testing::infer

void* operator new(std::size_t n) {
  if (envit::testing::infer::count_allocs.load(std::memory_order_relaxed))
    envit::testing::infer::allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (envit::testing::infer::count_allocs.load(std::memory_order_relaxed))
    envit::testing::infer::allocs.fetch_add(1, std::memory_order_relaxed);
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
