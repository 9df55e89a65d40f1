// envit/core/tensor.hpp — envit's storage primitive: zeroed, 64-byte aligned buffers (aligned_buffer),
// which the arenas (core/arena.hpp) and packed GEMM weights carve. There is no tensor class: ops take
// raw pointers with shape structs, and every buffer is a slice of an arena planned up front.
// Also the one place Eigen is first included (see below).
#pragma once
// GCC 12 reports its own AVX-512 intrinsics (avx512fintrin.h's `__m512 __Y = __Y;` in
// _mm512_undefined_ps, GCC bug 105593, fixed in GCC 13) as "may be used uninitialized" wherever
// Eigen's AVX-512 packet code is inlined: hundreds of false warnings per translation unit with
// -Wall and -march=x86-64-v4. The intrinsics headers are first included here (through Eigen), so
// silencing the two warnings for this include covers them and nothing of the user's code.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <Eigen/Core>
#pragma GCC diagnostic pop
#else
#include <Eigen/Core>
#endif
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

namespace envit {

inline constexpr std::size_t kAlign = 64;  // bytes; one cache line, one AVX-512 register

namespace detail {
struct AlignedFree {
  void operator()(void* p) const { ::operator delete(p, std::align_val_t(kAlign)); }
};
}  // namespace detail

// Aligned, zero-initialised storage for n elements of T (T trivially copyable).
template <class T>
std::unique_ptr<T[], detail::AlignedFree> aligned_buffer(std::size_t n) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::size_t bytes = std::max<std::size_t>(n * sizeof(T), kAlign);
  bytes = (bytes + kAlign - 1) / kAlign * kAlign;
  void* p = ::operator new(bytes, std::align_val_t(kAlign));
  std::memset(p, 0, bytes);
  return std::unique_ptr<T[], detail::AlignedFree>(static_cast<T*>(p));
}

}  // namespace envit
