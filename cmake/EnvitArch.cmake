# envit::arch — opt-in architecture flags for envit's own examples and benchmarks.
# Consumers of envit::envit never get these unless they link envit::arch themselves.
add_library(envit_arch INTERFACE)
add_library(envit::arch ALIAS envit_arch)
if(ENVIT_ARCH)
  target_compile_options(envit_arch INTERFACE -march=${ENVIT_ARCH})
endif()
