# cmake -DNM=nm -DOBJECTS=<objects> -DTAG=isa_<set> -DSET=<set> -P CheckKernelSymbols.cmake (test dispatch_symbols_<set>)
# Fails when a kernel-set object file defines a global or weak symbol outside its instruction set's
# namespace (TAG) or its gemm_kernels_<SET>() entry point: the linker could then hand that copy,
# compiled with the set's -march, to code running on a CPU without those instructions. Also fails
# when one of the set's kernels (the packed GEMM and every row kernel of kernels/vec_kernels.hpp)
# is not defined there, inside TAG.
execute_process(COMMAND ${NM} -C --defined-only ${OBJECTS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc)
  message(FATAL_ERROR "${NM} failed on ${OBJECTS}: ${err}")
endif()
string(REPLACE "\n" ";" lines "${out}")
set(checked 0)
set(bad "")
foreach(line IN LISTS lines)
  # "<address> <type> <name>": global (upper case) and unique (u) symbols; local ones cannot clash.
  if(NOT line MATCHES "^[0-9a-f]* ([A-Zu]) (.*)$")
    continue()
  endif()
  set(name "${CMAKE_MATCH_2}")
  math(EXPR checked "${checked} + 1")
  if(name MATCHES "${TAG}::" OR name MATCHES "gemm_kernels_${SET}\\(\\)" OR name STREQUAL "DW.ref.__gxx_personality_v0")
    continue()
  endif()
  string(APPEND bad "  ${line}\n")
endforeach()
foreach(kernel gemm_pk::${TAG}::gemm_packed_run vec::${TAG}::gelu_forward vec::${TAG}::gelu_backward
               vec::${TAG}::gelu_grad_mul vec::${TAG}::bias_gelu_rect vec::${TAG}::bias_residual_rect
               vec::${TAG}::layernorm_forward vec::${TAG}::layernorm_backward vec::${TAG}::softmax_forward
               vec::${TAG}::softmax_backward vec::${TAG}::log_softmax_forward vec::${TAG}::log_softmax_backward)
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
