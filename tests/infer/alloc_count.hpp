// tests/infer/alloc_count.hpp — counts calls of the global operator new while enabled (the
// replacement lives in alloc_count.cpp, linked only into the infer test that needs it).
#pragma once
#include <atomic>

namespace envit::testing::infer {
extern std::atomic<bool> count_allocs;
extern std::atomic<long> allocs;
}  // namespace envit::testing::infer
