// libFuzzer harness: safetensors_read on arbitrary bytes. It must return a file whose tensors are
// consistent (bytes = numel x dtype size) or throw IoError; then every accessor is exercised.
#include <cstdlib>

#include "envit/io/safetensors.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static envit::fuzz::MemFile mem;
  try {
    envit::StFile f = envit::safetensors_read(mem.set(data, size));
    for (const envit::StTensor& t : f.tensors) {
      const int es = envit::st_dtype_size(t.dtype);
      if (es <= 0 || t.numel() < 0 || std::uint64_t(t.numel()) * std::uint64_t(es) != t.data.size()) std::abort();
      if (f.find(t.name) != &t) std::abort();  // names are unique
      if (t.dtype == "F32") (void)f.get<float>(t.name);
    }
    for (auto& [k, v] : f.metadata) {
      try { (void)f.meta_int(k); } catch (const envit::IoError&) {}
      try { (void)f.meta_double(k); } catch (const envit::IoError&) {}
    }
  } catch (const envit::IoError&) {
  }
  return 0;
}
