# envit vs PyTorch, same model and settings (bench/side_by_side.py drives both).
# envit_model_bench is a plain program printing one JSON line per run (not Google Benchmark);
# bench/torch_model_bench.py is its PyTorch twin.
add_executable(envit_model_bench model_bench.cpp)
target_link_libraries(envit_model_bench PRIVATE envit::envit envit::arch envit::cli)
