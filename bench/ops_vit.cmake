# ViT transformer ops: attention, MLP, block, patch embedding (forward and backward, float).
envit_add_bench(bench_ops_vit bench_ops_vit.cpp)
