# Basic ops (linear, layernorm, gelu, softmax, cross-entropy, KL, gather/scatter): split into three
# executables so template-heavy test files compile in parallel and stay small.
envit_add_test(test_linear_ln test_linear_ln.cpp)
envit_add_test(test_act_softmax test_act_softmax.cpp)
# LayerNorm, GELU and softmax float cases under every kernel set the host has (<prefix>_isa_<set>).
envit_test_kernel_sets(test_linear_ln linear_ln "[ref],[determinism]")
envit_test_kernel_sets(test_act_softmax act_softmax "[ref]")
envit_add_test(test_losses_gather test_losses_gather.cpp)
