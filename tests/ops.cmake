# The ops (include/envit/ops/): one test file and one executable per op header, tests/ops/test_<op>.cpp
# for ops/<op>.hpp, named ops_<op>. Gradient checks in double use the finite-difference harness of
# tests/testing.hpp (check_grad); the ViT ops (attention, MLP, block, patch embedding) share the
# op harness tests/ops/vit_op_testing.hpp on top of it, with naive double references in
# tests/ops/ops_vit_reference.hpp.
foreach(op linear layernorm gelu softmax cross_entropy kl_div gather attention mlp block patch_embed
           exit_head batchnorm dwconv subsample gram channel_kl)
  envit_add_test(ops_${op} ops/test_${op}.cpp)
endforeach()
# The float cases of the ops on the vector kernels (LayerNorm, GELU, softmax, GEMM epilogues) under
# every kernel set the host has (ops_<op>_isa_<set>).
envit_test_kernel_sets(ops_linear ops_linear "[ref],[determinism]")
envit_test_kernel_sets(ops_layernorm ops_layernorm "[ref],[determinism]")
envit_test_kernel_sets(ops_gelu ops_gelu "[ref]")
envit_test_kernel_sets(ops_softmax ops_softmax "[ref]")
envit_test_kernel_sets(ops_attention ops_attention "[ref],[determinism]")
envit_test_kernel_sets(ops_mlp ops_mlp "[ref],[determinism]")
# The block and patch embedding against values exported from PyTorch (tests/data/gen_block_fixture.py).
envit_add_test(ops_vit_golden ops/test_vit_golden.cpp)
target_compile_definitions(ops_vit_golden PRIVATE ENVIT_TEST_DATA_DIR="${CMAKE_CURRENT_LIST_DIR}/data")
