# Library entry points with one home each (presets, median, recorded splits, scalar GELU, errors).
envit_add_test(test_library_api test_library_api.cpp)
