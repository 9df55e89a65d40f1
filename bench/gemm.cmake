# GEMM benchmarks: peak-FLOP probe, Eigen vs packed backends at ViT shapes, 1 and 2 threads.
envit_add_bench(bench_gemm bench_gemm.cpp)
