# weights (include/envit/weights/): pretrained ViTs in (Hugging Face, timm, torchvision; fixtures
# from tests/data/gen_pretrained_fixtures.py), loading with a report, Hugging Face export.
# Checkpoints are tested by test_trainer and tests/reliability, ONNX export in tests/onnx.cmake.
envit_add_test(weights_pretrained weights/test_pretrained.cpp)
