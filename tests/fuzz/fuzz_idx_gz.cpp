// libFuzzer harness: an images + labels IDX pair through idx_load, gzip-compressed by the harness
// so that mutations reach the IDX structure under the compression. The input is split at its first
// byte's value into an images file and a labels file. A loaded dataset must be consistent.
#include <zlib.h>

#include <cstdlib>
#include <vector>

#include "envit/data/idx.hpp"
#include "fuzz_util.hpp"

static const std::string& gz_into(envit::fuzz::MemFile& m, const std::uint8_t* p, std::size_t n) {
  uLongf cap = compressBound(uLong(n)) + 32;
  std::vector<std::uint8_t> out(cap);
  z_stream s{};
  if (deflateInit2(&s, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();  // gzip wrapper
  s.next_in = const_cast<Bytef*>(p);
  s.avail_in = uInt(n);
  s.next_out = out.data();
  s.avail_out = uInt(cap);
  if (deflate(&s, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(s.total_out);
  deflateEnd(&s);
  return m.set(out.data(), out.size());
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static envit::fuzz::MemFile images, labels;
  if (size < 1) return 0;
  const std::size_t cut = std::min<std::size_t>(size - 1, std::size_t(data[0]) * 4);
  try {
    envit::Dataset d = envit::idx_load(gz_into(images, data + 1, cut), gz_into(labels, data + 1 + cut, size - 1 - cut), 10);
    d.check();
  } catch (const envit::IoError&) {
  }
  return 0;
}
