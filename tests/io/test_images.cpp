// Images in: bilinear resize against F.interpolate (fixture from tests/data/gen_pretrained_fixtures.py),
// grayscale to 3 channels, --norm specs, the random resized crop, and image folders written here
// with stb_image_write (PNG, BMP, JPEG) including the named errors for bad folders and files.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

#include "envit/data/image_folder.hpp"
#include "envit/data/normalize.hpp"
#include "envit/data/resize.hpp"
#include "envit/io/safetensors.hpp"
#include "io/io_util.hpp"

using namespace envit;
using envit::testing::message_of;
using envit::testing::TempDir;

namespace {
StFile reference() {
  const char* d = std::getenv("ENVIT_TEST_DATA");
  REQUIRE(d != nullptr);
  return safetensors_read(std::string(d) + "/pretrained/reference.safetensors");
}
// A w x h image, interleaved, of `comp` components with pixel (x, y, c) = f(x, y, c).
template <class F>
std::vector<unsigned char> make_pixels(int w, int h, int comp, F f) {
  std::vector<unsigned char> p(std::size_t(w) * h * comp);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < comp; ++c) p[(std::size_t(y) * w + x) * comp + c] = static_cast<unsigned char>(f(x, y, c));
  return p;
}
void write_png(const std::string& path, int w, int h, int comp, int value) {
  auto p = make_pixels(w, h, comp, [&](int, int, int c) { return value + 10 * c; });
  REQUIRE(stbi_write_png(path.c_str(), w, h, comp, p.data(), w * comp) != 0);
}
}  // namespace

TEST_CASE("resize_bilinear matches F.interpolate(bilinear, align_corners=False)", "[images][ref]") {
  StFile ref = reference();
  std::vector<std::int64_t> shape;
  const std::vector<float> in = ref.get<float>("resize.in", &shape);
  REQUIRE(shape == std::vector<std::int64_t>{2, 3, 9, 7});
  for (auto [oh, ow] : {std::pair{13, 5}, {4, 11}, {18, 14}}) {
    const std::vector<float> want = ref.get<float>("resize.out" + std::to_string(oh) + "x" + std::to_string(ow));
    std::vector<float> got(want.size());
    resize_bilinear(got.data(), in.data(), 6, 9, 7, oh, ow);  // N*C planes at once
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(double(got[i]) - want[i]));
    INFO(oh << "x" << ow << ": largest difference " << worst << " (pixel values 0..255)");
    CHECK(worst <= 1e-4);  // <= 4e-7 relative at 255: float rounding of the same formula (PyTorch fuses multiply-adds)
  }
}

TEST_CASE("uint8 resize, identity and grayscale to RGB", "[images]") {
  std::vector<std::uint8_t> img(5 * 4);
  for (int i = 0; i < 20; ++i) img[i] = static_cast<std::uint8_t>(i * 13);
  std::vector<std::uint8_t> same(20);
  std::vector<float> scratch;
  resize_bilinear_u8(same.data(), img.data(), 1, 5, 4, 5, 4, scratch);
  CHECK(same == img);
  CHECK(pixel_u8(2.5f) == 2);
  CHECK(pixel_u8(3.5f) == 4);
  CHECK(pixel_u8(-3.f) == 0);
  CHECK(pixel_u8(300.f) == 255);
  Dataset d;
  d.name = "gray";
  d.n = 2, d.c = 1, d.h = 5, d.w = 4, d.classes = 2;
  d.images = img;
  d.images.insert(d.images.end(), img.begin(), img.end());
  d.labels = {0, 1};
  Dataset r = dataset_resize(d, 8, 3);
  r.check();
  CHECK(r.c == 3);
  CHECK(r.h == 8);
  CHECK(r.labels == d.labels);
  for (int p = 0; p < 64; ++p) CHECK((r.image(1)[p] == r.image(1)[64 + p] && r.image(1)[p] == r.image(1)[128 + p]));
  CHECK(r.image(0)[0] == 0);  // the corner pixel maps to the corner (clamped source index 0)
  CHECK(message_of<ValueError>([&] { dataset_resize(r, 8, 1); }).find("only 1 -> 3") != std::string::npos);
}

TEST_CASE("norm_stats parses the --norm specs", "[images]") {
  auto never = []() -> ChannelStats { FAIL("dataset statistics not wanted"); return {}; };
  ChannelStats s = norm_stats("imagenet", 3, never);
  CHECK(s.mean == std::vector<double>{0.485, 0.456, 0.406});
  CHECK(s.std == std::vector<double>{0.229, 0.224, 0.225});
  CHECK(norm_stats("inception", 1, never).mean == std::vector<double>{0.5});
  CHECK(norm_stats("0.25,0.5", 3, never).std == std::vector<double>{0.5, 0.5, 0.5});
  CHECK(norm_stats("0.1,0.2,0.3,1,2,3", 3, never).std == std::vector<double>{1, 2, 3});
  CHECK(norm_stats("dataset", 1, [] { return ChannelStats{{0.3}, {0.1}}; }).mean == std::vector<double>{0.3});
  CHECK(message_of<ValueError>([&] { norm_stats("imagenet", 1, never); }).find("3-channel") != std::string::npos);
  CHECK(message_of<ValueError>([&] { norm_stats("0.5,x", 3, never); }).find("'x' is not a number") != std::string::npos);
  CHECK(message_of<ValueError>([&] { norm_stats("1,2,3", 3, never); }).find("3 numbers; expected 2") != std::string::npos);
  CHECK(message_of<ValueError>([&] { norm_stats("0.5,0", 3, never); }).find("must be > 0") != std::string::npos);
}

TEST_CASE("random resized crop: bounds, determinism, identity box, flip", "[images]") {
  for (std::int64_t i = 0; i < 200; ++i) {
    CropBox b = rrc_draw(0.08, 24, 17, 5, 3, i);
    REQUIRE((b.h >= 1 && b.w >= 1 && b.top >= 0 && b.left >= 0 && b.top + b.h <= 24 && b.left + b.w <= 17));
    CropBox again = rrc_draw(0.08, 24, 17, 5, 3, i);
    REQUIRE((again.top == b.top && again.left == b.left && again.h == b.h && again.w == b.w));
  }
  CropBox b1 = rrc_draw(0.08, 24, 17, 5, 3, 0), b2 = rrc_draw(0.08, 24, 17, 6, 3, 0);
  CHECK((b1.top != b2.top || b1.left != b2.left || b1.h != b2.h || b1.w != b2.w));
  const int H = 6, W = 5;
  std::vector<std::uint8_t> img(H * W);
  for (int i = 0; i < H * W; ++i) img[i] = static_cast<std::uint8_t>(7 * i);
  Normalizer norm(std::vector<double>{0.5}, std::vector<double>{0.25});
  std::vector<float> out(H * W), flipped(H * W);
  transform_image_rrc(out.data(), img.data(), 1, H, W, {0, 0, H, W}, false, norm);
  for (int i = 0; i < H * W; ++i) CHECK(out[i] == Approx(norm(0, img[i])).margin(1e-5));
  transform_image_rrc(flipped.data(), img.data(), 1, H, W, {0, 0, H, W}, true, norm);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) CHECK(flipped[y * W + x] == out[y * W + W - 1 - x]);
}

TEST_CASE("image folder: train/val layout, formats, sizes and channels", "[images][folder]") {
  TempDir t;
  namespace fs = std::filesystem;
  for (const char* s : {"train/cat", "train/dog", "val/cat", "val/dog"}) fs::create_directories(t.file(s));
  write_png(t.file("train/cat/a.png"), 20, 10, 3, 100);  // wide RGB
  write_png(t.file("train/cat/b.PNG"), 6, 9, 1, 50);     // tall gray
  auto bmp = make_pixels(8, 8, 3, [](int x, int, int) { return x < 4 ? 0 : 200; });
  REQUIRE(stbi_write_bmp(t.file("train/dog/c.bmp").c_str(), 8, 8, 3, bmp.data()) != 0);
  auto jpg = make_pixels(16, 16, 3, [](int, int, int) { return 128; });
  REQUIRE(stbi_write_jpg(t.file("val/dog/d.jpg").c_str(), 16, 16, 3, jpg.data(), 95) != 0);
  write_png(t.file("val/cat/e.png"), 12, 12, 4, 30);     // RGBA
  testing::write_bytes(t.file("train/dog/notes.txt"), "not an image");
  ImageFolderOptions o;
  o.size = 4;
  ImageFolderData d = image_folder_load(t.path, o);
  d.train.check();
  d.eval.check();
  CHECK(d.eval_name == "val");
  CHECK(d.train.class_names == std::vector<std::string>{"cat", "dog"});
  CHECK(d.train.n == 3);
  CHECK(d.eval.n == 2);
  CHECK(d.train.labels == std::vector<std::int32_t>{0, 0, 1});
  CHECK(d.eval.labels == std::vector<std::int32_t>{0, 1});
  CHECK((d.train.c == 3 && d.train.h == 4 && d.train.w == 4));
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 16; ++p) {
      REQUIRE(int(d.train.image(0)[c * 16 + p]) == 100 + 10 * c);  // a constant image stays constant
      REQUIRE(int(d.train.image(1)[c * 16 + p]) == 50);            // gray repeated into 3 channels
      REQUIRE(int(d.eval.image(0)[c * 16 + p]) == 30 + 10 * c);    // alpha dropped
    }
  CHECK(int(d.train.image(2)[0]) == 0);   // BMP: left half black ...
  CHECK(int(d.train.image(2)[3]) == 200); // ... right half 200, after resizing 8 -> 4
  CHECK(std::abs(int(d.eval.image(1)[5]) - 128) <= 2);  // JPEG, lossy
  o.channels = 1;
  CHECK(image_folder_load(t.path, o).train.c == 1);
}

TEST_CASE("image folder: one tree with a seeded split", "[images][folder]") {
  TempDir t;
  for (int c = 0; c < 2; ++c) {
    std::filesystem::create_directories(t.file("c" + std::to_string(c)));
    for (int i = 0; i < 10; ++i) write_png(t.file("c" + std::to_string(c) + "/" + std::to_string(i) + ".png"), 5, 5, 3, 10 * i + c);
  }
  ImageFolderOptions o;
  o.size = 3;
  o.val_fraction = 0.25;
  o.seed = 4;
  ImageFolderData a = image_folder_load(t.path, o), b = image_folder_load(t.path, o);
  CHECK(a.eval_name == "split");
  CHECK(a.train.n == 15);
  CHECK(a.eval.n == 5);
  CHECK(a.eval.images == b.eval.images);
  o.seed = 5;
  CHECK(image_folder_load(t.path, o).eval.images != a.eval.images);
}

TEST_CASE("image folder: named errors", "[images][folder][errors]") {
  TempDir t;
  namespace fs = std::filesystem;
  ImageFolderOptions o;
  o.size = 4;
  fs::create_directories(t.file("train/a"));
  fs::create_directories(t.file("train/b"));
  write_png(t.file("train/a/x.png"), 4, 4, 3, 1);
  auto m = message_of<IoError>([&] { image_folder_load(t.path, o); });
  CHECK(m.find("class folder 'b' has no images") != std::string::npos);
  write_png(t.file("train/b/y.png"), 4, 4, 3, 1);
  m = message_of<IoError>([&] { image_folder_load(t.path, o); });  // 2 images: a 0.1 split is empty
  CHECK(m.find("the split would be empty") != std::string::npos);
  fs::create_directories(t.file("val/c"));
  write_png(t.file("val/c/z.png"), 4, 4, 3, 1);
  m = message_of<IoError>([&] { image_folder_load(t.path, o); });
  CHECK(m.find("class 'c' is not among the training classes") != std::string::npos);
  fs::remove_all(t.file("val/c"));
  fs::create_directories(t.file("val/a"));
  std::string png = testing::read_bytes(t.file("train/a/x.png"));
  testing::write_bytes(t.file("val/a/cut.png"), png.substr(0, png.size() / 2));
  m = message_of<IoError>([&] { image_folder_load(t.path, o); });
  CHECK(m.find("cut.png': cannot decode") != std::string::npos);
  testing::write_bytes(t.file("val/a/cut.png"), "");
  CHECK(message_of<IoError>([&] { image_folder_load(t.path, o); }).find("cut.png': file is empty") != std::string::npos);
  CHECK(message_of<IoError>([&] { image_folder_load(t.file("nope"), o); }).find("not a directory") != std::string::npos);
}

TEST_CASE("image folder probe: the size the images share and whether all are grey (PNG, JPEG, BMP)", "[images][folder]") {
  TempDir t;
  namespace fs = std::filesystem;
  for (const char* s : {"train/a", "train/b", "test/a", "test/b"}) fs::create_directories(t.file(s));
  write_png(t.file("train/a/1.png"), 12, 12, 1, 40);  // grey PNG
  write_png(t.file("test/a/3.png"), 12, 12, 2, 80);   // grey + alpha PNG
  // stb_image_write writes JPEG and BMP files in colour (3 components) whatever the input.
  auto grey = make_pixels(12, 12, 1, [](int x, int, int) { return 10 * x; });
  REQUIRE(stbi_write_jpg(t.file("train/b/2.jpg").c_str(), 12, 12, 1, grey.data(), 95) != 0);
  REQUIRE(stbi_write_bmp(t.file("test/b/4.bmp").c_str(), 12, 12, 1, grey.data()) != 0);
  ImageFolderProbe p = image_folder_probe(t.path);
  CHECK(p.files == 4);
  CHECK((p.h == 12 && p.w == 12));
  CHECK(p.same_size());
  CHECK_FALSE(p.grey);
  fs::remove(t.file("train/b/2.jpg"));
  fs::remove(t.file("test/b/4.bmp"));
  write_png(t.file("train/b/2.png"), 12, 12, 1, 60);
  write_png(t.file("test/b/4.png"), 12, 12, 1, 90);
  p = image_folder_probe(t.path);
  CHECK(p.grey);
  CHECK(p.files == 4);
  // A second size: `other` names the first file that differs from the first one.
  write_png(t.file("test/b/5.png"), 14, 9, 3, 90);
  p = image_folder_probe(t.path);
  CHECK_FALSE(p.same_size());
  CHECK(p.first == t.file("train/a/1.png"));
  CHECK(p.other == t.file("test/b/5.png"));
  CHECK((p.other_w == 14 && p.other_h == 9));
  CHECK_FALSE(p.grey);
  // A file that is not an image is named.
  testing::write_bytes(t.file("train/a/0.png"), "not a png");
  CHECK(message_of<IoError>([&] { image_folder_probe(t.path); }).find("0.png': cannot read its header") != std::string::npos);
}
