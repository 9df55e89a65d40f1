// tests/fuzz/make_corpus.cpp — writes the seed corpora of the fuzz harnesses into
// tests/fuzz/corpus/<harness>/ from valid small files: a checkpoint of a tiny model (safetensors,
// checkpoint, json), IDX images and labels plain and gzip (idx, idx_gz), CIFAR-10/100 records,
// small PNG/JPEG/BMP images (image; stb_image_write) and Hugging Face config.json files (hf_config;
// from the checked-in fixtures in tests/data/pretrained).
// Usage: envit_fuzz_make_corpus <corpus dir>. Deterministic: the same files every time.
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "envit/data/cifar.hpp"
#include "envit/data/idx.hpp"
#include "envit/io/file.hpp"
#include "envit/train/checkpoint.hpp"

#if __has_include(<stb/stb_image_write.h>)
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>
#define ENVIT_CORPUS_IMAGES 1
#endif

namespace fs = std::filesystem;

static std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}
static void put(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  const fs::path tmp = fs::temp_directory_path() / ("envit-corpus-" + std::to_string(::getpid()));
  fs::create_directories(tmp);

  // A tiny resumable checkpoint and a weights-only file.
  envit::VitConfig c{8, 1, 4, 8, 2, 2, 16, 3, {1, 2}, 1e-6};
  envit::ViTParams<float> P(c, false);
  P.init(1);
  envit::AdamWState<float> opt(P.size());
  for (std::size_t i = 0; i < P.size(); ++i) opt.m.data()[i] = 0.01f * float(i % 7), opt.v.data()[i] = 1e-4f;
  opt.step = 3;
  envit::checkpoint_save<float>((tmp / "ckpt.safetensors").string(), P, &opt, {{"train.step", "3"}});
  envit::checkpoint_save<float>((tmp / "weights.safetensors").string(), P, nullptr, {});
  const std::string ckpt = slurp((tmp / "ckpt.safetensors").string()), weights = slurp((tmp / "weights.safetensors").string());
  put(root / "safetensors" / "checkpoint", ckpt);
  put(root / "safetensors" / "weights", weights);
  put(root / "checkpoint" / "checkpoint", ckpt);
  put(root / "checkpoint" / "weights", weights);
  // Small mixed-dtype file.
  envit::StFile s;
  s.metadata = {{"k", "1"}};
  const double dv[3] = {1, 2, 3};
  const std::uint8_t bv[4] = {1, 2, 3, 4};
  s.add<double>("a", dv, {3});
  s.add_bytes("b", "U8", {2, 2}, bv);
  s.add_bytes("c", "BF16", {2}, bv);
  envit::safetensors_write((tmp / "mixed.safetensors").string(), s);
  put(root / "safetensors" / "mixed", slurp((tmp / "mixed.safetensors").string()));
  // JSON: the headers of those files.
  for (auto [name, bytes] : {std::pair{"checkpoint", ckpt}, {"weights", weights}}) {
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | std::uint8_t(bytes[std::size_t(i)]);
    put(root / "json" / name, bytes.substr(8, n));
  }
  put(root / "json" / "escapes", R"({"a\u00e9\n":[1,2,{"x":"\ud83d\ude00"}],"b":{}})");

  // IDX: 3 images of 4x5 and their labels, plain and gzip.
  std::vector<std::uint8_t> img(3 * 4 * 5), lab = {0, 9, 4};
  for (std::size_t i = 0; i < img.size(); ++i) img[i] = std::uint8_t(i * 13);
  envit::idx_write((tmp / "im").string(), {3, 4, 5}, img.data(), false);
  envit::idx_write((tmp / "im.gz").string(), {3, 4, 5}, img.data(), true);
  envit::idx_write((tmp / "lb").string(), {3}, lab.data(), false);
  envit::idx_write((tmp / "lb.gz").string(), {3}, lab.data(), true);
  put(root / "idx" / "images", slurp((tmp / "im").string()));
  put(root / "idx" / "images.gz", slurp((tmp / "im.gz").string()));
  put(root / "idx" / "labels", slurp((tmp / "lb").string()));
  put(root / "idx" / "labels.gz", slurp((tmp / "lb.gz").string()));
  // idx_gz: first byte = images length / 4, then the plain images and labels files.
  const std::string im = slurp((tmp / "im").string()), lb = slurp((tmp / "lb").string());
  put(root / "idx_gz" / "pair", std::string(1, char(im.size() / 4)) + im + lb);

  // CIFAR: two CIFAR-10 records, two CIFAR-100 records (first byte: 0 = CIFAR-10, 1 = fine, 2 = coarse).
  std::string c10, c100;
  for (int r = 0; r < 2; ++r) {
    c10 += char(r * 7);
    c100 += char(r * 11), c100 += char(r * 53);
    for (int p = 0; p < envit::kCifarPixels; ++p) {
      c10 += char((p * 31 + r) & 0xff);
      c100 += char((p * 17 + r) & 0xff);
    }
  }
  put(root / "cifar" / "cifar10", std::string(1, '\0') + c10);
  put(root / "cifar" / "cifar100_fine", std::string(1, '\1') + c100);
  put(root / "cifar" / "cifar100_coarse", std::string(1, '\2') + c100);
#ifdef ENVIT_CORPUS_IMAGES
  // Images: first byte 0 = decode as 1 channel, 1 = as 3 channels; 5x4 gray, RGB and RGBA.
  for (int comp : {1, 3, 4}) {
    std::vector<unsigned char> px(5 * 4 * std::size_t(comp));
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>(i * 29);
    const std::string base = (tmp / ("im" + std::to_string(comp))).string();
    stbi_write_png((base + ".png").c_str(), 5, 4, comp, px.data(), 5 * comp);
    stbi_write_bmp((base + ".bmp").c_str(), 5, 4, comp, px.data());
    stbi_write_jpg((base + ".jpg").c_str(), 5, 4, comp, px.data(), 90);
    for (const char* ext : {".png", ".bmp", ".jpg"})
      put(root / "image" / ("c" + std::to_string(comp) + ext), std::string(1, char(comp > 1)) + slurp(base + ext));
  }
#endif
  // Hugging Face config.json (+ NUL + preprocessor_config.json) from the fixtures, when present.
  const fs::path pre = fs::path(ENVIT_FUZZ_DATA) / "pretrained";
  if (fs::exists(pre / "hf_cls_f32" / "config.json")) {
    put(root / "hf_config" / "cls_f32", slurp((pre / "hf_cls_f32" / "config.json").string()) + std::string(1, '\0') +
                                            slurp((pre / "hf_cls_f32" / "preprocessor_config.json").string()));
    put(root / "hf_config" / "base_bf16", slurp((pre / "hf_base_bf16" / "config.json").string()));
  }
  fs::remove_all(tmp);
  std::printf("corpus written to %s\n", root.c_str());
  return 0;
}
