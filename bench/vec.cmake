# vec_ops_count: one float op at the small ViT's shapes, for instruction counts under callgrind
# (see the file's header). A plain program, not Google Benchmark.
add_executable(vec_ops_count vec_ops_count.cpp)
target_link_libraries(vec_ops_count PRIVATE envit::envit envit::arch envit::cli)
