# The packaging proof: a consumer project builds against envit via find_package (after
# `cmake --install`) and via add_subdirectory.
foreach(mode find_package add_subdirectory)
  add_test(NAME packaging_${mode}
           COMMAND ${CMAKE_COMMAND} -DENVIT_SOURCE_DIR=${PROJECT_SOURCE_DIR}
                   -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/consumer-${mode} -DMODE=${mode}
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/consumer/run.cmake)
  set_tests_properties(packaging_${mode} PROPERTIES LABELS packaging TIMEOUT 900)
endforeach()
