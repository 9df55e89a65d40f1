// envit/kernels/gemm_types.hpp — the vocabulary shared by the GEMM front end (gemm.hpp), the kernel
// sets (dispatch.hpp), the packed float kernel (gemm_packed.hpp) and the float row kernels
// (vec_kernels.hpp): operand transposition, the fused element-wise pass over C (a GEMM epilogue)
// and the tables of one kernel set (FP32 and BF16 products, row kernels).
// Not here: any arithmetic.
#pragma once
#include <cstddef>
#include <cstdint>

namespace envit {

enum class Trans { N, T };

// An element-wise pass over C fused into the GEMM (bias, residual, GELU, ...): called as
// epi(r0, r1, c0, c1) on rectangles of C (absolute row/column ranges of the whole call) once their
// values are final, each exactly once and from the thread that computed it. The packed backend calls
// it per block of <= MC rows while that block is still in L2; the Eigen backend once per thread
// tile. It must only touch its rectangle (and read anything else). Results equal running the same
// pass after the GEMM.
struct GemmEpilogue {
  void (*fn)(const void* ctx, std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t c0, std::ptrdiff_t c1) = nullptr;
  const void* ctx = nullptr;
  void operator()(std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t c0, std::ptrdiff_t c1) const {
    fn(ctx, r0, r1, c0, c1);
  }
};
// Wraps a callable f(r0, r1, c0, c1) (which must outlive the GEMM call).
template <class F>
GemmEpilogue make_epilogue(const F& f) {
  return {[](const void* c, std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t c0, std::ptrdiff_t c1) {
            (*static_cast<const F*>(c))(r0, r1, c0, c1);
          },
          &f};
}

// The float element-wise and row kernels of one instruction set (vec::vec_kernel_set() in
// vec_kernels.hpp, which documents each; the ops call them through kernels/dispatch.hpp). Serial;
// rows contiguous (row stride = row length) unless a leading dimension ld is given.
struct VecKernelSet {
  void (*gelu_forward)(float* y, const float* x, std::ptrdiff_t n) = nullptr;
  void (*gelu_backward)(float* dx, const float* dy, const float* x, std::ptrdiff_t n) = nullptr;
  void (*gelu_grad_mul)(float* d, const float* h, std::ptrdiff_t n) = nullptr;
  void (*bias_gelu_rect)(float* h, float* a, const float* b, std::ptrdiff_t ld, std::ptrdiff_t r0, std::ptrdiff_t r1,
                         std::ptrdiff_t c0, std::ptrdiff_t c1) = nullptr;
  void (*bias_residual_rect)(float* y, const float* b, const float* res, std::ptrdiff_t ld, std::ptrdiff_t r0,
                             std::ptrdiff_t r1, std::ptrdiff_t c0, std::ptrdiff_t c1) = nullptr;
  void (*layernorm_forward)(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                            const float* beta, std::ptrdiff_t rows, std::ptrdiff_t D, float eps) = nullptr;
  void (*layernorm_backward)(float* dx, const float* base, const float* extra, float* pg, float* pb,
                             const float* dy, const float* x, const float* mean, const float* rstd,
                             const float* gamma, std::ptrdiff_t rows, std::ptrdiff_t D) = nullptr;
  void (*softmax_forward)(float* y, const float* x, std::ptrdiff_t rows, std::ptrdiff_t n, float scale) = nullptr;
  void (*softmax_backward)(float* dx, const float* dy, const float* y, std::ptrdiff_t rows, std::ptrdiff_t n,
                           float scale, bool accumulate) = nullptr;
  void (*log_softmax_forward)(float* y, const float* x, std::ptrdiff_t rows, std::ptrdiff_t n, float scale) = nullptr;
  void (*log_softmax_backward)(float* dx, const float* dy, const float* y, std::ptrdiff_t rows, std::ptrdiff_t n,
                               float scale) = nullptr;
};

// One kernel set: the packed float GEMM of one instruction set (gemm_packed_kernels<Arch>() in
// gemm_packed.hpp), its BF16 product, and, in vec, the float row kernels compiled for the same
// instruction set, so that one choice per process covers all three.
//   run:  C(M,N) = alpha * op(A) op(B) + beta * C, single-threaded, as gemm_packed_run; bpre: op(B)
//         pre-packed by pack_weight_t (then B is not read), else nullptr; epi (or nullptr) is called
//         with coordinates offset by (row_off, col_off).
//   pack_weight_t: W (n, k) row-major into round_up(n, nr) * k floats (panels of nr columns).
//   run_bf16: the same contract as run (single-threaded, beta == 0 never reads C, alpha == 0 or
//         K == 0 reads neither A nor B, epilogue, offsets) for the BF16 product: every element of
//         op(A) and op(B) rounded to BF16 (round to nearest even, core/bf16.hpp), products summed in
//         FP32, then C = alpha * sum + beta * C in FP32. bpre: op(B) pre-packed by
//         pack_weight_t_bf16 (a byte layout of the set's own), else nullptr. A row of C depends only
//         on its own row of op(A) (no in-place A, no row-dependent blocking), as for run.
//   packed_weight_bf16_bytes(n, k): bytes pack_weight_t_bf16 writes for W (n, k); the layout is
//         column panels of bf16_nr columns over the whole k, so the panels of columns n0.. (n0 a
//         multiple of bf16_nr) start at byte packed_weight_bf16_bytes(n0, k).
//   pack_weight_t_bf16: W (n, k) row-major into that layout (dst 64-byte aligned).
struct GemmKernelSet {
  const char* name = nullptr;  // "amx", "avx512_bf16", "avx512", "avx2", "baseline", or the compile-time arch's name
  int mr = 0, nr = 0;          // register tile: rows x columns of C
  int kc = 0;                  // K block; a row-major A with K and lda <= kc is read in place
  void (*run)(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, float alpha,
              const float* A, std::ptrdiff_t lda, const float* B, std::ptrdiff_t ldb, float beta, float* C,
              std::ptrdiff_t ldc, const float* bpre, const GemmEpilogue* epi, std::ptrdiff_t row_off,
              std::ptrdiff_t col_off) = nullptr;
  void (*pack_weight_t)(float* dst, const float* W, std::ptrdiff_t n, std::ptrdiff_t k) = nullptr;
  VecKernelSet vec;
  // The BF16 product. bf16: how it runs: "amx" (tile dot products), "avx512_bf16" (vdpbf16ps) or
  // "emulated" (this set's FP32 micro-kernel on operands rounded to BF16 while packing: the values
  // are then exact in FP32, so only the summation order differs from the native sets).
  const char* bf16 = nullptr;
  bool bf16_native = false;    // true for "amx" and "avx512_bf16"
  int bf16_mr = 0, bf16_nr = 0;  // the BF16 register tile (gemm.hpp's thread tiles start at multiples)
  void (*run_bf16)(Trans ta, Trans tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, float alpha,
                   const float* A, std::ptrdiff_t lda, const float* B, std::ptrdiff_t ldb, float beta, float* C,
                   std::ptrdiff_t ldc, const void* bpre, const GemmEpilogue* epi, std::ptrdiff_t row_off,
                   std::ptrdiff_t col_off) = nullptr;
  std::size_t (*packed_weight_bf16_bytes)(std::ptrdiff_t n, std::ptrdiff_t k) = nullptr;
  void (*pack_weight_t_bf16)(void* dst, const float* W, std::ptrdiff_t n, std::ptrdiff_t k) = nullptr;
  // Peak probes (bench/bench_gemm.cpp's peak-FLOP references), one thread each: `iters` rounds of
  // independent chains of this set's own multiply-add instruction, compiled with its flags.
  // probe_fma: FP32 FMA at the set's vector width; probe_bf16: vdpbf16ps (avx512_bf16) or
  // tdpbf16ps on four accumulator tiles (amx), nullptr for an emulated BF16 product. x, y: operands
  // (not compile-time constants, so nothing folds); *flops: the flops done. Returns a value that
  // depends on every chain.
  float (*probe_fma)(long iters, float x, float y, double* flops) = nullptr;
  float (*probe_bf16)(long iters, float x, float y, double* flops) = nullptr;
  // The INT8 product (kernels/gemm_int8.hpp's contract and weight layout): int8: how it runs,
  // "avx512_vnni" (vpdpbusd, kernels/gemm_int8_vnni.hpp) or "portable" (plain C++ on int32).
  //   run_int8: acc = A(M,K) W^T over int8 A (row-major, lda bytes, rows zero-padded to a multiple
  //         of 4) and W pre-packed by pack_weight_t_int8 (bpre: the panels from column 0 of this
  //         call's columns), INT32 accumulation, exact; written as INT32 to Ci (when not nullptr)
  //         or as C = float(acc) * a_scale[i] * w_scale[j]; then epi (float output only), with
  //         coordinates offset by (row_off, col_off). Single-threaded; rows independent.
  //   packed_weight_int8_bytes(n, k): bytes of the packed W (n, k); panels of int8_nr columns, the
  //         panels of columns n0.. (n0 a multiple of int8_nr) start at packed_weight_int8_bytes(n0, k).
  //   probe_int8: vpdpbusd chains (*flops: integer multiply-adds x 2), nullptr for "portable".
  const char* int8 = nullptr;
  bool int8_native = false;
  int int8_mr = 0, int8_nr = 0;
  void (*run_int8)(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, const std::int8_t* A, std::ptrdiff_t lda,
                   const float* a_scale, const void* bpre, const float* w_scale, float* C, std::int32_t* Ci,
                   std::ptrdiff_t ldc, const GemmEpilogue* epi, std::ptrdiff_t row_off, std::ptrdiff_t col_off) = nullptr;
  std::size_t (*packed_weight_int8_bytes)(std::ptrdiff_t n, std::ptrdiff_t k) = nullptr;
  void (*pack_weight_t_int8)(void* dst, const std::int8_t* W, std::ptrdiff_t n, std::ptrdiff_t k) = nullptr;
  float (*probe_int8)(long iters, float x, float y, double* flops) = nullptr;
};

}  // namespace envit
