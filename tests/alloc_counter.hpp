// tests/alloc_counter.hpp — counts calls of the global operator new (plain, array, nothrow,
// aligned) and records the largest single request while enabled (the
// replacement lives in alloc_counter.cpp, its own translation unit, so the compiler never sees
// malloc and operator new paired in one function and warns about a mismatch).
#pragma once
#include <atomic>
#include <cstddef>

namespace envit::testing {
extern std::atomic<bool> g_count_allocs;
extern std::atomic<long> g_allocs;             // calls while g_count_allocs is set
extern std::atomic<std::size_t> g_largest_alloc;  // largest request (bytes) while g_count_allocs is set
}  // namespace envit::testing
