// envit/core/stats.hpp — small summaries of measured samples (timings, ratios).
#pragma once
#include <algorithm>
#include <vector>

#include "envit/core/error.hpp"

namespace envit {

// The median: the middle element of the sorted samples, or the mean of the two middle ones.
inline double median(std::vector<double> v) {
  ENVIT_CHECK(!v.empty(), ValueError, "median of no samples");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace envit
