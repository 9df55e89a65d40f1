// tests/kernel_set_skip.hpp — for test executables registered once per kernel set (ctest sets
// ENVIT_ISA=<set>): when the set named is one this CPU (or its operating system) cannot run, print
// why and exit with 77 before any test, which ctest reports as skipped (SKIP_RETURN_CODE 77), never
// as passed. An unknown name is left to the tests (they fail on kernels::select's ValueError).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

#include "envit/kernels/dispatch.hpp"

namespace envit::testing {
inline int exit_if_kernel_set_unrunnable() {
  const char* env = std::getenv("ENVIT_ISA");
  if (!env || !*env) return 0;
  const envit::detail::KernelSetChoice c = envit::detail::runnable_kernel_sets();
  for (int i = 0; i < c.count; ++i)
    if (std::string(env) == c.sets[i]->name) return 0;
  for (const char* known : envit::detail::kKernelSetNames)
    if (std::string(env) == known) {
      std::printf("SKIPPED: ENVIT_ISA=%s: this CPU (or its operating system) cannot run that kernel set\n", env);
      std::fflush(stdout);
      std::_Exit(77);
    }
  return 0;
}
}  // namespace envit::testing
