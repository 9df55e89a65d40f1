// tests/tools/make_image_folder.cpp — writes a small image-folder dataset from Fashion-MNIST for the
// fine-tuning test (tests/finetune_e2e.sh): DIR/train/<class>/*.png|bmp and DIR/val/<class>/*.png,
// the first images of classes 0..K-1, grayscale 28x28 (every fifth training image as BMP, and one
// upscaled to 35x30 RGB as JPEG, so decoding, resizing and gray -> RGB all run).
// Usage: make_image_folder FASHION_MNIST_DIR OUT_DIR CLASSES TRAIN_PER_CLASS VAL_PER_CLASS
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

#include "envit/data/idx.hpp"
#include "envit/data/resize.hpp"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s FASHION_MNIST_DIR OUT_DIR CLASSES TRAIN_PER_CLASS VAL_PER_CLASS\n", argv[0]);
    return 2;
  }
  const envit::Dataset d = envit::fashion_mnist_load(argv[1], true);
  const std::string out = argv[2];
  const int K = std::atoi(argv[3]), n_train = std::atoi(argv[4]), n_val = std::atoi(argv[5]);
  std::vector<int> count(static_cast<std::size_t>(K), 0);
  std::vector<float> scratch;
  for (std::int64_t i = 0; i < d.n; ++i) {
    const int c = d.labels[i];
    if (c >= K || count[c] >= n_train + n_val) continue;
    const int k = count[c]++;
    const bool val = k >= n_train;
    const std::string dir = out + (val ? "/val/" : "/train/") + "class" + std::to_string(c);
    std::filesystem::create_directories(dir);
    const std::string stem = dir + "/" + std::to_string(i);
    bool ok;
    if (!val && k == 1) {  // one RGB JPEG of another size
      std::vector<std::uint8_t> big(35 * 30), rgb(35 * 30 * 3);
      envit::resize_bilinear_u8(big.data(), d.image(i), 1, 28, 28, 30, 35, scratch);
      for (int p = 0; p < 35 * 30; ++p) rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = big[p];
      ok = stbi_write_jpg((stem + ".jpg").c_str(), 35, 30, 3, rgb.data(), 95) != 0;
    } else if (!val && k % 5 == 0) {
      ok = stbi_write_bmp((stem + ".bmp").c_str(), 28, 28, 1, d.image(i)) != 0;
    } else {
      ok = stbi_write_png((stem + ".png").c_str(), 28, 28, 1, d.image(i), 28) != 0;
    }
    if (!ok) {
      std::fprintf(stderr, "cannot write %s\n", stem.c_str());
      return 1;
    }
  }
  return 0;
}
