// envit/ops/gather.hpp — row gather/scatter for per-sample layer masks: copy the n active rows of
// a (N, L) tensor into a dense (n, L) buffer, run the dense kernel, and write the rows back.
// Autograd pairs:  gather_rows  forward  ->  backward is scatter_add_rows (dsrc[idx[i]] += ddst[i])
//                  scatter_rows forward  ->  backward is gather_rows      (dsrc[i] = ddst[idx[i]])
//                  (rows of dst not selected by a scatter keep their gradient as is).
// Index preconditions (all three kernels): idx strictly increasing (sorted, no duplicates), every
// entry in [0, N). Unique indices make the parallel scatters race-free; sorted order keeps memory
// access monotone. The kernels check sorted/unique/non-negative only in debug builds
// (ENVIT_DCHECK; they are not given N); call check_row_indices once per mask at the boundary for
// an always-on check including the upper bound. dst and src must not overlap.
// Letters: N = rows of the full tensor, n = selected rows, L = row length (elements).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "envit/core/error.hpp"
#include "envit/core/parallel.hpp"

namespace envit {

// Throws ValueError unless idx[0..n) is strictly increasing and within [0, N): names the op, the
// position and the offending value.
inline void check_row_indices(const std::int32_t* idx, std::ptrdiff_t n, std::ptrdiff_t N,
                              const char* op) {
  ENVIT_CHECK(n >= 0 && N >= 0, ShapeError, op, ": invalid sizes n=", n, " N=", N);
  ENVIT_CHECK(n <= N, ValueError, op, ": ", n, " row indices for only ", N, " rows");
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    ENVIT_CHECK(idx[i] >= 0, ValueError, op, ": negative row index at position ", i, ": ", idx[i]);
    ENVIT_CHECK(idx[i] < N, ValueError, op, ": row index out of range at position ", i, ": ",
                idx[i], " >= ", N);
    if (i > 0) {
      ENVIT_CHECK(idx[i] != idx[i - 1], ValueError, op, ": duplicate row index at position ", i,
                  ": ", idx[i]);
      ENVIT_CHECK(idx[i] > idx[i - 1], ValueError, op, ": row indices not sorted at position ", i,
                  ": ", idx[i], " after ", idx[i - 1]);
    }
  }
}

namespace detail {
// Debug-only precondition check (no N available here): sorted, unique, non-negative.
// Runs serially before any parallel region, so a failure throws instead of terminating.
inline void dcheck_row_indices([[maybe_unused]] const std::int32_t* idx,
                               [[maybe_unused]] std::ptrdiff_t n, [[maybe_unused]] const char* op) {
#if !defined(NDEBUG) || defined(ENVIT_DEBUG_CHECKS)
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    ENVIT_DCHECK(idx[i] >= 0, ValueError, op, ": negative row index at position ", i, ": ", idx[i]);
    ENVIT_DCHECK(i == 0 || idx[i] > idx[i - 1], ValueError, op,
                 ": row indices not sorted/unique at position ", i, ": ", idx[i], " after ",
                 idx[i > 0 ? i - 1 : 0]);
  }
#endif
}
inline void check_gather_sizes(std::ptrdiff_t n, std::ptrdiff_t row_len, const char* op) {
  ENVIT_CHECK(n >= 0 && row_len >= 0, ShapeError, op, ": invalid sizes n=", n,
              " row_len=", row_len);
}
}  // namespace detail

// dst[i] = src[idx[i]] for i in [0, n).
template <class T>
void gather_rows(T* dst,                   // (n, L)  overwritten
                 const T* src,             // (N, L)
                 const std::int32_t* idx,  // (n)     sorted, unique, in [0, N)
                 std::ptrdiff_t n, std::ptrdiff_t row_len) {
  static_assert(std::is_trivially_copyable_v<T>);
  detail::check_gather_sizes(n, row_len, "gather_rows");
  detail::dcheck_row_indices(idx, n, "gather_rows");
  const std::size_t bytes = static_cast<std::size_t>(row_len) * sizeof(T);
  parallel_for(n, double(bytes), [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i)
      if (bytes) std::memcpy(dst + i * row_len, src + std::ptrdiff_t{idx[i]} * row_len, bytes);
  }, 262144.0);
}

// dst[idx[i]] = src[i] for i in [0, n); other rows of dst are left untouched.
template <class T>
void scatter_rows(T* dst,                   // (N, L)  selected rows overwritten
                  const T* src,             // (n, L)
                  const std::int32_t* idx,  // (n)     sorted, unique, in [0, N)
                  std::ptrdiff_t n, std::ptrdiff_t row_len) {
  static_assert(std::is_trivially_copyable_v<T>);
  detail::check_gather_sizes(n, row_len, "scatter_rows");
  detail::dcheck_row_indices(idx, n, "scatter_rows");
  const std::size_t bytes = static_cast<std::size_t>(row_len) * sizeof(T);
  parallel_for(n, double(bytes), [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i)
      if (bytes) std::memcpy(dst + std::ptrdiff_t{idx[i]} * row_len, src + i * row_len, bytes);
  }, 262144.0);
}

// dst[idx[i]] += src[i] for i in [0, n); other rows of dst are left untouched.
// Unique indices mean each destination row is written by one thread only: no atomics needed.
template <class T>
void scatter_add_rows(T* dst,                   // (N, L)  selected rows accumulated (+=)
                      const T* src,             // (n, L)
                      const std::int32_t* idx,  // (n)     sorted, unique, in [0, N)
                      std::ptrdiff_t n, std::ptrdiff_t row_len) {
  detail::check_gather_sizes(n, row_len, "scatter_add_rows");
  detail::dcheck_row_indices(idx, n, "scatter_add_rows");
  parallel_for(n, 2.0 * double(row_len) * double(sizeof(T)), [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i) {
      T* d = dst + std::ptrdiff_t{idx[i]} * row_len;
      const T* s = src + i * row_len;
      for (std::ptrdiff_t j = 0; j < row_len; ++j) d[j] += s[j];
    }
  }, 262144.0);
}

}  // namespace envit
