// envit/kernels/dispatch.hpp — which packed GEMM kernel set runs: chosen once per process.
// Two ways to build, decided by the macro ENVIT_DISPATCH (set by linking the CMake target
// envit::dispatch, never by the headers):
//   * ENVIT_DISPATCH defined: the kernel sets are compiled separately, each translation unit with
//     its own instruction-set flags (src/kernels/gemm_<set>.cpp, the envit::dispatch library):
//     "avx512" (-march=x86-64-v4: AVX-512 F/BW/DQ/VL/CD), "avx2" (-march=x86-64-v3: AVX2, FMA,
//     BMI) and "baseline" (no flags: SSE2 on x86-64, NEON on AArch64). The first GEMM picks the
//     best set the CPU reports (cpuid, including the OS's register-state support), so one binary
//     runs on any x86-64 and never executes an instruction the CPU lacks.
//   * otherwise (header-only use): the one kernel set of the including translation unit's own
//     flags (xsimd's default arch: -march=native gives AVX-512 on such a CPU), called directly, no
//     indirection.
// ENVIT_ISA=avx512|avx2|baseline (environment) forces a set: for testing every set on one machine
// and for A/B timing. A set the CPU cannot run, or any set but the compiled one without
// ENVIT_DISPATCH, is an error (ValueError naming the variable), never a silent substitute.
// Results are deterministic per kernel set (each set has its own register tile and so its own
// thread tiles); sets differ from each other in the last bits (FMA vs separate multiply-add).
// Element-wise kernels (kernels/vec.hpp) are not dispatched: they use the including translation
// unit's flags (SSE2 in a build without -march).
#pragma once
#include <xsimd/xsimd.hpp>

#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>

#include "envit/core/error.hpp"
#include "envit/kernels/gemm_types.hpp"
#if !defined(ENVIT_DISPATCH)
#include "envit/kernels/gemm_packed.hpp"
#endif

namespace envit {

namespace detail {
#if defined(ENVIT_DISPATCH)
// Defined in the envit::dispatch library, each in a translation unit compiled for its set.
const GemmKernelSet& gemm_kernels_baseline();
#if defined(__x86_64__)
const GemmKernelSet& gemm_kernels_avx2();
const GemmKernelSet& gemm_kernels_avx512();
#endif
#else
// The name of the compile-time kernel set: the dispatched set with the same instructions, else
// xsimd's name of the arch.
template <class Arch>
constexpr const char* compile_time_set_name() {
  if constexpr (xsimd::batch<float, Arch>::size == 16) return "avx512";
  else if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>) return "avx2";
#if defined(__x86_64__)
  else if constexpr (std::is_same_v<Arch, xsimd::sse2>) return "baseline";
#elif defined(__aarch64__)
  else if constexpr (std::is_same_v<Arch, xsimd::neon64>) return "baseline";
#endif
  else return Arch::name();
}
#endif

// The sets this CPU can run, best first. Dispatched builds only know avx512, avx2 and baseline.
struct KernelSetChoice {
  const GemmKernelSet* sets[3] = {nullptr, nullptr, nullptr};
  int count = 0;
};
inline KernelSetChoice runnable_kernel_sets() {
  KernelSetChoice c;
#if defined(ENVIT_DISPATCH)
#if defined(__x86_64__)
  // The feature levels the kernel translation units are compiled for (-march=x86-64-v4 / -v3).
  __builtin_cpu_init();
#if defined(__clang__)
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512cd");
#else
  const bool v3 = __builtin_cpu_supports("x86-64-v3"), v4 = __builtin_cpu_supports("x86-64-v4");
#endif
  if (v4) c.sets[c.count++] = &gemm_kernels_avx512();
  if (v3) c.sets[c.count++] = &gemm_kernels_avx2();
#endif
  c.sets[c.count++] = &gemm_kernels_baseline();
#else
  static const GemmKernelSet ks = gemm_packed_kernels<xsimd::default_arch>(compile_time_set_name<xsimd::default_arch>());
  c.sets[c.count++] = &ks;
#endif
  return c;
}

// The best runnable set, or the one ENVIT_ISA names (which must be runnable).
inline const GemmKernelSet& select_gemm_kernels() {
  const KernelSetChoice c = runnable_kernel_sets();
  const char* env = std::getenv("ENVIT_ISA");
  if (!env || !*env) return *c.sets[0];
  const std::string_view want(env);
  std::string names;
  for (int i = 0; i < c.count; ++i) {
    if (want == c.sets[i]->name) return *c.sets[i];
    names += std::string(i ? ", " : "") + c.sets[i]->name;
  }
  ENVIT_CHECK(want == "avx512" || want == "avx2" || want == "baseline", ValueError, "ENVIT_ISA=", want,
              ": unknown kernel set (expected avx512, avx2 or baseline)");
#if defined(ENVIT_DISPATCH)
  ENVIT_CHECK(false, ValueError, "ENVIT_ISA=", want, ": this CPU cannot run that kernel set (it can run: ", names,
              ")");
#else
  ENVIT_CHECK(false, ValueError, "ENVIT_ISA=", want, ": this program's kernels are fixed at compile time (", names,
              "); choosing a set at run time needs a build linked with envit::dispatch");
#endif
  return *c.sets[0];
}
}  // namespace detail

// The packed float GEMM kernel set in use: chosen on first use, then fixed for the process.
inline const GemmKernelSet& gemm_kernels() {
  static const GemmKernelSet& k = detail::select_gemm_kernels();
  return k;
}
// "avx512", "avx2" or "baseline" (or xsimd's arch name for another compile-time arch).
inline const char* kernel_set_name() { return gemm_kernels().name; }
// True when the kernel set was chosen at run time (a build linked with envit::dispatch).
inline constexpr bool kernel_set_dispatched() {
#if defined(ENVIT_DISPATCH)
  return true;
#else
  return false;
#endif
}
// One line for `--version`/`--info`, e.g. "kernels: avx512 (chosen at run time; element-wise: sse2)".
inline std::string kernel_set_info() {
  return std::string("kernels: ") + kernel_set_name() +
         (kernel_set_dispatched() ? " (chosen at run time" : " (fixed at compile time") +
         "; element-wise: " + xsimd::default_arch::name() + ")";
}

}  // namespace envit
