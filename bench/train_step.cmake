# Whole training step (scheme envit, p_M = 0 and 0.3) and complete-model inference on tiny28.
envit_add_bench(bench_train_step bench_train_step.cpp)
