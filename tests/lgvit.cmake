# LGViT (issue 17): its ops, heads, parity with the PyTorch reference, and the training scheme.
envit_add_test(test_lgvit_ops test_lgvit_ops.cpp)
envit_add_test(test_lgvit_model test_lgvit_model.cpp)
