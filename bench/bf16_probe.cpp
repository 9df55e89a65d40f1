// bench/bf16_probe.cpp — is BF16 arithmetic worth a lower-precision inference path on this CPU?
// Times 16 independent accumulator chains of vfmadd231ps (FP32: 16 lanes x 1 multiply-add) and of
// vdpbf16ps (AVX512-BF16: 16 lanes x 2 bf16 multiply-adds into FP32) on one thread and prints ns
// per instruction and GFLOP/s of each. On the session-6 host: 0.15 vs 0.60-0.64 ns, 210-214 vs 100-107
// GFLOP/s, i.e. BF16 dot products run at half FP32's FLOP rate there (docs/performance.md).
// Usage: taskset -c 1 build/bench/bf16_probe   (exit 0; prints "unsupported" without AVX512-BF16)
#include <immintrin.h>

#include <chrono>
#include <cstdio>

namespace {
template <bool Bf16>
__attribute__((noinline, target("avx512f,avx512bf16"))) __m512 chains(long n, __m512 a, __m512 b) {
  __m512 c[16];
#pragma GCC unroll 32
  for (int i = 0; i < 16; ++i) c[i] = _mm512_mul_ps(a, _mm512_set1_ps(float(i + 1)));  // distinct chains
  for (long it = 0; it < n; ++it) {
#pragma GCC unroll 32
    for (int i = 0; i < 16; ++i) {
      if constexpr (Bf16) c[i] = _mm512_dpbf16_ps(c[i], (__m512bh)a, (__m512bh)b);
      else c[i] = _mm512_fmadd_ps(a, b, c[i]);
    }
    asm volatile("" : "+v"(a), "+v"(b));  // keeps the operands opaque to the optimiser
  }
  __m512 s = c[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, c[i]);
  return s;
}

template <bool Bf16>
__attribute__((target("avx512f,avx512bf16"))) void report(long n) {
  const __m512 a = _mm512_set1_ps(1e-3f), b = _mm512_set1_ps(1e-3f);
  chains<Bf16>(n / 10, a, b);  // warm-up (clock ramp)
  const auto t0 = std::chrono::steady_clock::now();
  volatile float sink = _mm512_reduce_add_ps(chains<Bf16>(n, a, b));
  (void)sink;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double instr = 16.0 * double(n), flop_per_instr = Bf16 ? 64.0 : 32.0;
  std::printf("%-22s %.3f ns/instruction  %.1f GFLOP/s\n", Bf16 ? "vdpbf16ps (bf16 x2)" : "vfmadd231ps (fp32)",
              s / instr * 1e9, instr * flop_per_instr / s * 1e-9);
}
}  // namespace

int main() {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16")) {
    std::printf("unsupported: this CPU has no AVX512-BF16\n");
    return 0;
  }
  for (int round = 0; round < 3; ++round) {
    report<false>(20000000);
    report<true>(20000000);
  }
  return 0;
}
