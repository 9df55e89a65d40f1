// envit/kernels/dispatch.hpp — which kernel set runs: the packed float GEMM, its BF16 product and
// the float row kernels (kernels/vec_kernels.hpp: LayerNorm rows, softmax and log-softmax rows,
// GELU, the GEMM epilogues), chosen together once per process.
// Two ways to build, decided by the macro ENVIT_DISPATCH (set by linking the CMake target
// envit::dispatch, never by the headers):
//   * ENVIT_DISPATCH defined: the kernel sets are compiled separately, each translation unit with
//     its own instruction-set flags (src/kernels/kernel_set_<set>.cpp, the envit::dispatch
//     library): "avx512" (-march=x86-64-v4: AVX-512 F/BW/DQ/VL/CD), "avx2" (-march=x86-64-v3: AVX2,
//     FMA, BMI) and "baseline" (no flags: SSE2 on x86-64, NEON on AArch64) each with an emulated
//     BF16 product (their FP32 micro-kernel on operands rounded to BF16 while packing); and two sets
//     with BF16 instructions, whose FP32 GEMM and row kernels are the avx512 set's own functions
//     (bitwise the same FP32 results): "avx512_bf16" (-mavx512bf16: vdpbf16ps,
//     kernels/gemm_bf16_avx512.hpp) and "amx" (-mamx-tile -mamx-bf16: tdpbf16ps on tiles,
//     kernels/gemm_bf16_amx.hpp). The first kernel call picks the best set the CPU reports, in the
//     order amx > avx512_bf16 > avx512 > avx2 > baseline (cpuid, including the OS's register-state
//     support; for amx also the Linux permission for the tile data, detail::amx_usable(); a refusal
//     means the next set), so one binary runs on any x86-64 and never executes an instruction the
//     CPU lacks. The ops call the row kernels through the set's table (envit::kernels below: one
//     indirect call per row block or chunk).
//   * otherwise (header-only use): the one kernel set of the including translation unit's own
//     flags (xsimd's default arch: -march=native gives AVX-512 on such a CPU; with -mavx512bf16 as
//     well, the vdpbf16ps BF16 product, named "avx512_bf16"), called directly, no indirection.
//     AMX is only used through envit::dispatch (it needs the run-time permission above).
// ENVIT_ISA=amx|avx512_bf16|avx512|avx2|baseline (environment) forces a set, GEMM and row kernels
// alike: for testing every set on one machine and for A/B timing. A set the CPU cannot run, or any
// set but the compiled one without ENVIT_DISPATCH, is an error (ValueError naming the variable),
// never a silent substitute. Results are deterministic per kernel set (each set has its own register
// tiles and so its own thread tiles, and its own batch width in the row kernels); sets differ from
// each other in the last bits (FMA vs separate multiply-add, lane count of the reductions, BF16
// summation order) except the AVX-512 family's FP32 results, which are one code. The native BF16
// instructions flush subnormal BF16 inputs and FP32 results to zero (DAZ/FTZ); the emulated
// product does not. Double paths stay scalar in the ops and use none of this.
#pragma once
#include <xsimd/xsimd.hpp>

#include <cstddef>
#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>

#include "envit/core/error.hpp"
#include "envit/kernels/gemm_types.hpp"
#include "envit/kernels/isa.hpp"
#if !defined(ENVIT_DISPATCH)
#include "envit/kernels/gemm_packed.hpp"
#include "envit/kernels/vec_kernels.hpp"
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#include "envit/kernels/gemm_bf16_avx512.hpp"
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#include "envit/kernels/gemm_int8_vnni.hpp"
#endif
#endif
#if defined(ENVIT_DISPATCH) && defined(__x86_64__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace envit {

namespace detail {
#if defined(ENVIT_DISPATCH)
// Defined in the envit::dispatch library, each in a translation unit compiled for its set.
const GemmKernelSet& gemm_kernels_baseline();
#if defined(__x86_64__)
const GemmKernelSet& gemm_kernels_avx2();
const GemmKernelSet& gemm_kernels_avx512();
const GemmKernelSet& gemm_kernels_avx512_bf16();
const GemmKernelSet& gemm_kernels_amx();

// AMX as the "amx" set needs it: the CPU reports AMX-TILE and AMX-BF16 (cpuid leaf 7, EDX bits 24
// and 22), the OS enables the tile state (XCR0 bits 17 XTILECFG and 18 XTILEDATA, read with xgetbv
// once OSXSAVE is set), and Linux grants this process the tile data state
// (arch_prctl(ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18), process-wide, asked once).
// A refusal (older kernel, seccomp, a hypervisor hiding the state) means no AMX: the next set runs.
inline bool amx_usable() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!((d >> 24) & 1u) || !((d >> 22) & 1u)) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1u)) return false;  // OSXSAVE: xgetbv allowed
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0u));
    if (((lo >> 17) & 3u) != 3u) return false;
#if defined(__linux__)
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
    return false;
#endif
  }();
  return ok;
}
#endif
#else
// The name of the compile-time kernel set: the dispatched set with the same instructions, else
// xsimd's name of the arch.
template <class Arch>
constexpr const char* compile_time_set_name() {
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
  if constexpr (xsimd::batch<float, Arch>::size == 16) return "avx512_bf16";
#endif
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

// Every kernel set name ENVIT_ISA accepts, best first (a build or CPU may run only some of them).
inline constexpr const char* kKernelSetNames[] = {"amx", "avx512_bf16", "avx512", "avx2", "baseline"};

// The sets this CPU can run, best first (dispatched builds: amx, avx512_bf16, avx512, avx2,
// baseline; otherwise the one compile-time set).
struct KernelSetChoice {
  const GemmKernelSet* sets[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
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
  // The BF16 sets also run the INT8 product on vpdpbusd (every AVX512-BF16 CPU has AVX512-VNNI).
  const bool bf16 = v4 && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni");
  if (bf16 && amx_usable()) c.sets[c.count++] = &gemm_kernels_amx();
  if (bf16) c.sets[c.count++] = &gemm_kernels_avx512_bf16();
  if (v4) c.sets[c.count++] = &gemm_kernels_avx512();
  if (v3) c.sets[c.count++] = &gemm_kernels_avx2();
#endif
  c.sets[c.count++] = &gemm_kernels_baseline();
#else
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
  // built with -mavx512bf16: the vdpbf16ps product on the compile-time FP32 kernels
  static const GemmKernelSet ks0 = gemm_bf16::with_bf16(
      gemm_packed_kernels<xsimd::default_arch>("avx512_bf16", vec::vec_kernel_set()), "avx512_bf16");
#else
  static const GemmKernelSet ks0 =
      gemm_packed_kernels<xsimd::default_arch>(compile_time_set_name<xsimd::default_arch>(), vec::vec_kernel_set());
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  static const GemmKernelSet ks = gemm_i8::with_vnni_int8(ks0);  // built with -mavx512vnni: vpdpbusd
#else
  static const GemmKernelSet& ks = ks0;
#endif
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
  bool known = false;
  for (const char* n : kKernelSetNames) known |= want == n;
  ENVIT_CHECK(known, ValueError, "ENVIT_ISA=", want,
              ": unknown kernel set (expected amx, avx512_bf16, avx512, avx2 or baseline)");
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

// The kernel set in use (GEMM and row kernels): chosen on first use, then fixed for the process.
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
// One line for `--version`/`--info`, e.g. "kernels: avx512_bf16 (chosen at run time); bf16 products:
// native (avx512_bf16)": the set that runs the GEMM and the float row kernels, and how its BF16
// product runs (native instructions, or emulated: the FP32 kernels on BF16-rounded operands), and
// its INT8 product ("avx512_vnni" or "portable").
inline std::string kernel_set_info() {
  const GemmKernelSet& ks = gemm_kernels();
  return std::string("kernels: ") + ks.name +
         (kernel_set_dispatched() ? " (chosen at run time)" : " (fixed at compile time)") + "; bf16 products: " +
         (ks.bf16_native ? std::string("native (") + ks.bf16 + ")"
                         : std::string("emulated (FP32 kernels on BF16-rounded operands)")) +
         "; int8 products: " + ks.int8;
}

// The float row kernels as the ops call them (arguments as in kernels/vec_kernels.hpp): through the
// kernel set in use when dispatched, else this translation unit's instances directly. In
// kernels/isa.hpp's namespace like the kernels, so translation units with different flags never
// share one of these.
namespace kernels {
inline namespace ENVIT_KERNEL_ISA_NS {
#if defined(ENVIT_DISPATCH)
#define ENVIT_VEC_KERNEL(f) gemm_kernels().vec.f
#else
#define ENVIT_VEC_KERNEL(f) vec::f
#endif
using P = std::ptrdiff_t;
// Chooses the kernel set now (nothing to do without ENVIT_DISPATCH). The ops call it before a
// parallel region, so that an ENVIT_ISA error is thrown on the calling thread, never inside an
// OpenMP region (where an exception would terminate the program).
inline void select() {
#if defined(ENVIT_DISPATCH)
  (void)gemm_kernels();
#endif
}
inline void gelu_forward(float* y, const float* x, P n) { ENVIT_VEC_KERNEL(gelu_forward)(y, x, n); }
inline void gelu_backward(float* dx, const float* dy, const float* x, P n) {
  ENVIT_VEC_KERNEL(gelu_backward)(dx, dy, x, n);
}
inline void gelu_grad_mul(float* d, const float* h, P n) { ENVIT_VEC_KERNEL(gelu_grad_mul)(d, h, n); }
inline void bias_gelu_rect(float* h, float* a, const float* b, P ld, P r0, P r1, P c0, P c1) {
  ENVIT_VEC_KERNEL(bias_gelu_rect)(h, a, b, ld, r0, r1, c0, c1);
}
inline void bias_residual_rect(float* y, const float* b, const float* res, P ld, P r0, P r1, P c0, P c1) {
  ENVIT_VEC_KERNEL(bias_residual_rect)(y, b, res, ld, r0, r1, c0, c1);
}
inline void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                              const float* beta, P rows, P D, float eps) {
  ENVIT_VEC_KERNEL(layernorm_forward)(y, mean, rstd, x, gamma, beta, rows, D, eps);
}
inline void layernorm_backward(float* dx, const float* base, const float* extra, float* pg, float* pb,
                               const float* dy, const float* x, const float* mean, const float* rstd,
                               const float* gamma, P rows, P D) {
  ENVIT_VEC_KERNEL(layernorm_backward)(dx, base, extra, pg, pb, dy, x, mean, rstd, gamma, rows, D);
}
inline void softmax_forward(float* y, const float* x, P rows, P n, float scale) {
  ENVIT_VEC_KERNEL(softmax_forward)(y, x, rows, n, scale);
}
inline void softmax_backward(float* dx, const float* dy, const float* y, P rows, P n, float scale, bool accumulate) {
  ENVIT_VEC_KERNEL(softmax_backward)(dx, dy, y, rows, n, scale, accumulate);
}
inline void log_softmax_forward(float* y, const float* x, P rows, P n, float scale) {
  ENVIT_VEC_KERNEL(log_softmax_forward)(y, x, rows, n, scale);
}
inline void log_softmax_backward(float* dx, const float* dy, const float* y, P rows, P n, float scale) {
  ENVIT_VEC_KERNEL(log_softmax_backward)(dx, dy, y, rows, n, scale);
}
#undef ENVIT_VEC_KERNEL
}  // namespace ENVIT_KERNEL_ISA_NS
}  // namespace kernels

}  // namespace envit
