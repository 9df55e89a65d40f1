// Tests of envit/data/idx.hpp: plain and gzip round trips, truncation, trailing bytes, bad magic,
// image/label count mismatch, label range, missing-file hints, and the real Fashion-MNIST test set.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "skip.hpp"
#include "envit/data/idx.hpp"
#include "io/io_util.hpp"

using namespace envit;
using envit::testing::message_of;
using envit::testing::read_bytes;
using envit::testing::TempDir;
using envit::testing::write_bytes;
using Catch::Matchers::Contains;

namespace {
std::vector<std::uint8_t> pattern(std::size_t n, unsigned mul) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * mul + 3) & 0xFF);
  return v;
}
// A plain IDX file: header bytes then data.
std::string idx_bytes(std::array<unsigned char, 4> magic, std::vector<std::uint32_t> dims, std::size_t data_len) {
  std::string s(magic.begin(), magic.end());
  for (auto d : dims)
    for (int sh = 24; sh >= 0; sh -= 8) s += static_cast<char>(d >> sh);
  for (std::size_t i = 0; i < data_len; ++i) s += static_cast<char>(i % 7);
  return s;
}
}  // namespace

TEST_CASE("idx round trip, plain and gzip", "[io][idx]") {
  TempDir dir;
  const auto img = pattern(7 * 5 * 4, 37);
  std::vector<std::uint8_t> lab = {0, 1, 2, 9, 4, 5, 3};
  for (bool gz : {false, true}) {
    INFO("gzip = " << gz);
    const std::string ip = dir.file(gz ? "img.gz" : "img"), lp = dir.file(gz ? "lab.gz" : "lab");
    idx_write(ip, {7, 5, 4}, img.data(), gz);
    idx_write(lp, {7}, lab.data(), gz);
    std::string raw = read_bytes(ip);
    if (gz) {
      CHECK(static_cast<unsigned char>(raw[0]) == 0x1F);
      CHECK(static_cast<unsigned char>(raw[1]) == 0x8B);
    } else {
      CHECK(raw.substr(0, 4) == std::string("\0\0\x08\x03", 4));
      CHECK(raw.size() == 16 + img.size());
    }
    IdxArray a = idx_read(ip);
    CHECK(a.dims == std::vector<std::int64_t>{7, 5, 4});
    CHECK(a.data == img);
    Dataset d = idx_load(ip, lp);
    CHECK(d.n == 7);
    CHECK(d.c == 1);
    CHECK(d.h == 5);
    CHECK(d.w == 4);
    CHECK(d.classes == 10);
    CHECK(d.images == img);
    CHECK(d.labels == std::vector<std::int32_t>{0, 1, 2, 9, 4, 5, 3});
    CHECK_NOTHROW(d.check());
  }
}

TEST_CASE("idx reader rejects truncated files and trailing bytes", "[io][idx]") {
  TempDir dir;
  const std::string p = dir.file("x.idx");
  write_bytes(p, idx_bytes({0, 0, 8, 3}, {2, 3, 4}, 23));
  CHECK_THAT(message_of<IoError>([&] { idx_read(p); }),
             Contains("x.idx") && Contains("truncated: dimensions announce 24 data bytes") && Contains("got 23"));
  write_bytes(p, idx_bytes({0, 0, 8, 3}, {2, 3, 4}, 25));
  CHECK_THAT(message_of<IoError>([&] { idx_read(p); }), Contains("trailing bytes after the 24 data bytes"));
  write_bytes(p, idx_bytes({0, 0, 8, 3}, {2, 3, 4}, 0).substr(0, 9));
  CHECK_THAT(message_of<IoError>([&] { idx_read(p); }), Contains("truncated header: expected 12 bytes of dimensions, got 5"));
  write_bytes(p, std::string("\0\0", 2));
  CHECK_THAT(message_of<IoError>([&] { idx_read(p); }), Contains("2 bytes, the IDX magic needs 4"));

  // A gzip stream cut in the middle: reported as truncated or as a decompression error.
  const auto img = pattern(3000, 101);
  const std::string g = dir.file("cut.gz");
  idx_write(g, {3, 1000}, img.data(), true);
  std::string full = read_bytes(g);
  write_bytes(g, full.substr(0, full.size() / 2));
  std::string m = message_of<IoError>([&] { idx_read(g); });
  CHECK_THAT(m, Contains("cut.gz") && (Contains("truncated") || Contains("decompression error")));
}

TEST_CASE("idx reader rejects bad magic and dimensions", "[io][idx]") {
  TempDir dir;
  const std::string p = dir.file("m.idx");
  auto err = [&](const std::string& bytes) {
    write_bytes(p, bytes);
    return message_of<IoError>([&] { idx_read(p); });
  };
  CHECK_THAT(err(idx_bytes({1, 0, 8, 1}, {4}, 4)), Contains("bad magic 0x01000801") && Contains("not an IDX file"));
  CHECK_THAT(err(idx_bytes({0, 0, 0x0D, 1}, {1}, 4)), Contains("dtype code 0xd is not supported"));
  CHECK_THAT(err(idx_bytes({0, 0, 8, 0}, {}, 0)), Contains("0 dimensions"));
  CHECK_THAT(err(idx_bytes({0, 0, 8, 9}, {}, 0)), Contains("9 dimensions"));
  CHECK_THAT(err(idx_bytes({0, 0, 8, 2}, {3, 0}, 0)), Contains("dimension 1 is 0"));
  CHECK_THAT(err(idx_bytes({0, 0, 8, 4}, {0xFFFFFFFF, 0xFFFFFFFF, 2, 2}, 8)), Contains("more than 2^40 bytes"));
  // A plausible but lying header does not make the reader allocate what it announces.
  CHECK_THAT(err(idx_bytes({0, 0, 8, 3}, {60000, 1000, 1000}, 100)), Contains("announce 60000000000 data bytes") && Contains("got 100"));
}

TEST_CASE("idx loader checks counts, shapes and labels", "[io][idx]") {
  TempDir dir;
  const auto img = pattern(7 * 2 * 2, 11);
  std::vector<std::uint8_t> lab6 = {0, 1, 2, 3, 4, 5}, lab7 = {0, 1, 2, 3, 4, 5, 10};
  const std::string ip = dir.file("images"), l6 = dir.file("labels6"), l7 = dir.file("labels7");
  idx_write(ip, {7, 2, 2}, img.data(), false);
  idx_write(l6, {6}, lab6.data(), true);
  idx_write(l7, {7}, lab7.data(), false);
  CHECK_THAT(message_of<IoError>([&] { idx_load(ip, l6); }),
             Contains("'" + ip + "' has 7 images") && Contains("'" + l6 + "' has 6 labels"));
  CHECK_THAT(message_of<IoError>([&] { idx_load(ip, l7); }),
             Contains("label 10 of sample 6") && Contains("outside [0, 10)") && Contains("labels7"));
  CHECK(idx_load(ip, l7, 11).labels[6] == 10);
  CHECK_THAT(message_of<IoError>([&] { idx_load(l7, l7); }), Contains("1 dimensions, expected 3"));
  CHECK_THAT(message_of<IoError>([&] { idx_load(ip, ip); }), Contains("3 dimensions, expected 1"));
}

TEST_CASE("missing IDX files say how to get Fashion-MNIST", "[io][idx]") {
  TempDir dir;
  std::string m = message_of<IoError>([&] { idx_load(dir.file("nope-images"), dir.file("nope-labels")); });
  CHECK_THAT(m, Contains("nope-images") && Contains("apt-get install dataset-fashion-mnist") && Contains("point the loader at"));
  m = message_of<IoError>([&] { fashion_mnist_load(dir.path, true); });
  CHECK_THAT(m, Contains(dir.path + "/train-images-idx3-ubyte[.gz]' not found") &&
                    Contains("apt-get install dataset-fashion-mnist") && Contains("point the loader at"));
  // A directory with the files (plain, not gzipped) is found.
  const auto img = pattern(3 * 28 * 28, 5);
  std::vector<std::uint8_t> lab = {9, 0, 3};
  idx_write(dir.file("t10k-images-idx3-ubyte"), {3, 28, 28}, img.data(), false);
  idx_write(dir.file("t10k-labels-idx1-ubyte"), {3}, lab.data(), false);
  Dataset d = fashion_mnist_load(dir.path, false);
  CHECK(d.n == 3);
  CHECK(d.name == "fashion-mnist/test");
  CHECK(d.class_names.at(9) == "Ankle boot");
}

TEST_CASE("the real Fashion-MNIST test set reads", "[io][idx][real]") {
  if (!io::file_exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz") &&
      !io::file_exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte")) {
    ENVIT_SKIP(kFashionMnistDir << " not present (apt-get install dataset-fashion-mnist)");
  }
  Dataset d = fashion_mnist_load(kFashionMnistDir, false);
  CHECK(d.n == 10000);
  CHECK(d.c == 1);
  CHECK(d.h == 28);
  CHECK(d.w == 28);
  CHECK_NOTHROW(d.check());
  std::vector<int> per_class(10, 0);
  for (auto l : d.labels) {
    REQUIRE(l >= 0);
    REQUIRE(l < 10);
    ++per_class[l];
  }
  for (int c = 0; c < 10; ++c) CHECK(per_class[c] == 1000);  // the test set is balanced
  // Images are real pictures: both black background and bright pixels occur.
  auto [mn, mx] = std::minmax_element(d.images.begin(), d.images.end());
  CHECK(*mn == 0);
  CHECK(*mx == 255);
  ChannelStats s = channel_stats(d);
  CHECK(s.mean[0] > 0.2);  // Fashion-MNIST's mean is about 0.286
  CHECK(s.mean[0] < 0.4);
}
