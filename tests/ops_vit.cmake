# ViT transformer ops: attention, MLP, block, patch embedding, and the PyTorch golden fixture.
# One executable per op keeps template-heavy builds short.
envit_add_test(test_vit_attention test_vit_attention.cpp)
envit_add_test(test_vit_mlp test_vit_mlp.cpp)
# Their float cases (softmax rows, bias+GELU and bias/residual GEMM epilogues) under every kernel
# set the host has (<prefix>_isa_<set>).
envit_test_kernel_sets(test_vit_attention vit_attention "[ref],[determinism]")
envit_test_kernel_sets(test_vit_mlp vit_mlp "[ref],[determinism]")
envit_add_test(test_vit_block test_vit_block.cpp)
envit_add_test(test_vit_patch_embed test_vit_patch_embed.cpp)
envit_add_test(test_vit_golden test_vit_golden.cpp)
target_compile_definitions(test_vit_golden PRIVATE ENVIT_TEST_DATA_DIR="${CMAKE_CURRENT_LIST_DIR}/data")
