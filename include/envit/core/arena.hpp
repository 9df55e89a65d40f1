// envit/core/arena.hpp — one aligned block carved into views: plan sizes first, allocate once.
// Usage: an ArenaPlan records sizes (`reserve`), an Arena is built from the plan's total and
// hands out 64-byte-aligned slices in the same order (`take`). Nothing here frees or grows;
// a training step that only `take`s from arenas planned up front never allocates.
#pragma once
#include <cstddef>
#include <cstring>

#include "envit/core/error.hpp"
#include "envit/core/tensor.hpp"

namespace envit {

// Elements of T rounded up so every slice starts on a kAlign boundary.
template <class T>
constexpr std::size_t arena_round(std::size_t n) {
  constexpr std::size_t per = kAlign / sizeof(T);
  return (n + per - 1) / per * per;
}

// Counts elements; use the same sequence of calls for planning (ArenaPlan) and carving (Arena).
template <class T>
struct ArenaPlan {
  std::size_t total = 0;
  T* take(std::size_t n) {  // same signature as Arena::take, returns nullptr
    total += arena_round<T>(n);
    return nullptr;
  }
};

template <class T>
class Arena {
 public:
  Arena() = default;
  explicit Arena(std::size_t n) : cap_(n), buf_(aligned_buffer<T>(n)) {}
  // Next aligned slice of n elements (zeroed at construction, not on reuse).
  T* take(std::size_t n) {
    std::size_t r = arena_round<T>(n);
    ENVIT_CHECK(used_ + r <= cap_, ValueError, "Arena::take: need ", r, " more elements, ",
                cap_ - used_, " of ", cap_, " left (plan and carve sequences differ?)");
    T* p = buf_.get() + used_;
    used_ += r;
    return p;
  }
  void reset() { used_ = 0; }  // start carving again from the beginning
  void zero() { if (cap_) std::memset(buf_.get(), 0, cap_ * sizeof(T)); }
  T* data() { return buf_.get(); }
  const T* data() const { return buf_.get(); }
  std::size_t capacity() const { return cap_; }
  std::size_t used() const { return used_; }

 private:
  std::size_t cap_ = 0, used_ = 0;
  std::unique_ptr<T[], detail::AlignedFree> buf_;
};

}  // namespace envit
