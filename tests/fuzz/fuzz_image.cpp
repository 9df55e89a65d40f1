// libFuzzer harness: the image-folder decoder (stb_image PNG/JPEG/BMP via image_decode) on arbitrary
// bytes as 1 or 3 channels (the first byte chooses), then the resize + centre crop to 8x8 every
// decoded image goes through. A decoded image must hold h x w x c pixels; anything else is IoError.
// Images are capped at 1024 x 1024 pixels (the library's limit is 4096 x 4096): a 700-byte JPEG
// header can announce 4096 x 4096, whose legitimate decode and resize take seconds under ASan and
// would end the campaign as a timeout without exercising anything a 1024 x 1024 image does not.
// tests/test_image_folder.cpp covers the library's own limit.
#include <cstdlib>

#include "envit/data/image_folder.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static envit::fuzz::MemFile mem;
  if (size < 1) return 0;
  const int channels = data[0] % 2 ? 3 : 1;
  try {
    envit::DecodedImage img = envit::image_decode(mem.set(data + 1, size - 1), channels, std::int64_t{1} << 20);
    if (img.h <= 0 || img.w <= 0 || img.c != channels ||
        img.pixels.size() != std::size_t(img.h) * std::size_t(img.w) * std::size_t(channels))
      std::abort();
    std::vector<std::uint8_t> out(std::size_t(channels) * 8 * 8);
    std::vector<float> scratch;
    envit::resize_center_crop(out.data(), img, 9, 8, scratch);
  } catch (const envit::IoError&) {
  }
  return 0;
}
