// libFuzzer harness: a Hugging Face model directory (pretrained_read, format hf) whose config.json
// is the input up to its first NUL byte and whose preprocessor_config.json, if the input has a NUL,
// is the rest; model.safetensors is the checked-in fixture tests/data/pretrained/hf_cls_f32. Must
// yield a valid configuration or throw IoError/ValueError/ShapeError; nothing else may escape.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "envit/weights/pretrained.hpp"

namespace {
std::string dir() {
  static const std::string d = [] {
    auto p = std::filesystem::temp_directory_path() / ("envit-fuzz-hf-" + std::to_string(::getpid()));
    std::filesystem::create_directories(p);
    std::filesystem::copy_file(ENVIT_FUZZ_DATA "/pretrained/hf_cls_f32/model.safetensors", p / "model.safetensors",
                               std::filesystem::copy_options::overwrite_existing);
    return p.string();
  }();
  return d;
}
void put(const std::string& path, const char* p, std::size_t n) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(p, std::streamsize(n));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string d = dir();
  const char* p = reinterpret_cast<const char*>(data);
  std::size_t cut = 0;
  while (cut < size && p[cut] != '\0') ++cut;
  put(d + "/config.json", p, cut);
  if (cut < size) put(d + "/preprocessor_config.json", p + cut + 1, size - cut - 1);
  else std::filesystem::remove(d + "/preprocessor_config.json");
  try {
    envit::Pretrained m = envit::pretrained_read(d, envit::WeightFormat::hf);
    if (m.cfg.depth <= 0 || m.cfg.dim <= 0) std::abort();
  } catch (const envit::IoError&) {
  } catch (const envit::ValueError&) {
  } catch (const envit::ShapeError&) {
  }
  return 0;
}
