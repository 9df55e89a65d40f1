// envit/ops/row_sum.hpp — a deterministic parallel sum of per-row scalars, used by the losses.
// One partial per thread (static row partition), added in thread order: bitwise-identical results
// for a fixed thread count, no atomics, no allocation. Not a general reduction library.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstddef>

#include "envit/core/parallel.hpp"

namespace envit {

// Returns sum_{i in [0,n)} f(i) in the type Acc. f may also write per-row outputs (each row is
// visited by exactly one thread, exactly once). Within a thread rows are added in increasing
// order; the per-thread partials are then added in thread order. At most 64 partials.
// f must not throw (it runs inside an OpenMP region): validate inputs before calling.
template <class Acc, class F>
Acc parallel_row_sum(std::ptrdiff_t n, double cost_per_row, F&& f, double grain = 32768.0) {
  constexpr int kMaxParts = 64;
  const int t = std::min(threads_for(n, cost_per_row, grain), kMaxParts);
  if (t <= 1) {
    Acc s = 0;
    for (std::ptrdiff_t i = 0; i < n; ++i) s += f(i);
    return s;
  }
  Acc part[kMaxParts] = {};
#pragma omp parallel num_threads(t)
  {
    const int id = omp_get_thread_num();
    auto [b, e] = partition(n, omp_get_num_threads(), id);
    Acc s = 0;
    for (std::ptrdiff_t i = b; i < e; ++i) s += f(i);
    part[id] = s;
  }
  Acc s = 0;
  for (int k = 0; k < t; ++k) s += part[k];  // fixed order
  return s;
}

}  // namespace envit
