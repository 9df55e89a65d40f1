// libFuzzer harness: idx_read on arbitrary bytes, plain or gzip (zlib reads both). It must return
// an array whose size is the product of its dimensions or throw IoError.
#include <cstdlib>

#include "envit/data/idx.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static envit::fuzz::MemFile mem;
  try {
    envit::IdxArray a = envit::idx_read(mem.set(data, size));
    std::uint64_t total = 1;
    for (std::int64_t d : a.dims) total *= std::uint64_t(d);
    if (a.dims.empty() || a.dims.size() > 4 || total != a.data.size()) std::abort();
  } catch (const envit::IoError&) {
  }
  return 0;
}
