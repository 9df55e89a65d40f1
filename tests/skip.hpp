// tests/skip.hpp — a test that cannot run here (data, a tool or a CPU feature missing) reports
// itself as skipped, never as passed.
// Under ctest every discovered Catch2 case runs in its own process with ENVIT_TEST_SKIP_CODE set
// (envit_add_test in tests/CMakeLists.txt), and the test is registered with that SKIP_RETURN_CODE:
// ENVIT_SKIP prints the reason and ends the process with the code, which ctest counts as "Skipped".
// Run by hand (the variable unset), the case prints the reason as a Catch2 warning and returns, so
// the executable's other cases still run.
#pragma once
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

namespace envit::testing {
[[noreturn]] inline void skip_process(const std::string& why, int code) {
  std::fprintf(stdout, "SKIPPED: %s\n", why.c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}
inline int skip_code() {
  const char* c = std::getenv("ENVIT_TEST_SKIP_CODE");
  return c && *c ? std::atoi(c) : 0;
}
}  // namespace envit::testing

// Skips the current test case: `ENVIT_SKIP("Fashion-MNIST not installed: " << e.what());`
#define ENVIT_SKIP(msg)                                                                  \
  do {                                                                                   \
    std::ostringstream envit_skip_os_;                                                   \
    envit_skip_os_ << msg;                                                               \
    if (const int envit_skip_code_ = ::envit::testing::skip_code())                      \
      ::envit::testing::skip_process(envit_skip_os_.str(), envit_skip_code_);            \
    WARN("skipped: " << envit_skip_os_.str());                                           \
    return;                                                                              \
  } while (0)
