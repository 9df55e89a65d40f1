# The `envit` program (train / eval / convert). Built at <build>/examples/envit.
include(${CMAKE_CURRENT_SOURCE_DIR}/../cmake/EnvitCli.cmake)
add_executable(envit_cli envit/main.cpp envit/train.cpp envit/eval.cpp envit/convert.cpp envit/quantize.cpp)
set_target_properties(envit_cli PROPERTIES OUTPUT_NAME envit)
target_link_libraries(envit_cli PRIVATE envit::envit envit::arch envit::cli)
target_compile_options(envit_cli PRIVATE -Wall -Wextra)
# `envit train --scheme beem|cosee` + `envit eval --rule beem|energy` end to end (seconds).
if(ENVIT_BUILD_TESTS)
  envit_program(envit envit_cli)
  add_test(NAME "envit cli: beem and cosee train, eval sweeps and calibrates"
           COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cli_baselines.sh ${envit}
                   ${CMAKE_CURRENT_BINARY_DIR}/cli_baselines)
endif()

if(ENVIT_MPI)  # top-level CMakeLists.txt: data-parallel `mpirun -np R envit train` (examples/envit/dist.hpp)
  target_link_libraries(envit_cli PRIVATE MPI::MPI_CXX)
  target_compile_definitions(envit_cli PRIVATE ENVIT_MPI)
endif()
