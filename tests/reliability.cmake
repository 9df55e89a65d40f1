# Reliability: splits checked against the model, non-finite values located, write errors (file-size
# limit, full file system) that leave the previous checkpoint intact, stop signals, the output
# directory lock, and regression inputs from fuzzing. Program-level fault tests (interrupt, kill -9
# and resume, disk full, second trainer) need the `envit` program: registered with the examples,
# label `fault`, run in both passes of scripts/test.sh (Release and ASan + UBSan).
envit_add_test(reliability reliability/test_faults.cpp reliability/test_fuzz_regressions.cpp alloc_counter.cpp)
if(ENVIT_BUILD_EXAMPLES)
  add_executable(envit_fault_data reliability/fault_data.cpp)
  target_link_libraries(envit_fault_data PRIVATE envit::envit)
  envit_program(envit envit_cli)
  envit_program(fault_data envit_fault_data)
  foreach(t geometry interrupt kill_resume disk_full lock)
    add_test(NAME "fault: ${t}" COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/reliability/faults.sh ${t}
             ${envit} ${fault_data})
    set_tests_properties("fault: ${t}" PROPERTIES LABELS fault)
    envit_test_timeout("fault: ${t}" 300)
  endforeach()
endif()
