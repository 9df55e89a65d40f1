# ONNX export (issue 31): the protobuf writer, and the exported graphs checked by onnx.checker
# (python3-onnx) and run in ONNX Runtime (npm onnxruntime-node) against envit. A missing tool makes
# its test SKIPPED (exit 77), not passed. onnx_checker_vit_b16 (two 344 MB graphs through
# onnx.checker: minutes) carries the label slow: `ctest -LE slow` leaves it out.
envit_add_test(test_protobuf_writer onnx/test_protobuf_writer.cpp)
if(ENVIT_BUILD_EXAMPLES AND EXISTS /usr/share/datasets/fashion-mnist)
  add_executable(onnx_reference onnx/onnx_reference.cpp)
  target_link_libraries(onnx_reference PRIVATE envit::envit envit::arch)
  target_compile_options(onnx_reference PRIVATE -Wall -Wextra)
  envit_program(envit envit_cli)
  envit_program(reference onnx_reference)
  set(script ${CMAKE_CURRENT_SOURCE_DIR}/onnx/onnx_test.sh)
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/onnx_run)
  add_test(NAME onnx_models COMMAND bash ${script} models ${envit} ${reference} ${dir})
  set_tests_properties(onnx_models PROPERTIES FIXTURES_SETUP onnx_models LABELS "cli;onnx")
  envit_test_timeout(onnx_models 300)
  foreach(part checker parity refused)
    add_test(NAME onnx_${part} COMMAND bash ${script} ${part} ${envit} ${reference} ${dir}
                                       ${CMAKE_BINARY_DIR}/onnx_node)
    set_tests_properties(onnx_${part} PROPERTIES FIXTURES_REQUIRED onnx_models SKIP_RETURN_CODE 77
                         LABELS "cli;onnx" RESOURCE_LOCK onnx_run)
    envit_test_timeout(onnx_${part} 600)
  endforeach()
  add_test(NAME onnx_checker_vit_b16 COMMAND bash ${script} checker_b16 ${envit} ${reference} ${dir}_b16)
  set_tests_properties(onnx_checker_vit_b16 PROPERTIES SKIP_RETURN_CODE 77 LABELS "cli;onnx;slow")
  envit_test_timeout(onnx_checker_vit_b16 900)
endif()
