# The documented fine-tuning path end to end through the `envit` program (tests/finetune_e2e.sh):
# pretrain -> convert --to hf -> train --init at another image size -> image-folder fine-tune + eval.
# Needs the program (examples) and Fashion-MNIST; seconds of work.
add_executable(make_image_folder tools/make_image_folder.cpp)
target_link_libraries(make_image_folder PRIVATE envit::envit)
if(ENVIT_BUILD_EXAMPLES AND EXISTS /usr/share/datasets/fashion-mnist)
  envit_program(envit envit_cli)
  envit_program(make_folder make_image_folder)
  add_test(NAME finetune_e2e
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/finetune_e2e.sh ${envit} ${make_folder}
                   ${CMAKE_CURRENT_BINARY_DIR}/finetune_e2e)
  set_tests_properties(finetune_e2e PROPERTIES LABELS e2e)
  envit_test_timeout(finetune_e2e 600)
endif()
