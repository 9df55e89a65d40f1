# LGViT (issue 17): its heads, parity with the PyTorch reference, and the training scheme.
envit_add_test(test_lgvit_model test_lgvit_model.cpp)
# The program end to end (seconds): needs the examples and Fashion-MNIST.
if(ENVIT_BUILD_EXAMPLES AND EXISTS /usr/share/datasets/fashion-mnist)
  envit_program(envit envit_cli)
  add_test(NAME lgvit_cli_train_eval
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/lgvit_cli_test.sh ${envit}
                   ${CMAKE_CURRENT_BINARY_DIR}/lgvit_cli_run)
  set_tests_properties(lgvit_cli_train_eval PROPERTIES LABELS "cli")
  envit_test_timeout(lgvit_cli_train_eval 300)
endif()
envit_add_test(test_lgvit_parity test_lgvit_parity.cpp)
