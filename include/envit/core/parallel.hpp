// envit/core/parallel.hpp — OpenMP helpers: thread count, static row partitions with a grain size.
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

}  // namespace envit
