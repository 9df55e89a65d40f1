# envit early-exit inference: MAC counts and eq. 19, exit criteria, simulation and calibration,
# real early exit (compaction, streaming) agreeing exactly with the simulation.
envit_add_test(infer_macs infer/test_infer_macs.cpp)
envit_add_test(infer_criteria infer/test_infer_criteria.cpp infer/test_infer_simulate.cpp infer/test_infer_beem_energy.cpp)
# infer_agreement's float agreement and compaction cases run under every kernel set the host has
# (infer_agreement_isa_<set>): the row kernels' position independence is what keeps compaction
# bitwise equal to the simulation. (The double cases use no kernel set; the sample-chunk case
# takes half a minute and exercises the same property.)
envit_add_test(infer_agreement infer/test_infer_agreement.cpp alloc_counter.cpp)
envit_test_kernel_sets(infer_agreement infer_agreement "[agree][packed],[agree][eigen],[compact],[invariance]")
# BF16 inference against PyTorch (tests/data/gen_bf16_fixture.py: float32, BF16-rounded operands,
# autocast), under every kernel set the host has (infer_bf16_isa_<set>).
envit_add_test(infer_bf16 infer/test_infer_bf16.cpp)
target_compile_definitions(infer_bf16 PRIVATE ENVIT_PARITY_DATA_DIR="${CMAKE_CURRENT_SOURCE_DIR}/data")
envit_test_kernel_sets(infer_bf16 infer_bf16)
# INT8 inference (weights/quantize.hpp) on the same fixture: logits near PyTorch float32, the quantized
# checkpoint round trip and its refusals, under every kernel set the host has (infer_int8_isa_<set>).
envit_add_test(infer_int8 infer/test_infer_int8.cpp)
target_compile_definitions(infer_int8 PRIVATE ENVIT_PARITY_DATA_DIR="${CMAKE_CURRENT_SOURCE_DIR}/data")
envit_test_kernel_sets(infer_int8 infer_int8)
# A native BF16 kernel set against the emulated reference (an FP32 set on BF16-rounded operands):
# two runs of one program, the reference written under ENVIT_ISA=<the best FP32 set>, then compared
# with the host's best set; skipped (return code 77) where that set is not a native BF16 one.
if(TARGET envit_dispatch)
  add_executable(envit_bf16_native_check infer/bf16_native_check.cpp)
  target_link_libraries(envit_bf16_native_check PRIVATE envit::envit envit::dispatch)
  target_compile_definitions(envit_bf16_native_check PRIVATE ENVIT_PARITY_DATA_DIR="${CMAKE_CURRENT_SOURCE_DIR}/data")
  target_compile_options(envit_bf16_native_check PRIVATE -Wall -Wextra)
  foreach(set avx512 avx2 baseline)
    if(set IN_LIST ENVIT_HOST_KERNEL_SETS)
      set(emulated_set ${set})
      break()
    endif()
  endforeach()
  envit_program(native_check envit_bf16_native_check)
  set(reference ${CMAKE_CURRENT_BINARY_DIR}/bf16_emulated_logits.safetensors)
  add_test(NAME infer_bf16_emulated_reference COMMAND ${native_check} write ${reference})
  set_tests_properties(infer_bf16_emulated_reference PROPERTIES FIXTURES_SETUP bf16_emulated LABELS kernels
                       ENVIRONMENT "ENVIT_ISA=${emulated_set};ENVIT_TEST_DATA=${CMAKE_CURRENT_SOURCE_DIR}/data")
  add_test(NAME infer_bf16_native_vs_emulated COMMAND ${native_check} compare ${reference})
  set_tests_properties(infer_bf16_native_vs_emulated PROPERTIES FIXTURES_REQUIRED bf16_emulated SKIP_RETURN_CODE 77
                       LABELS kernels ENVIRONMENT "ENVIT_TEST_DATA=${CMAKE_CURRENT_SOURCE_DIR}/data")
endif()
