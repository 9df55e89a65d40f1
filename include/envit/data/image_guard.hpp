// envit/data/image_guard.hpp — checks on encoded image bytes for inputs that stb_image (Debian's
// libstb-dev ships v2.27) decodes unsafely, applied before the bytes reach it; each was found by
// fuzzing (tests/fuzz/fuzz_image.cpp) and is a test in tests/reliability/test_fuzz_regressions.cpp.
//   - A JPEG Huffman table (DHT segment) announcing more than 256 codes: v2.27's
//     stbi__build_huffman writes past its 257-entry size table (fixed upstream in v2.28 with the
//     same check). Every FF C4 in a non-PNG, non-BMP input is checked, as stb finds markers by that
//     byte pair anywhere (after fill bytes, after entropy-coded data), and skips leading fill bytes.
//   - A BMP whose header announces more rows than the file holds: stb reads zeros past the end, so
//     a 100-byte file can ask for a 4 x 300000-pixel decode (seconds of work, megabytes of memory).
//     Uncompressed BMP (the only kind stb reads) must hold offset + row bytes x rows. A BMP of
//     height 0 is refused too: stb returns it as a decoded image of no pixels.
//   - A PNG chunk announcing more data than the file holds: stb grows its IDAT buffer to the
//     announced length before reading it, so a 123-byte file can make it allocate 2 GiB. Every chunk
//     up to IEND must hold its data within the file (its CRC may be missing, as stb tolerates).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "envit/core/error.hpp"

namespace envit {

// Throws IoError naming `path` when bytes[0..n) holds something stb_image v2.27 mishandles.
inline void image_bytes_check(const unsigned char* bytes, std::size_t n, const std::string& path) {
  auto at = [&](std::size_t i) -> unsigned { return i < n ? bytes[i] : 0u; };  // stb reads 0 past the end
  auto le = [&](std::size_t i, int k) {
    std::uint32_t v = 0;
    for (int b = k - 1; b >= 0; --b) v = (v << 8) | at(i + std::size_t(b));
    return v;
  };
  if (n >= 2 && bytes[0] == 'B' && bytes[1] == 'M') {
    const std::uint32_t offset = le(10, 4), hsz = le(14, 4);
    const bool os2 = hsz == 12;
    const std::int64_t w = os2 ? std::int16_t(le(18, 2)) : std::int32_t(le(18, 4));
    const std::int64_t h = os2 ? std::int16_t(le(20, 2)) : std::int32_t(le(22, 4));
    const std::int64_t bpp = le(os2 ? 24 : 28, 2);
    ENVIT_CHECK(w > 0 && h != 0, IoError, "image '", path, "': BMP header announces ", w, "x", h,
                " pixels: an empty image");  // stb 2.27 decodes a height of 0 to an image of no pixels
    if (bpp <= 0) return;                     // stb refuses this itself
    const std::uint64_t row = (std::uint64_t(w) * std::uint64_t(bpp) + 31) / 32 * 4;
    const std::uint64_t need = std::uint64_t(offset) + row * std::uint64_t(h < 0 ? -h : h);
    ENVIT_CHECK(need <= n, IoError, "image '", path, "': BMP header announces ", w, "x", (h < 0 ? -h : h), " pixels at ",
                bpp, " bits (", need, " bytes) but the file has ", n, " bytes: truncated or corrupt");
    return;
  }
  // Every input that is not a PNG or BMP may reach stb's JPEG reader, which skips any number of
  // leading 0xFF fill bytes before the start-of-image marker.
  const bool png = n >= 4 && bytes[0] == 0x89 && bytes[1] == 'P' && bytes[2] == 'N' && bytes[3] == 'G';
  if (png) {
    auto be = [&](std::size_t i) { return (std::uint32_t(at(i)) << 24) | (at(i + 1) << 16) | (at(i + 2) << 8) | at(i + 3); };
    for (std::size_t p = 8; p + 8 <= n;) {  // chunk: length (big-endian), type, data, CRC
      const std::uint64_t len = be(p);
      const std::string type{char(at(p + 4)), char(at(p + 5)), char(at(p + 6)), char(at(p + 7))};
      ENVIT_CHECK(len <= n - (p + 8), IoError, "image '", path, "': PNG chunk '", type, "' at byte offset ", p,
                  " announces ", len, " bytes but the file has ", n - (p + 8), " after its header: truncated or corrupt");
      if (type == "IEND") break;
      p += 12 + std::size_t(len);
    }
    return;
  }
  for (std::size_t i = 0; i + 1 < n; ++i) {
    if (bytes[i] != 0xFF || bytes[i + 1] != 0xC4) continue;
    long len = static_cast<long>((at(i + 2) << 8) | at(i + 3)) - 2;  // as stbi__process_marker
    std::size_t p = i + 4;
    while (len > 0 && p < n) {
      unsigned codes = 0;
      for (int k = 1; k <= 16; ++k) codes += at(p + std::size_t(k));
      ENVIT_CHECK(codes <= 256, IoError, "image '", path, "': JPEG Huffman table at byte offset ", p,
                  " announces ", codes, " codes (at most 256): corrupt or hostile file");
      p += 17 + codes;
      len -= 17 + static_cast<long>(codes);
    }
  }
}

}  // namespace envit
