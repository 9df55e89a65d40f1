# Label `portability` (when the tools are installed): the default build on older CPUs and on ARM64.
#   portability_haswell / portability_nehalem: a short training and evaluation by the `envit`
#     program under qemu-x86_64 -cpu Haswell (AVX2, no AVX-512) and -cpu Nehalem (SSE4.2 only):
#     exit 0, no signal (tests/portability/qemu_train_eval.sh). Only for builds without ENVIT_ARCH
#     (with it the program requires that CPU level by design).
#   portability_arm64: scripts/cross_arm64.sh — the kernel test subset and the `envit` program
#     cross-built with g++-aarch64-linux-gnu and run under qemu-aarch64 (the same short training and
#     evaluation, two threads; its own build tree in <build>/arm64).
#   portability_train_eval: in a cross build (cmake/toolchain-aarch64.cmake), that training and
#     evaluation through the build's emulator; scripts/cross_arm64.sh runs it there.
set(envit_fmnist /usr/share/datasets/fashion-mnist)
find_program(ENVIT_QEMU_X86_64 qemu-x86_64)
if(ENVIT_QEMU_X86_64 AND ENVIT_BUILD_EXAMPLES AND NOT ENVIT_ARCH AND NOT ENVIT_SANITIZE
   AND CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$" AND EXISTS ${envit_fmnist}/train-images-idx3-ubyte.gz)
  foreach(cpu Haswell Nehalem)
    string(TOLOWER ${cpu} name)
    if(cpu STREQUAL "Haswell" AND ENVIT_DISPATCH)
      set(set avx2)
    else()
      set(set baseline)
    endif()
    add_test(NAME portability_${name}
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/portability/qemu_train_eval.sh ${ENVIT_QEMU_X86_64} ${cpu}
                     $<TARGET_FILE:envit_cli> ${CMAKE_CURRENT_BINARY_DIR}/portability-${name} ${envit_fmnist} ${set})
    set_tests_properties(portability_${name} PROPERTIES LABELS portability TIMEOUT 900)
  endforeach()
endif()
if(CMAKE_CROSSCOMPILING_EMULATOR AND ENVIT_BUILD_EXAMPLES AND EXISTS ${envit_fmnist}/train-images-idx3-ubyte.gz)
  envit_program(envit envit_cli)
  add_test(NAME portability_train_eval
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/portability/qemu_train_eval.sh - ${CMAKE_SYSTEM_PROCESSOR} ${envit}
                   ${CMAKE_CURRENT_BINARY_DIR}/portability-${CMAKE_SYSTEM_PROCESSOR} ${envit_fmnist} baseline 2)
  set_tests_properties(portability_train_eval PROPERTIES LABELS portability TIMEOUT 900)
endif()
find_program(ENVIT_AARCH64_CXX aarch64-linux-gnu-g++)
find_program(ENVIT_QEMU_AARCH64 qemu-aarch64)
if(ENVIT_AARCH64_CXX AND ENVIT_QEMU_AARCH64 AND NOT CMAKE_CROSSCOMPILING AND NOT ENVIT_SANITIZE
   AND NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
  add_test(NAME portability_arm64 COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/cross_arm64.sh ${CMAKE_BINARY_DIR}/arm64)
  set_tests_properties(portability_arm64 PROPERTIES LABELS portability TIMEOUT 1800 RUN_SERIAL TRUE)
endif()
