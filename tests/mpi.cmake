# Data-parallel `envit train` under mpirun (examples/envit/dist.hpp): parity with one process,
# resume on a different number of ranks, faults, and parity of the options whose loss uses batch
# statistics (lgvit, cosee, --reduction remaining, byot mmrazor). Only with ENVIT_MPI and mpirun;
# label `mpi`. Not in the ASan pass (scripts/test.sh configures it with ENVIT_MPI=OFF). About 45 s
# in all on 2 cores.
if(ENVIT_BUILD_EXAMPLES AND ENVIT_MPI AND ENVIT_MPIEXEC)
  add_executable(mpi_compare_runs mpi/compare_runs.cpp)
  target_link_libraries(mpi_compare_runs PRIVATE envit::envit)
  target_compile_options(mpi_compare_runs PRIVATE -Wall -Wextra)
  foreach(mode parity resume fault lgvit cosee reduction mmrazor)
    add_test(NAME "mpi: ${mode}"
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/run.sh ${mode} $<TARGET_FILE:envit_cli>
                     $<TARGET_FILE:mpi_compare_runs> ${ENVIT_MPIEXEC} ${CMAKE_CURRENT_BINARY_DIR}/mpi_${mode})
    set_tests_properties("mpi: ${mode}" PROPERTIES LABELS mpi TIMEOUT 120 RUN_SERIAL ON)
  endforeach()
endif()
