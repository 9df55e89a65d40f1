# The `envit` program (train / eval). Built at <build>/examples/envit.
include(${CMAKE_CURRENT_SOURCE_DIR}/../cmake/EnvitCli.cmake)
add_executable(envit_cli envit/main.cpp envit/train.cpp envit/eval.cpp)
set_target_properties(envit_cli PROPERTIES OUTPUT_NAME envit)
target_link_libraries(envit_cli PRIVATE envit::envit envit::arch envit::cli)
target_compile_options(envit_cli PRIVATE -Wall -Wextra)

if(ENVIT_MPI)  # top-level CMakeLists.txt: data-parallel `mpirun -np R envit train` (examples/envit/dist.hpp)
  target_link_libraries(envit_cli PRIVATE MPI::MPI_CXX)
  target_compile_definitions(envit_cli PRIVATE ENVIT_MPI)
endif()
