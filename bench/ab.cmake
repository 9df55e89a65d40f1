# envit_ab: two builds of the library timed against each other in one process (bench/ab/main.cpp).
# Here both sides are the current tree (a self-check); bench/ab_compare.sh builds it from two git
# revisions. Each side is its own object library with the namespace renamed, on the header-only
# compile-time kernel path (envit::dispatch's kernel sets live in namespace envit, which a renamed
# side cannot reach), with -march=${ENVIT_ARCH} when that is set.
foreach(side ab_a ab_b)
  add_library(envit_${side} OBJECT ab/side.cpp)
  target_compile_definitions(envit_${side} PRIVATE ENVIT_AB_SIDE=${side})
  target_link_libraries(envit_${side} PRIVATE envit::envit)
  if(ENVIT_ARCH)
    target_compile_options(envit_${side} PRIVATE -march=${ENVIT_ARCH})
  endif()
endforeach()
add_executable(envit_ab ab/main.cpp $<TARGET_OBJECTS:envit_ab_a> $<TARGET_OBJECTS:envit_ab_b>)
target_link_libraries(envit_ab PRIVATE envit::envit envit::cli)
if(ENVIT_ARCH)
  target_compile_options(envit_ab PRIVATE -march=${ENVIT_ARCH})
endif()
if(ENVIT_BUILD_TESTS)
  # Two separately compiled copies of the library in one process must give bitwise the same
  # logits and trained parameters (exit status 1 otherwise); also keeps the tool building.
  add_test(NAME "envit_ab: two copies of the library agree bitwise (latency)"
           COMMAND envit_ab --mode latency --pairs 1 --iters 1)
  add_test(NAME "envit_ab: two copies of the library agree bitwise (training, p_M 0.3)"
           COMMAND envit_ab --mode train --batch 8 --p-max 0.3 --pairs 1 --iters 1)
  add_test(NAME "envit_ab: bad flag value is a usage error (exit 2)"
           COMMAND ${CMAKE_COMMAND} -DCMD=$<TARGET_FILE:envit_ab> "-DARGS=--mode|fast" -DRC=2
                   "-DERR=envit_ab: error: --mode: fast not in .*\nUsage: envit_ab \\[OPTIONS\\]"
                   -P ${PROJECT_SOURCE_DIR}/tests/cli/run_check.cmake)
endif()
