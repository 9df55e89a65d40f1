// envit/kernels/isa.hpp — ENVIT_KERNEL_ISA_NS: the name of an inline namespace that tags code
// compiled with SIMD instructions by the instruction set of its translation unit (isa_amx,
// isa_avx512_bf16, isa_avx512, isa_avx2, isa_avx, isa_sse4, isa_neon64, isa_base). Kernel code
// lives inside it, so translation units built with different flags (envit::dispatch's kernel sets, or a program mixing -march
// levels) never share a symbol, and the linker can never hand one of them a copy compiled for
// instructions its CPU may lack. Callers never name it.
#pragma once

#if defined(__AMX_TILE__)
#define ENVIT_KERNEL_ISA_NS isa_amx
#elif defined(__AVX512BF16__)
#define ENVIT_KERNEL_ISA_NS isa_avx512_bf16
#elif defined(__AVX512F__)
#define ENVIT_KERNEL_ISA_NS isa_avx512
#elif defined(__AVX2__)
#define ENVIT_KERNEL_ISA_NS isa_avx2
#elif defined(__AVX__)
#define ENVIT_KERNEL_ISA_NS isa_avx
#elif defined(__SSE4_1__)
#define ENVIT_KERNEL_ISA_NS isa_sse4
#elif defined(__aarch64__)
#define ENVIT_KERNEL_ISA_NS isa_neon64
#else
#define ENVIT_KERNEL_ISA_NS isa_base
#endif
