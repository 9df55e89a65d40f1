# cmake -DNM=nm -DOBJECTS=<objects> -DTAG=isa_<set> -DSET=<set> -P CheckKernelSymbols.cmake (test dispatch_symbols_<set>)
# Fails when a kernel-set object file defines a global or weak symbol outside its instruction set's
# namespace (TAG) or its gemm_kernels_<SET>() entry point: the linker could then hand that copy,
# compiled with the set's -march, to code running on a CPU without those instructions. Also fails
# when one of the set's kernels (the packed GEMM and every row kernel of kernels/vec_kernels.hpp;
# for avx512_bf16 and amx, which take their FP32 code from the avx512 set, the BF16 product and its
# weight packing) is not defined there, inside TAG.
execute_process(COMMAND ${NM} -C --defined-only ${OBJECTS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc)
  message(FATAL_ERROR "${NM} failed on ${OBJECTS}: ${err}")
endif()
string(REPLACE "\n" ";" lines "${out}")
set(checked 0)
set(bad "")
if(SET STREQUAL "avx2")
  set(own_arch "xsimd::fma3<xsimd::avx2>")
  set(other_arch "avx512|xsimd::sse|xsimd::generic>")
elseif(SET STREQUAL "avx512_bf16" OR SET STREQUAL "amx")
  # No xsimd code at all: the avx512 set already defines its AVX-512 instantiations.
  set(own_arch "^$")
  set(other_arch "xsimd::")
else()
  set(own_arch "xsimd::avx512[a-z]*")
  set(other_arch "xsimd::avx2|xsimd::fma3|xsimd::sse")
endif()
foreach(line IN LISTS lines)
  # "<address> <type> <name>": global (upper case) and unique (u) symbols; local ones cannot clash.
  if(NOT line MATCHES "^[0-9a-f]* ([A-Zu]) (.*)$")
    continue()
  endif()
  set(type "${CMAKE_MATCH_1}")
  set(name "${CMAKE_MATCH_2}")
  math(EXPR checked "${checked} + 1")
  if(name MATCHES "${TAG}::" OR name MATCHES "gemm_kernels_${SET}\\(\\)" OR name STREQUAL "DW.ref.__gxx_personality_v0")
    continue()
  endif()
  # A weak xsimd template instantiated for this set's own arch type only (left out of line by the
  # sanitizer build, e.g. xsimd::kernel::detail::exp<..., fma3<avx2>>): only a translation unit
  # compiled for that arch can define it, and no other kernel set does (each set's test refuses
  # the other sets' arch types), so the linker has no other copy to pick.
  if(type STREQUAL "W" AND name MATCHES "^[^(]*xsimd::" AND name MATCHES "${own_arch}"
     AND NOT name MATCHES "${other_arch}")
    continue()
  endif()
  string(APPEND bad "  ${line}\n")
endforeach()
if(SET STREQUAL "avx512_bf16")
  set(kernels gemm_bf16::${TAG}::micro_kernel gemm_bf16::${TAG}::run gemm_bf16::${TAG}::pack_weight_t)
elseif(SET STREQUAL "amx")
  set(kernels gemm_bf16_amx::${TAG}::block gemm_bf16_amx::${TAG}::run gemm_bf16_amx::${TAG}::pack_weight_t)
else()
  set(kernels gemm_pk::${TAG}::gemm_packed_run vec::${TAG}::gelu_forward vec::${TAG}::gelu_backward
      vec::${TAG}::gelu_grad_mul vec::${TAG}::bias_gelu_rect vec::${TAG}::bias_residual_rect
      vec::${TAG}::layernorm_forward vec::${TAG}::layernorm_backward vec::${TAG}::softmax_forward
      vec::${TAG}::softmax_backward vec::${TAG}::log_softmax_forward vec::${TAG}::log_softmax_backward)
endif()
foreach(kernel ${kernels})
  if(NOT out MATCHES "${kernel}[<(]")
    string(APPEND bad "  missing: ${kernel}\n")
  endif()
endforeach()
if(checked LESS 5)
  message(FATAL_ERROR "only ${checked} global symbols in ${OBJECTS}: not the kernel set's object file?")
endif()
if(bad)
  message(FATAL_ERROR "symbols of the ${SET} kernel set outside namespace ${TAG}, or kernels missing:\n${bad}")
endif()
message(STATUS "${checked} global symbols, all in ${TAG} or gemm_kernels_${SET}(); every kernel defined")
