// bench/microkernel_asm.cpp — would a hand-written micro-kernel beat GCC's? (session 7 experiment)
// The library's register tile (gemm_packed.hpp: 8 rows x 48 columns, 24 zmm accumulators) is C++ with
// xsimd; GCC 12 compiles its k loop with one accumulator spilled to the stack and a few register
// moves. This file holds the same tile as one GNU inline-assembly block: the 24 accumulators in
// zmm0-23, B in zmm24-26, the A broadcasts rotating through zmm27-31, no spill, the prefetch slots
// (next C tile with prefetchw, then the two PrefetchStreams) in the loop every 3 k steps, and the
// alpha/beta store. The arguments travel in one struct read through a single register operand, so
// GCC's 30-operand limit does not apply (session 6's attempt passed the accumulators as operands
// and had to split the tile into two 4-row halves).
// The program first checks that both kernels write bitwise the same C (row-major and k-major A,
// beta 0 and 0.5, K from 1 to 768; exit 1 otherwise), then times them alternately, one thread, A
// in L1 and B cycling through 4 panels in L2 (bench_gemm's microkernel/kc:K setting), and prints
// the median of the per-round ratios asm / C++.
// Usage: taskset -c 1 build/bench/microkernel_asm [rounds]   (prints "unsupported" without AVX-512)
// Result on the session-7 host: no gain (docs/performance.md), so the library keeps the C++ kernel.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "envit/kernels/gemm.hpp"
#include "envit/kernels/gemm_packed.hpp"

#if defined(__AVX512F__) && defined(__x86_64__) && defined(__GNUC__)
namespace {
namespace pk = envit::detail::gemm_pk;
using Arch = xsimd::default_arch;
using idx = std::ptrdiff_t;

// Field offsets are hard-coded in the assembly below (static_asserts after the struct).
struct AsmTileArgs {
  const float* pa;          // 0   A micro-panel
  const float* pb;          // 8   B micro-panel, kc x 48 floats, 64-byte aligned
  idx kc;                   // 16
  idx a_stride;             // 24  bytes between the rows of a row-major A panel
  float* c;                 // 32  C tile (8 x 48)
  idx ldc;                  // 40  bytes between C rows
  float alpha, beta;        // 48, 52
  const float* cpf;         // 56  next C tile (prefetched, 8 rows x 4 lines)
  idx cpf_ld;               // 64  bytes between its rows
  pk::PrefetchStream* pf0;  // 72
  pk::PrefetchStream* pf1;  // 80
};
static_assert(offsetof(AsmTileArgs, alpha) == 48 && offsetof(AsmTileArgs, pf1) == 80);
static_assert(offsetof(pk::PrefetchStream, rows_left) == 8 && offsetof(pk::PrefetchStream, len) == 16 &&
              offsetof(pk::PrefetchStream, stride) == 24 && offsetof(pk::PrefetchStream, off) == 32 &&
              offsetof(pk::PrefetchStream, col) == 40 && offsetof(pk::PrefetchStream, fast) == 48);

// clang-format off
#define EVA_FMA3(A, C0, C1, C2)                  \
  "vfmadd231ps %%zmm" #A ", %%zmm24, %%zmm" #C0 "\n\t" \
  "vfmadd231ps %%zmm" #A ", %%zmm25, %%zmm" #C1 "\n\t" \
  "vfmadd231ps %%zmm" #A ", %%zmm26, %%zmm" #C2 "\n\t"
#define EVA_LOADB(KK)                                   \
  "vmovaps " #KK "*192(%%rdx), %%zmm24\n\t"           \
  "vmovaps " #KK "*192+64(%%rdx), %%zmm25\n\t"        \
  "vmovaps " #KK "*192+128(%%rdx), %%zmm26\n\t"
// row-major A: row r at rax + r*S (rsi = S, rdi = 3S, rbx = rax + 3S)
#define EVA_KSTEP_RM(KK)                                            \
  EVA_LOADB(KK)                                                     \
  "vbroadcastss " #KK "*4(%%rax), %%zmm27\n\t" EVA_FMA3(27, 0, 1, 2)          \
  "vbroadcastss " #KK "*4(%%rax,%%rsi,1), %%zmm28\n\t" EVA_FMA3(28, 3, 4, 5)  \
  "vbroadcastss " #KK "*4(%%rax,%%rsi,2), %%zmm29\n\t" EVA_FMA3(29, 6, 7, 8)  \
  "vbroadcastss " #KK "*4(%%rbx), %%zmm30\n\t" EVA_FMA3(30, 9, 10, 11)        \
  "vbroadcastss " #KK "*4(%%rax,%%rsi,4), %%zmm31\n\t" EVA_FMA3(31, 12, 13, 14) \
  "vbroadcastss " #KK "*4(%%rbx,%%rsi,2), %%zmm27\n\t" EVA_FMA3(27, 15, 16, 17) \
  "vbroadcastss " #KK "*4(%%rbx,%%rdi,1), %%zmm28\n\t" EVA_FMA3(28, 18, 19, 20) \
  "vbroadcastss " #KK "*4(%%rbx,%%rsi,4), %%zmm29\n\t" EVA_FMA3(29, 21, 22, 23)
// k-major A (8 floats per k)
#define EVA_KSTEP_KM(KK)                                            \
  EVA_LOADB(KK)                                                     \
  "vbroadcastss " #KK "*32(%%rax), %%zmm27\n\t" EVA_FMA3(27, 0, 1, 2)          \
  "vbroadcastss " #KK "*32+4(%%rax), %%zmm28\n\t" EVA_FMA3(28, 3, 4, 5)  \
  "vbroadcastss " #KK "*32+8(%%rax), %%zmm29\n\t" EVA_FMA3(29, 6, 7, 8)  \
  "vbroadcastss " #KK "*32+12(%%rax), %%zmm30\n\t" EVA_FMA3(30, 9, 10, 11)        \
  "vbroadcastss " #KK "*32+16(%%rax), %%zmm31\n\t" EVA_FMA3(31, 12, 13, 14) \
  "vbroadcastss " #KK "*32+20(%%rax), %%zmm27\n\t" EVA_FMA3(27, 15, 16, 17) \
  "vbroadcastss " #KK "*32+24(%%rax), %%zmm28\n\t" EVA_FMA3(28, 18, 19, 20) \
  "vbroadcastss " #KK "*32+28(%%rax), %%zmm29\n\t" EVA_FMA3(29, 21, 22, 23)

#define EVA_ZERO                                                                              \
  "vpxord %%zmm0, %%zmm0, %%zmm0\n\t" "vmovaps %%zmm0, %%zmm1\n\t" "vmovaps %%zmm0, %%zmm2\n\t"   \
  "vmovaps %%zmm0, %%zmm3\n\t" "vmovaps %%zmm0, %%zmm4\n\t" "vmovaps %%zmm0, %%zmm5\n\t"          \
  "vmovaps %%zmm0, %%zmm6\n\t" "vmovaps %%zmm0, %%zmm7\n\t" "vmovaps %%zmm0, %%zmm8\n\t"          \
  "vmovaps %%zmm0, %%zmm9\n\t" "vmovaps %%zmm0, %%zmm10\n\t" "vmovaps %%zmm0, %%zmm11\n\t"        \
  "vmovaps %%zmm0, %%zmm12\n\t" "vmovaps %%zmm0, %%zmm13\n\t" "vmovaps %%zmm0, %%zmm14\n\t"       \
  "vmovaps %%zmm0, %%zmm15\n\t" "vmovaps %%zmm0, %%zmm16\n\t" "vmovaps %%zmm0, %%zmm17\n\t"       \
  "vmovaps %%zmm0, %%zmm18\n\t" "vmovaps %%zmm0, %%zmm19\n\t" "vmovaps %%zmm0, %%zmm20\n\t"       \
  "vmovaps %%zmm0, %%zmm21\n\t" "vmovaps %%zmm0, %%zmm22\n\t" "vmovaps %%zmm0, %%zmm23\n\t"

// one step of a PrefetchStream at register R (fields: base 0, rows_left 8, len 16, stride 24, off 32, col 40)
#define EVA_STREAM_STEP(R, L)                                    \
  "mov 8(%%" #R "), %%r13\n\t"                                   \
  "test %%r13, %%r13\n\t"                                        \
  "jle " #L "f\n\t"                                              \
  "mov 32(%%" #R "), %%r14\n\t"                                  \
  "add 40(%%" #R "), %%r14\n\t"                                  \
  "shl $2, %%r14\n\t"                                            \
  "add (%%" #R "), %%r14\n\t"                                    \
  "prefetcht1 (%%r14)\n\t"                                       \
  "mov 40(%%" #R "), %%r14\n\t"                                  \
  "add $16, %%r14\n\t"                                           \
  "mov %%r14, 40(%%" #R ")\n\t"                                  \
  "sub $16, %%r14\n\t"                                           \
  "cmp 16(%%" #R "), %%r14\n\t"                                  \
  "jl " #L "f\n\t"                                               \
  "movq $0, 40(%%" #R ")\n\t"                                    \
  "mov 24(%%" #R "), %%r14\n\t"                                  \
  "add %%r14, 32(%%" #R ")\n\t"                                  \
  "dec %%r13\n\t"                                                \
  "mov %%r13, 8(%%" #R ")\n\t"                                   \
  #L ":\n\t"

#define EVA_SLOT                                                  \
  "test %%r12, %%r12\n\t"                                         \
  "jz 31f\n\t"                                                    \
  "prefetchw (%%r11)\n\t"                                         \
  "prefetchw 64(%%r11)\n\t"                                       \
  "prefetchw 128(%%r11)\n\t"                                      \
  "prefetchw 188(%%r11)\n\t"                                      \
  "add %%r10, %%r11\n\t"                                          \
  "dec %%r12\n\t"                                                 \
  "jmp 33f\n\t"                                                   \
  "31:\n\t"                                                       \
  "cmpq $0, 8(%%r8)\n\t"                                          \
  "jle 32f\n\t"                                                   \
  EVA_STREAM_STEP(r8, 34)                                         \
  "jmp 33f\n\t"                                                   \
  "32:\n\t"                                                       \
  EVA_STREAM_STEP(r9, 35)                                         \
  "33:\n\t"                                                       \
  "cmpb $0, 48(%%r9)\n\t"                                         \
  "je 36f\n\t"                                                    \
  EVA_STREAM_STEP(r9, 37)                                         \
  "36:\n\t"

#define EVA_STORE_ROW(ADDR, C0, C1, C2)                                        \
  "vmulps %%zmm24, %%zmm" #C0 ", %%zmm" #C0 "\n\t"                             \
  "vmulps %%zmm24, %%zmm" #C1 ", %%zmm" #C1 "\n\t"                             \
  "vmulps %%zmm24, %%zmm" #C2 ", %%zmm" #C2 "\n\t"                             \
  "vmovups %%zmm" #C0 ", " ADDR "\n\t"                                        \
  "vmovups %%zmm" #C1 ", 64" ADDR "\n\t"                                     \
  "vmovups %%zmm" #C2 ", 128" ADDR "\n\t"
#define EVA_STORE_ROW_BETA(ADDR, C0, C1, C2)                                   \
  "vmulps %%zmm24, %%zmm" #C0 ", %%zmm" #C0 "\n\t"                             \
  "vmulps %%zmm24, %%zmm" #C1 ", %%zmm" #C1 "\n\t"                             \
  "vmulps %%zmm24, %%zmm" #C2 ", %%zmm" #C2 "\n\t"                             \
  "vfmadd231ps " ADDR ", %%zmm25, %%zmm" #C0 "\n\t"                           \
  "vfmadd231ps 64" ADDR ", %%zmm25, %%zmm" #C1 "\n\t"                        \
  "vfmadd231ps 128" ADDR ", %%zmm25, %%zmm" #C2 "\n\t"                       \
  "vmovups %%zmm" #C0 ", " ADDR "\n\t"                                        \
  "vmovups %%zmm" #C1 ", 64" ADDR "\n\t"                                     \
  "vmovups %%zmm" #C2 ", 128" ADDR "\n\t"
#define EVA_STORE_ALL(M)                                   \
  M("(%%r8)", 0, 1, 2)                                     \
  M("(%%r8,%%r10,1)", 3, 4, 5)                             \
  M("(%%r8,%%r10,2)", 6, 7, 8)                             \
  M("(%%r11)", 9, 10, 11)                                  \
  M("(%%r8,%%r10,4)", 12, 13, 14)                          \
  M("(%%r11,%%r10,2)", 15, 16, 17)                         \
  M("(%%r11,%%r13,1)", 18, 19, 20)                         \
  M("(%%r11,%%r10,4)", 21, 22, 23)

#define EVA_BODY(KSTEP, AINC1, AINC3)                                         \
  "mov 0(%[args]), %%rax\n\t"                                                 \
  "mov 8(%[args]), %%rdx\n\t"                                                 \
  "mov 16(%[args]), %%rcx\n\t"                                                \
  "mov 24(%[args]), %%rsi\n\t"                                                \
  "lea (%%rsi,%%rsi,2), %%rdi\n\t"                                            \
  "lea (%%rax,%%rdi,1), %%rbx\n\t"                                            \
  "mov 56(%[args]), %%r11\n\t"                                                \
  "mov 64(%[args]), %%r10\n\t"                                                \
  "mov $8, %%r12\n\t"                                                         \
  "mov 72(%[args]), %%r8\n\t"                                                 \
  "mov 80(%[args]), %%r9\n\t"                                                 \
  EVA_ZERO                                                                    \
  "cmp $3, %%rcx\n\t"                                                         \
  "jl 20f\n\t"                                                                \
  ".p2align 5\n\t"                                                            \
  "10:\n\t"                                                                   \
  EVA_SLOT                                                                    \
  KSTEP(0) KSTEP(1) KSTEP(2)                                                  \
  "add $" #AINC3 ", %%rax\n\t"                                                \
  "add $" #AINC3 ", %%rbx\n\t"                                                \
  "add $576, %%rdx\n\t"                                                       \
  "sub $3, %%rcx\n\t"                                                         \
  "cmp $3, %%rcx\n\t"                                                         \
  "jge 10b\n\t"                                                               \
  "20:\n\t"                                                                   \
  "test %%rcx, %%rcx\n\t"                                                     \
  "jz 40f\n\t"                                                                \
  "21:\n\t"                                                                   \
  KSTEP(0)                                                                    \
  "add $" #AINC1 ", %%rax\n\t"                                                \
  "add $" #AINC1 ", %%rbx\n\t"                                                \
  "add $192, %%rdx\n\t"                                                       \
  "dec %%rcx\n\t"                                                             \
  "jnz 21b\n\t"                                                               \
  "40:\n\t"                                                                   \
  "mov 32(%[args]), %%r8\n\t"                                                 \
  "mov 40(%[args]), %%r10\n\t"                                                \
  "lea (%%r10,%%r10,2), %%r13\n\t"                                            \
  "lea (%%r8,%%r13,1), %%r11\n\t"                                             \
  "vbroadcastss 48(%[args]), %%zmm24\n\t"                                     \
  "vbroadcastss 52(%[args]), %%zmm25\n\t"                                     \
  "vxorps %%xmm26, %%xmm26, %%xmm26\n\t"                                      \
  "vucomiss 52(%[args]), %%xmm26\n\t"                                         \
  "jne 50f\n\t"                                                               \
  "jp 50f\n\t"                                                                \
  EVA_STORE_ALL(EVA_STORE_ROW)                                                \
  "jmp 60f\n\t"                                                               \
  "50:\n\t"                                                                   \
  EVA_STORE_ALL(EVA_STORE_ROW_BETA)                                           \
  "60:\n\t"

#define EVA_CLOBBERS                                                                           \
  "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14",     \
      "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
      "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19",        \
      "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28",        \
      "xmm29", "xmm30", "xmm31", "cc", "memory"

// clang-format on

template <bool KMajor>
__attribute__((noinline)) void asm_tile_8x48(const AsmTileArgs& a) {
  if constexpr (KMajor)
    asm volatile(EVA_BODY(EVA_KSTEP_KM, 32, 96) : : [args] "r"(&a) : EVA_CLOBBERS);
  else
    asm volatile(EVA_BODY(EVA_KSTEP_RM, 4, 12) : : [args] "r"(&a) : EVA_CLOBBERS);
}

constexpr int MR = 8, NR = 48, AS = pk::Blocking<Arch>::KC;
static_assert(pk::Blocking<Arch>::MR == MR && pk::Blocking<Arch>::NR == NR, "the 8 x 48 AVX-512 tile");

float value(idx i, idx mul) { return float((i * mul) % 1000) * 1e-3f - 0.5f; }

bool check() {
  bool ok = true;
  for (idx kc : {1, 2, 3, 5, 192, 767, 768})
    for (bool km : {false, true})
      for (float beta : {0.0f, 0.5f}) {
        auto A = envit::aligned_buffer<float>(MR * AS), B = envit::aligned_buffer<float>(kc * NR);
        for (idx i = 0; i < MR * AS; ++i) A[i] = value(i, 7919);
        for (idx i = 0; i < kc * NR; ++i) B[i] = value(i, 104729);
        const idx ldc = 61;
        std::vector<float> c1(MR * ldc), c2(MR * ldc);
        for (idx i = 0; i < MR * ldc; ++i) c1[i] = c2[i] = float(i % 13) * 0.1f;
        pk::PrefetchStream p0, p1, q0, q1;
        if (km)
          pk::micro_kernel<Arch, MR, 3, AS, true>(kc, A.get(), B.get(), c1.data(), ldc, 1.25f, beta, MR, NR,
                                                  c1.data(), 0, p0, p1, AS);
        else
          pk::micro_kernel<Arch, MR, 3, AS, false>(kc, A.get(), B.get(), c1.data(), ldc, 1.25f, beta, MR, NR,
                                                   c1.data(), 0, p0, p1, AS);
        const AsmTileArgs args{A.get(), B.get(), kc, AS * 4, c2.data(), ldc * 4, 1.25f, beta, c2.data(), ldc * 4,
                               &q0, &q1};
        if (km) asm_tile_8x48<true>(args);
        else asm_tile_8x48<false>(args);
        if (std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) != 0) {
          std::printf("MISMATCH: kc %td, %s A, beta %g\n", kc, km ? "k-major" : "row-major", beta);
          ok = false;
        }
      }
  return ok;
}

// Seconds per call, best of 3 repetitions of `calls` calls.
template <class F>
double time_calls(int calls, F&& f) {
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) f(i);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls);
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 9;  // 0: the bitwise check only
  if (!check()) return 1;
  std::printf("bitwise equal: asm tile and micro_kernel (kc 1..768, row-major and k-major A, beta 0 / 0.5)\n");
  for (idx kc : {192, 768}) {
    if (rounds <= 0) break;
    auto A = envit::aligned_buffer<float>(MR * AS), B = envit::aligned_buffer<float>(4 * kc * NR);
    auto C = envit::aligned_buffer<float>(MR * NR);
    for (idx i = 0; i < MR * AS; ++i) A[i] = value(i, 7919);
    for (idx i = 0; i < 4 * kc * NR; ++i) B[i] = value(i, 104729);
    pk::PrefetchStream p0, p1;
    const int calls = int(20000 * 768 / kc);
    const double flops = 2.0 * MR * NR * double(kc);
    std::vector<double> cpp, as, ratio;
    for (int r = 0; r < rounds; ++r) {
      const double tc = time_calls(calls, [&](int i) {
        pk::micro_kernel<Arch, MR, 3, AS, false>(kc, A.get(), B.get() + (i & 3) * kc * NR, C.get(), NR, 1.0f, 0.0f,
                                                 MR, NR, C.get(), 0, p0, p1, AS);
        asm volatile("" ::: "memory");
      });
      const double ta = time_calls(calls, [&](int i) {
        const AsmTileArgs args{A.get(), B.get() + (i & 3) * kc * NR, kc, AS * 4, C.get(), NR * 4, 1.0f, 0.0f,
                               C.get(), NR * 4, &p0, &p1};
        asm_tile_8x48<false>(args);
        asm volatile("" ::: "memory");
      });
      cpp.push_back(flops / tc * 1e-9), as.push_back(flops / ta * 1e-9), ratio.push_back(tc / ta);
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    auto [rmin, rmax] = std::minmax_element(ratio.begin(), ratio.end());
    std::printf("kc %4td: C++ %.1f GFLOP/s, asm %.1f GFLOP/s (medians of %d rounds); speed asm/C++ median %.3f "
                "(%.3f-%.3f)\n",
                kc, median(cpp), median(as), rounds, median(ratio), *rmin, *rmax);
  }
  return 0;
}
#else
int main() {
  std::printf("unsupported: needs x86-64 with AVX-512 (build with envit::arch) and GCC-style inline assembly\n");
  return 0;
}
#endif
