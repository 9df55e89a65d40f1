# envit I/O and datasets: safetensors, IDX (MNIST/Fashion-MNIST), CIFAR, in-memory datasets.
envit_add_test(io_safetensors io/test_safetensors.cpp)
# JSON: the full grammar, float text and the writer (the safetensors subset is in io_safetensors).
envit_add_test(io_json io/test_json.cpp)
envit_add_test(io_datasets io/test_idx.cpp io/test_cifar.cpp io/test_dataset.cpp alloc_counter.cpp)
# Images in: resize (fixture), --norm, random resized crop, image folders (written by the test).
envit_add_test(io_images io/test_images.cpp)
