// Inputs found by fuzzing (tests/fuzz, docs/reliability.md) that once misbehaved, kept as tests.
// The executable links alloc_counter.cpp, whose global operator new records the largest single
// request while g_count_allocs is set.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

#include "envit/data/idx.hpp"
#include "envit/data/image_guard.hpp"
#if __has_include("envit/data/image_folder.hpp")
#include "envit/data/image_folder.hpp"
#endif
#if __has_include("envit/weights/pretrained.hpp")
#include "envit/weights/pretrained.hpp"
#endif
#include "alloc_counter.hpp"
#include "io/io_util.hpp"


using namespace envit;

namespace {
// tests/data (ctest sets ENVIT_TEST_DATA).
std::string test_data() {
  const char* d = std::getenv("ENVIT_TEST_DATA");
  REQUIRE(d != nullptr);
  return d;
}

// What image_bytes_check says of a fuzz_image input (byte 0: the harness's channel choice, then the
// file's bytes) named `name`: its IoError message, or "" when it passes.
std::string guard_message(const std::string& input, const std::string& name) {
  try {
    image_bytes_check(reinterpret_cast<const unsigned char*>(input.data()) + 1, input.size() - 1, name);
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}

#if __has_include("envit/data/image_folder.hpp")
// What image_decode says of the file `path`: its IoError message, or "" when it decodes.
std::string decode_message(const std::string& path, std::int64_t max_pixels = kMaxImagePixels) {
  try {
    image_decode(path, 3, max_pixels);
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}
#endif
}  // namespace

// fuzz_idx_gz ran at 17 executions/s: every short input whose header announced a large array made
// idx_read allocate a 16 MiB first chunk. The buffer now grows from 64 KiB.
TEST_CASE("fuzz regression: a 20-byte IDX file announcing 2^36 bytes allocates at most 64 KiB", "[fault][fuzz]") {
  envit::testing::TempDir t;
  const std::string p = t.file("lying");
  // Magic 0x00000803, dimensions 65536 x 65536 x 16 (2^36 bytes, under the 2^40 sanity limit), 4 data bytes.
  const std::string bytes = std::string{0, 0, 8, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 16} + std::string(4, '\x07');
  envit::testing::write_bytes(p, bytes);
  envit::testing::g_largest_alloc = 0;
  envit::testing::g_count_allocs = true;
  std::string m;
  try {
    idx_read(p);
  } catch (const IoError& e) {
    m = e.what();
  }
  envit::testing::g_count_allocs = false;
  CHECK_THAT(m, Catch::Contains("announce 68719476736 data bytes") && Catch::Contains("got 4"));
  CHECK(envit::testing::g_largest_alloc.load() <= (std::size_t{1} << 16));
}

// fuzz_image, first seconds: a JPEG whose Huffman table announces 274 codes made stb_image v2.27
// write past its size table (stbi__build_huffman, UBSan index 257 out of bounds for [257]). The
// input (byte 0 = channel choice of the harness, then the file) is tests/data/fuzz/image_jpeg_dht_257.bin.
TEST_CASE("fuzz regression: a JPEG Huffman table of more than 256 codes is refused before stb_image", "[fault][fuzz]") {
  const std::string in = envit::testing::read_bytes(test_data() + "/fuzz/image_jpeg_dht_257.bin");
  REQUIRE(in.size() > 1);
  std::string m = guard_message(in, "crash.jpg");
  CHECK_THAT(m, Catch::Contains("image 'crash.jpg': JPEG Huffman table at byte offset") && Catch::Contains("announces 274 codes"));
  // A table of too many codes after a run of 0xFF fill bytes, which stb skips before the start-of-image
  // marker (a second fuzz_image crash: tests/data/fuzz/image_jpeg_dht_fill.bin).
  const std::string fill = envit::testing::read_bytes(test_data() + "/fuzz/image_jpeg_dht_fill.bin");
  m = guard_message(fill, "fill.jpg");
  CHECK_THAT(m, Catch::Contains("image 'fill.jpg': JPEG Huffman table at byte offset"));
  // Valid tables pass: a baseline JPEG header with the standard luminance DC table (12 codes).
  const unsigned char ok[] = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x1F, 0x00, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0,
                              0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xFF, 0xD9};
  CHECK_NOTHROW(image_bytes_check(ok, sizeof ok, "ok.jpg"));
#if __has_include("envit/data/image_folder.hpp")
  // The decoder applies the check.
  envit::testing::TempDir t;
  envit::testing::write_bytes(t.file("crash.jpg"), in.substr(1));
  CHECK_THAT(decode_message(t.file("crash.jpg")), Catch::Contains("announces 274 codes"));
#endif
}

#if __has_include("envit/data/image_folder.hpp")
// fuzz_image: a 714-byte JPEG announcing 50949 x 1276 pixels made stb_image decode the whole area
// (a timeout). Input: tests/data/fuzz/image_jpeg_timeout.bin (byte 0 = channels).
TEST_CASE("fuzz regression: an image announcing more than kMaxImagePixels is refused before decoding", "[fault][fuzz]") {
  const std::string in = envit::testing::read_bytes(test_data() + "/fuzz/image_jpeg_timeout.bin");
  envit::testing::TempDir t;
  envit::testing::write_bytes(t.file("huge.jpg"), in.substr(1));
  CHECK_THAT(decode_message(t.file("huge.jpg")), Catch::Contains("image '") && Catch::Contains("50949x1276 pixels is more than the 16777216"));
}

// fuzz_image: a 715-byte JPEG announcing 65370 x 253 pixels (within kMaxImagePixels) decodes for
// seconds under ASan, a timeout of the campaign: the harness passes a 1024 x 1024 limit, which
// image_decode applies from the header. Input: tests/data/fuzz/image_jpeg_wide.bin.
TEST_CASE("fuzz regression: image_decode applies a caller's pixel limit before decoding", "[fault][fuzz]") {
  const std::string in = envit::testing::read_bytes(test_data() + "/fuzz/image_jpeg_wide.bin");
  envit::testing::TempDir t;
  envit::testing::write_bytes(t.file("wide.jpg"), in.substr(1));
  CHECK_THAT(decode_message(t.file("wide.jpg"), std::int64_t{1} << 20), Catch::Contains("image '") && Catch::Contains("65370x253 pixels is more than the 1048576"));
}
#endif

// fuzz_image: a 123-byte PNG whose second IDAT chunk announces 2,130,706,497 bytes made stb_image
// grow its IDAT buffer to 2 GiB before reading (libFuzzer: out-of-memory). Input:
// tests/data/fuzz/image_png_idat.bin (byte 0 = channels).
TEST_CASE("fuzz regression: a PNG chunk announcing more bytes than the file holds is refused before stb_image", "[fault][fuzz]") {
  const std::string in = envit::testing::read_bytes(test_data() + "/fuzz/image_png_idat.bin");
  CHECK_THAT(guard_message(in, "idat.png"), Catch::Contains("image 'idat.png': PNG chunk 'IDAT' at byte offset 81 announces 2130706497 bytes "
                                "but the file has 33 after its header"));
  // The same bytes with that chunk's length set to what the file holds pass the check.
  std::string ok = in.substr(1);
  ok[81] = ok[82] = ok[83] = 0, ok[84] = 33 - 4;
  CHECK_NOTHROW(image_bytes_check(reinterpret_cast<const unsigned char*>(ok.data()), ok.size(), "ok.png"));
}

// fuzz_image: a 120-byte BMP announcing 4 x 327672 pixels timed out (10 s) in stbi__bmp_load, which
// reads zeros past the end of the data. Input: tests/data/fuzz/image_bmp_rows.bin (byte 0 = channels).
TEST_CASE("fuzz regression: a BMP announcing more rows than it holds is refused before stb_image", "[fault][fuzz]") {
  const std::string data = test_data();
  const std::string in = envit::testing::read_bytes(data + "/fuzz/image_bmp_rows.bin");
  CHECK_THAT(guard_message(in, "rows.bmp"), Catch::Contains("image 'rows.bmp': BMP header announces") && Catch::Contains("truncated or corrupt"));
  // fuzz_image: a BMP of height 0 decoded "successfully" to an image of no pixels
  // (tests/data/fuzz/image_bmp_empty.bin).
  const std::string empty = envit::testing::read_bytes(data + "/fuzz/image_bmp_empty.bin");
  CHECK_THAT(guard_message(empty, "empty.bmp"), Catch::Contains("image 'empty.bmp': BMP header announces 5x0 pixels: an empty image"));
  // The valid seed images (stb_image_write output: BMP, PNG, JPEG in 1, 3 and 4 channels) pass.
  for (const char* f : {"c1.bmp", "c3.bmp", "c4.bmp", "c1.png", "c3.jpg", "c4.png"}) {
    const std::string seed = envit::testing::read_bytes(data + "/../fuzz/corpus/image/" + f);
    INFO(f);
    CHECK(guard_message(seed, f) == "");
  }
}

#if __has_include("envit/weights/pretrained.hpp")
// fuzz_hf_config: a config.json holding a number (not an object) must be an IoError naming the
// file, as must a member of the wrong type. Input:
// tests/data/fuzz/hf_config_type_error.bin (config.json, NUL, preprocessor_config.json).
TEST_CASE("fuzz regression: a Hugging Face config.json of the wrong JSON type is an IoError naming it", "[fault][fuzz]") {
  const std::string data = test_data();
  envit::testing::TempDir t;
  const std::string in = envit::testing::read_bytes(data + "/fuzz/hf_config_type_error.bin");
  const std::size_t cut = std::min(in.find('\0'), in.size());
  envit::testing::write_bytes(t.file("config.json"), in.substr(0, cut));
  envit::testing::write_bytes(t.file("model.safetensors"),
                              envit::testing::read_bytes(data + "/pretrained/hf_cls_f32/model.safetensors"));
  std::string m;
  try {
    pretrained_read(t.path, WeightFormat::hf);
  } catch (const IoError& e) {
    m = e.what();
  }
  CHECK_THAT(m, Catch::Contains(t.path + "/config.json") && Catch::Contains("not a JSON object"));
  // A field of the wrong type inside an object.
  envit::testing::write_bytes(t.file("config.json"), R"({"hidden_act": 5})");
  m.clear();
  try {
    pretrained_read(t.path, WeightFormat::hf);
  } catch (const IoError& e) {
    m = e.what();
  }
  CHECK_THAT(m, Catch::Contains(t.path + "/config.json") &&
                   Catch::Contains("'hidden_act' is the integer 5, expected a string"));
}
#endif
