// Tests of envit/data/cifar.hpp: CIFAR-10 and CIFAR-100 records, concatenation, the standard
// directory layouts, truncated and empty files, label ranges, missing-file messages.
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "envit/data/cifar.hpp"
#include "io/io_util.hpp"

using namespace envit;
using envit::testing::message_of;
using envit::testing::TempDir;
using envit::testing::write_bytes;
using Catch::Matchers::Contains;

namespace {
// Pixel value of record r, channel c, row y, column x in the generated files.
unsigned char px(int r, int c, int y, int x) { return static_cast<unsigned char>(r * 31 + c * 7 + y * 3 + x); }

// CIFAR records with the given label bytes (1 per record for CIFAR-10, 2 for CIFAR-100).
std::string records(const std::vector<std::vector<int>>& labels, int first = 0) {
  std::string s;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    for (int l : labels[r]) s += static_cast<char>(l);
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) s += static_cast<char>(px(first + static_cast<int>(r), c, y, x));
  }
  return s;
}
}  // namespace

TEST_CASE("CIFAR-10 binary files read and concatenate", "[io][cifar]") {
  TempDir dir;
  write_bytes(dir.file("a.bin"), records({{3}, {9}}));
  write_bytes(dir.file("b.bin"), records({{0}}, 2));
  Dataset d = cifar_read({dir.file("a.bin"), dir.file("b.bin")}, CifarKind::cifar10);
  CHECK(d.n == 3);
  CHECK(d.c == 3);
  CHECK(d.h == 32);
  CHECK(d.w == 32);
  CHECK(d.classes == 10);
  CHECK(d.labels == std::vector<std::int32_t>{3, 9, 0});
  CHECK_NOTHROW(d.check());
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      for (int y : {0, 17, 31})
        for (int x : {0, 5, 31}) {
          INFO("record " << r << " c " << c << " y " << y << " x " << x);
          CHECK(d.image(r)[(c * 32 + y) * 32 + x] == px(r, c, y, x));
        }
}

TEST_CASE("CIFAR-100 fine and coarse labels", "[io][cifar]") {
  TempDir dir;
  const std::string p = dir.file("train.bin");
  write_bytes(p, records({{19, 99}, {0, 42}}));
  Dataset fine = cifar_read({p}, CifarKind::cifar100_fine);
  Dataset coarse = cifar_read({p}, CifarKind::cifar100_coarse);
  CHECK(fine.classes == 100);
  CHECK(coarse.classes == 20);
  CHECK(fine.labels == std::vector<std::int32_t>{99, 42});
  CHECK(coarse.labels == std::vector<std::int32_t>{19, 0});
  CHECK(fine.image(1)[5] == px(1, 0, 0, 5));
  write_bytes(p, records({{19, 99}, {20, 42}}));
  CHECK_THAT(message_of<IoError>([&] { cifar_read({p}, CifarKind::cifar100_fine); }),
             Contains("record 1 (byte offset 3074) has coarse label 20 and fine label 42"));
}

TEST_CASE("CIFAR readers reject truncated, empty and out-of-range files", "[io][cifar]") {
  TempDir dir;
  const std::string p = dir.file("data_batch_1.bin");
  std::string two = records({{1}, {2}});
  write_bytes(p, two.substr(0, two.size() - 5));
  CHECK_THAT(message_of<IoError>([&] { cifar_read({p}, CifarKind::cifar10); }),
             Contains("data_batch_1.bin") && Contains("size 6141 is not a multiple of the 3073-byte record") &&
                 Contains("1 whole records + 3068 bytes"));
  // The same bytes are not a whole number of CIFAR-100 records either.
  CHECK_THAT(message_of<IoError>([&] { cifar_read({p}, CifarKind::cifar100_fine); }), Contains("3074-byte record"));
  write_bytes(p, "");
  CHECK_THAT(message_of<IoError>([&] { cifar_read({p}, CifarKind::cifar10); }), Contains("file is empty"));
  write_bytes(p, records({{1}, {10}}));
  CHECK_THAT(message_of<IoError>([&] { cifar_read({p}, CifarKind::cifar10); }),
             Contains("record 1 (byte offset 3073) has label 10, outside [0, 10)"));
  CHECK_THROWS_AS(cifar_read({}, CifarKind::cifar10), ValueError);
}

TEST_CASE("CIFAR loaders find the standard layouts and explain missing files", "[io][cifar]") {
  TempDir dir;
  std::string m = message_of<IoError>([&] { cifar10_load(dir.path, false); });
  CHECK_THAT(m, Contains("test_batch.bin") && Contains("cifar-10-binary.tar.gz") && Contains("point the loader at"));
  m = message_of<IoError>([&] { cifar100_load(dir.path, true); });
  CHECK_THAT(m, Contains("train.bin") && Contains("cifar-100-binary.tar.gz") && Contains("point the loader at"));

  // dir/cifar-10-batches-bin/ as the archive extracts.
  REQUIRE(::mkdir(dir.file("cifar-10-batches-bin").c_str(), 0755) == 0);
  write_bytes(dir.file("cifar-10-batches-bin/test_batch.bin"), records({{7}, {8}, {9}}));
  Dataset d = cifar10_load(dir.path, false);
  CHECK(d.n == 3);
  CHECK(d.name == "cifar10/test");
  CHECK(d.class_names.at(7) == "horse");
  // The training split needs all five batches: the first missing one is named.
  m = message_of<IoError>([&] { cifar10_load(dir.path, true); });
  CHECK_THAT(m, Contains("data_batch_1.bin"));

  // CIFAR-100 in the directory itself, with class names when the label file is there.
  write_bytes(dir.file("test.bin"), records({{1, 2}}));
  std::string names;
  for (int i = 0; i < 20; ++i) names += "coarse" + std::to_string(i) + "\n";
  write_bytes(dir.file("coarse_label_names.txt"), names);
  Dataset c = cifar100_load(dir.path, false, true);
  CHECK(c.labels == std::vector<std::int32_t>{1});
  CHECK(c.class_names.at(19) == "coarse19");
  CHECK(cifar100_load(dir.path, false, false).class_names.empty());
}
