# scripts/study.sh end to end in --quick mode: trains and evaluates both settings for vit-ee and
# envit plus a scheme the program does not know, checks the report, then reruns and checks that every
# run came from the cache. Needs the envit program, so only when examples are built. Label: study.
# study_paper_path: the paper-scale design (--design paper: --init a Hugging Face directory, an image
# folder) on a tiny generated model and folder, well under a minute. Label: study.
if(ENVIT_BUILD_EXAMPLES)
  envit_program(envit envit_cli)
  add_test(NAME study_quick
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/study_quick.sh ${CMAKE_SOURCE_DIR}
                   ${envit} ${CMAKE_CURRENT_BINARY_DIR}/study-quick)
  set_tests_properties(study_quick PROPERTIES LABELS study)
  envit_test_timeout(study_quick 400)
  if(EXISTS /usr/share/datasets/fashion-mnist)
    envit_program(make_folder make_image_folder)
    add_test(NAME study_paper_path
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/study_paper_path.sh ${CMAKE_SOURCE_DIR}
                     ${envit} ${make_folder} ${CMAKE_CURRENT_BINARY_DIR}/study-paper-path)
    set_tests_properties(study_paper_path PROPERTIES LABELS study)
    envit_test_timeout(study_paper_path 300)
  endif()
endif()
