# The layer order (tests/layers/layer_order.txt): every public header and source includes only its
# own and lower layers, docs/library.md states the order, and the checker's own negative cases.
envit_add_test(test_layers layers/test_layers.cpp LABELS layers)
target_compile_definitions(test_layers PRIVATE ENVIT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
