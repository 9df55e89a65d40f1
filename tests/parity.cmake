# End-to-end parity with PyTorch (fixture from tests/data/gen_train_step_fixture.py) and the
# no-allocation guarantee of a training step (replaces global operator new / malloc: own executable).
envit_add_test(test_train_parity test_train_parity.cpp)
target_compile_definitions(test_train_parity PRIVATE ENVIT_PARITY_DATA_DIR="${CMAKE_CURRENT_SOURCE_DIR}/data")
envit_add_test(test_no_alloc test_no_alloc.cpp)
# The baseline schemes' losses (beem, cosee, BYOT variants) against tests/data/gen_baselines_fixture.py.
envit_add_test(test_baselines_parity test_baselines_parity.cpp)
target_compile_definitions(test_baselines_parity PRIVATE ENVIT_PARITY_DATA_DIR="${CMAKE_CURRENT_SOURCE_DIR}/data")
