# Kernel sets and architecture flags (see include/envit/kernels/dispatch.hpp).
#
# envit::dispatch — a small static library (installed and exported when ENVIT_DISPATCH is ON): the
#   packed float GEMM and the float row kernels (LayerNorm, softmax, GELU, GEMM epilogues) compiled
#   once per kernel set, each translation unit with its own flags (src/kernels/kernel_set_<set>.cpp:
#   avx512 = -march=x86-64-v4, avx2 = -march=x86-64-v3, baseline = none; avx512_bf16 and amx, the
#   BF16 products on top of avx512's FP32 code: -march=x86-64-v4 -mavx512bf16 [-mamx-tile
#   -mamx-bf16]; AArch64: baseline (NEON) only). Linking it defines ENVIT_DISPATCH, and the headers then
#   pick the best set the CPU has at run time. Without it the headers use the consumer's own flags
#   (compile-time path, no indirection).
# envit::arch — envit's own programs, benchmarks and tests only (not installed): envit::dispatch
#   when ENVIT_DISPATCH is ON, plus -march=${ENVIT_ARCH} when ENVIT_ARCH is set (then the binaries
#   need that CPU level).
add_library(envit_arch INTERFACE)
add_library(envit::arch ALIAS envit_arch)
if(ENVIT_ARCH)
  target_compile_options(envit_arch INTERFACE -march=${ENVIT_ARCH})
endif()

if(ENVIT_DISPATCH)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set(ENVIT_KERNEL_SETS baseline avx2 avx512 avx512_bf16 amx)
  else()
    set(ENVIT_KERNEL_SETS baseline)
  endif()
  set(envit_flags_baseline "")
  set(envit_flags_avx2 -march=x86-64-v3)
  # GCC 12's AVX-512 intrinsics (_mm512_undefined_*) trip -Wmaybe-uninitialized (GCC bug 105593).
  set(envit_flags_avx512 -march=x86-64-v4 -Wno-maybe-uninitialized -Wno-uninitialized)
  set(envit_flags_avx512_bf16 ${envit_flags_avx512} -mavx512bf16 -mavx512vnni)
  set(envit_flags_amx ${envit_flags_avx512} -mavx512bf16 -mavx512vnni -mamx-tile -mamx-bf16)
  add_library(envit_dispatch STATIC)
  add_library(envit::dispatch ALIAS envit_dispatch)
  set_target_properties(envit_dispatch PROPERTIES EXPORT_NAME dispatch POSITION_INDEPENDENT_CODE ON
                        OUTPUT_NAME envit_kernels)
  foreach(set ${ENVIT_KERNEL_SETS})
    # One object library per set: its flags apply to its one translation unit only.
    add_library(envit_kernels_${set} OBJECT src/kernels/kernel_set_${set}.cpp)
    target_link_libraries(envit_kernels_${set} PRIVATE xsimd)
    target_include_directories(envit_kernels_${set} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_compile_features(envit_kernels_${set} PRIVATE cxx_std_20)
    target_compile_options(envit_kernels_${set} PRIVATE ${envit_flags_${set}} -Wall -Wextra)
    # Always -O3, as in Release: below it (Debug, the sanitizer build's -O1) GCC leaves xsimd's
    # arch-templated helpers (exp, erfc, horner) out of line as weak symbols, and the avx512 set's
    # object also instantiates some for fma3<avx2>; the linker may then give the avx2 set the copy
    # compiled with -march=x86-64-v4. Inlined, nothing arch-specific is left to merge
    # (dispatch_symbols_<set> checks this in every build type).
    target_compile_options(envit_kernels_${set} PRIVATE $<$<NOT:$<CONFIG:Release>>:-O3>)
    set_target_properties(envit_kernels_${set} PROPERTIES POSITION_INDEPENDENT_CODE ON)
    target_sources(envit_dispatch PRIVATE $<TARGET_OBJECTS:envit_kernels_${set}>)
  endforeach()
  target_compile_definitions(envit_dispatch INTERFACE ENVIT_DISPATCH=1)
  target_link_libraries(envit_dispatch PUBLIC envit)
  target_link_libraries(envit_arch INTERFACE envit_dispatch)
endif()
