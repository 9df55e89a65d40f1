# GEMM (kernels/gemm.hpp, gemm_packed.hpp, dispatch.hpp).
# test_gemm: linked with envit::dispatch (when built; its discovered cases run the best set) and run
# once more per lower kernel set the host can run (gemm_isa_<set>: the whole executable with
# ENVIT_ISA=<set>), so every set passes every GEMM test on this machine.
# test_gemm_native: the header-only compile-time path with -march=x86-64-v4 (the AVX-512 tile
# without dispatch), built only when the host can run it, and not in the sanitizer build: there the
# dispatched AVX-512 set runs the same kernel source (kernels/gemm_packed.hpp), and CI time is short.
envit_add_test(test_gemm kernels/test_gemm.cpp)
envit_test_kernel_sets(test_gemm gemm)
# The object files of the x86-64 kernel sets define only symbols of their own instruction set.
foreach(set avx2 avx512 avx512_bf16 amx)
  if(TARGET envit_kernels_${set})
    add_test(NAME dispatch_symbols_${set}
             COMMAND ${CMAKE_COMMAND} -DNM=${CMAKE_NM} "-DOBJECTS=$<TARGET_OBJECTS:envit_kernels_${set}>"
                     -DTAG=isa_${set} -DSET=${set} -P ${PROJECT_SOURCE_DIR}/cmake/CheckKernelSymbols.cmake)
    set_tests_properties(dispatch_symbols_${set} PROPERTIES LABELS kernels)
  endif()
endforeach()
if(ENVIT_HOST_X86_64_V4 AND NOT ENVIT_SANITIZE)
  envit_add_test(test_gemm_native kernels/test_gemm.cpp)
  # GCC 12 reports -Wmaybe-uninitialized inside Eigen's AVX-512 packet code (_mm512_undefined_ps).
  target_compile_options(test_gemm_native PRIVATE -march=x86-64-v4 -Wno-maybe-uninitialized -Wno-uninitialized)
endif()
# test_gemm_bf16: the BF16 product (Precision::bf16) of each kernel set, one ctest entry per set
# (gemm_bf16_<set>, the whole executable with ENVIT_ISA=<set>). A set this CPU cannot run makes the
# executable exit with 77 before any test, which ctest reports as skipped. Without envit::dispatch:
# one entry, the compile-time set.
add_executable(test_gemm_bf16 kernels/test_gemm_bf16.cpp alloc_counter.cpp)
target_link_libraries(test_gemm_bf16 PRIVATE envit::envit envit_catch_main)
target_include_directories(test_gemm_bf16 PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_options(test_gemm_bf16 PRIVATE -Wall -Wextra)
if(TARGET envit_dispatch)
  target_link_libraries(test_gemm_bf16 PRIVATE envit::dispatch)
  set(envit_bf16_test_sets amx avx512_bf16 avx512 avx2 baseline)
  if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set(envit_bf16_test_sets baseline)
  endif()
  foreach(set ${envit_bf16_test_sets})
    add_test(NAME gemm_bf16_${set} COMMAND test_gemm_bf16)
    set_tests_properties(gemm_bf16_${set} PROPERTIES ENVIRONMENT "ENVIT_ISA=${set}" SKIP_RETURN_CODE 77
                         LABELS kernels)
  endforeach()
  # avx512 vs avx512_bf16 / amx FP32 results, bitwise: skipped where the CPU has neither BF16 set.
  add_test(NAME gemm_fp32_avx512_family COMMAND test_gemm_bf16 "[family]")
  set_tests_properties(gemm_fp32_avx512_family PROPERTIES ENVIRONMENT "ENVIT_TEST_SKIP_EMPTY=1"
                       SKIP_RETURN_CODE 77 LABELS kernels)
else()
  add_test(NAME gemm_bf16 COMMAND test_gemm_bf16)
endif()
# test_gemm_bf16_native: the header-only compile-time path built with -march=x86-64-v4 -mavx512bf16
# (the vdpbf16ps product without dispatch), when the host runs it; not in the sanitizer build.
if(ENVIT_HOST_AVX512_BF16 AND NOT ENVIT_SANITIZE)
  add_executable(test_gemm_bf16_native kernels/test_gemm_bf16.cpp alloc_counter.cpp)
  target_link_libraries(test_gemm_bf16_native PRIVATE envit::envit envit_catch_main)
  target_include_directories(test_gemm_bf16_native PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_options(test_gemm_bf16_native PRIVATE -Wall -Wextra -march=x86-64-v4 -mavx512bf16
                         -Wno-maybe-uninitialized -Wno-uninitialized)
  add_test(NAME gemm_bf16_native COMMAND test_gemm_bf16_native)
  set_tests_properties(gemm_bf16_native PROPERTIES LABELS kernels)
endif()
# test_gemm_int8: the INT8 product (Precision::int8, PackedWeight::pack_int8) of each kernel set, one
# ctest entry per set (gemm_int8_<set>, ENVIT_ISA=<set>; a set this CPU cannot run: skipped), plus
# the portable kernel compiled into the test itself, which every entry runs.
add_executable(test_gemm_int8 kernels/test_gemm_int8.cpp)
target_link_libraries(test_gemm_int8 PRIVATE envit::envit envit_catch_main)
target_include_directories(test_gemm_int8 PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_options(test_gemm_int8 PRIVATE -Wall -Wextra)
if(TARGET envit_dispatch)
  target_link_libraries(test_gemm_int8 PRIVATE envit::dispatch)
  foreach(set ${envit_bf16_test_sets})
    add_test(NAME gemm_int8_${set} COMMAND test_gemm_int8)
    set_tests_properties(gemm_int8_${set} PROPERTIES ENVIRONMENT "ENVIT_ISA=${set}" SKIP_RETURN_CODE 77
                         LABELS kernels)
  endforeach()
else()
  add_test(NAME gemm_int8 COMMAND test_gemm_int8)
endif()
# test_gemm_int8_native: the header-only compile-time path built with -march=x86-64-v4 -mavx512bf16
# -mavx512vnni (the vpdpbusd product without dispatch), when the host runs it; not in the sanitizer
# build.
if(ENVIT_HOST_AVX512_BF16 AND NOT ENVIT_SANITIZE)
  add_executable(test_gemm_int8_native kernels/test_gemm_int8.cpp)
  target_link_libraries(test_gemm_int8_native PRIVATE envit::envit envit_catch_main)
  target_include_directories(test_gemm_int8_native PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_options(test_gemm_int8_native PRIVATE -Wall -Wextra -march=x86-64-v4 -mavx512bf16 -mavx512vnni
                         -Wno-maybe-uninitialized -Wno-uninitialized)
  add_test(NAME gemm_int8_native COMMAND test_gemm_int8_native)
  set_tests_properties(gemm_int8_native PROPERTIES LABELS kernels)
endif()
