// tests/io/alloc_counter.hpp — counts calls of the global operator new while enabled (the
// replacement lives in alloc_counter.cpp, its own translation unit, so the compiler never sees
// malloc and operator new paired in one function and warns about a mismatch).
#pragma once
#include <atomic>

namespace envit::testing {
extern std::atomic<bool> g_count_allocs;
extern std::atomic<long> g_allocs;
}  // namespace envit::testing
