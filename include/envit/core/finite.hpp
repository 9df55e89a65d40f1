// envit/core/finite.hpp — the first non-finite value (NaN, +-Inf) of an array, so that an error can
// name the element it found (checkpoint loading, training; see envit/train/finite.hpp).
#pragma once
#include <cmath>
#include <cstddef>

namespace envit {

// Index of the first non-finite element of p[0..n), or -1 when all are finite.
template <class T>
std::ptrdiff_t first_non_finite(const T* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return static_cast<std::ptrdiff_t>(i);
  return -1;
}

}  // namespace envit
