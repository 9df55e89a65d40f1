# Whole training step (scheme envit, p_M = 0 and 0.3) and complete-model inference on tiny28.
envit_add_bench(bench_train_step bench_train_step.cpp)
# p_M = 0 vs p_M = 0.3 training steps alternated inside one process (ratio robust to machine noise).
add_executable(envit_dropout_ratio dropout_ratio.cpp)
target_link_libraries(envit_dropout_ratio PRIVATE envit::envit envit::arch envit::cli)
