# Basic ops at ViT shapes: linear (per GEMM backend), layernorm, gelu, softmax (float).
envit_add_bench(bench_ops_basic bench_ops_basic.cpp)
