// envit/core/parallel.hpp — OpenMP helpers: thread count, static row partitions with a grain size,
// and a deterministic parallel row sum.
// Partitions depend only on (n, thread count), so a fixed thread count gives bitwise-identical
// results. Never call parallel_for from inside another parallel region's worker with nested work.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstddef>

namespace envit {

inline int num_threads() { return omp_get_max_threads(); }
inline void set_num_threads(int n) { omp_set_num_threads(std::max(1, n)); }
inline bool in_parallel() { return omp_in_parallel() != 0; }

// [begin, end) of part `i` of `parts` for n items: contiguous, sizes differ by at most one.
inline std::pair<std::ptrdiff_t, std::ptrdiff_t> partition(std::ptrdiff_t n, int parts, int i) {
  std::ptrdiff_t q = n / parts, r = n % parts;
  std::ptrdiff_t b = i * q + std::min<std::ptrdiff_t>(i, r);
  return {b, b + q + (i < r ? 1 : 0)};
}

// Threads worth using for n items when each item costs `cost` units and a thread should get
// at least `grain` units: 1 below the grain, never more than available or than items.
inline int threads_for(std::ptrdiff_t n, double cost, double grain) {
  if (in_parallel() || n <= 1) return 1;
  double total = static_cast<double>(n) * cost;
  int t = static_cast<int>(std::min<double>(num_threads(), total / std::max(grain, 1.0)));
  return std::clamp<int>(t, 1, static_cast<int>(std::min<std::ptrdiff_t>(n, num_threads())));
}

// Calls f(begin, end) over contiguous chunks of [0, n), one per thread, statically assigned.
// grain: minimum work units (~ flops or bytes) per thread before a second thread is used.
template <class F>
void parallel_for(std::ptrdiff_t n, double cost_per_item, F&& f, double grain = 32768.0) {
  int t = threads_for(n, cost_per_item, grain);
  if (t <= 1) {
    if (n > 0) f(std::ptrdiff_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(t)
  {
    auto [b, e] = partition(n, omp_get_num_threads(), omp_get_thread_num());
    if (b < e) f(b, e);
  }
}

// A deterministic parallel sum of per-row scalars (the losses' reductions): one partial per thread
// (static row partition), added in thread order, so a fixed thread count gives bitwise-identical
// results; no atomics, no allocation.
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
