# Cross-compiling envit for 64-bit ARM Linux with Debian's g++-aarch64-linux-gnu, the target's
# zlib from zlib1g-dev:arm64 (multiarch, /usr/lib/aarch64-linux-gnu), and the header-only
# dependencies (Eigen, xsimd, xtl, Catch2) from the build machine's /usr. Tests and the
# build-time test discovery run under qemu-aarch64 (package qemu-user).
# Usage: cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake
#   (scripts/cross_arm64.sh does the whole build and test run).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# The target's libraries (libz, libgomp) from the cross sysroot and the multiarch directory; CMake
# package files and headers may come from the build machine (they are architecture independent).
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# Debian ships xsimd's (header-only) CMake package under the build machine's multiarch directory.
if(NOT xsimd_DIR)
  file(GLOB envit_host_xsimd /usr/lib/*-linux-gnu/cmake/xsimd/xsimdConfig.cmake)
  if(envit_host_xsimd)
    list(GET envit_host_xsimd 0 envit_host_xsimd)
    get_filename_component(envit_host_xsimd ${envit_host_xsimd} DIRECTORY)
    set(xsimd_DIR ${envit_host_xsimd} CACHE PATH "xsimd CMake package (architecture independent)" FORCE)
  endif()
endif()
find_program(ENVIT_QEMU_AARCH64 qemu-aarch64)
# The guest loads the cross toolchain's C runtime, the same glibc build as its dynamic loader (the
# multiarch libc6:arm64 that zlib1g-dev:arm64 installs is another build; docs/portability.md).
if(ENVIT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${ENVIT_QEMU_AARCH64} -L /usr/aarch64-linux-gnu
      -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib)
endif()
