// Golden test: envit's block and patch embedding against PyTorch 1.13 (float64) values in
// tests/data/vit_block_fixture.txt, produced by tests/data/gen_block_fixture.py (a plain-torch copy
// of timm's Block / PatchEmbed + class token + position embedding), loss = sum(out * R).
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "envit/core/error.hpp"
#include "envit/ops/block.hpp"
#include "envit/ops/patch_embed.hpp"
#include "ops/vit_op_testing.hpp"

using namespace envit;
using namespace envit::testing;
using namespace envit::testing::vit;

namespace {

struct FixTensor {
  std::vector<std::ptrdiff_t> dims;
  std::vector<double> v;
};
using Fixture = std::map<std::string, FixTensor>;

std::string data_dir() {
  if (const char* d = std::getenv("ENVIT_TEST_DATA")) return d;
#ifdef ENVIT_TEST_DATA_DIR
  return ENVIT_TEST_DATA_DIR;
#else
  return "tests/data";
#endif
}

// Lines "name ndim d0 .. d{ndim-1} v0 v1 ..."; '#' starts a comment line.
Fixture load_fixture(const std::string& path) {
  std::ifstream f(path);
  ENVIT_CHECK(f.good(), IoError, "cannot open fixture ", path, " (set ENVIT_TEST_DATA)");
  Fixture fx;
  std::string line;
  int lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    std::string name;
    int nd = -1;
    is >> name >> nd;
    ENVIT_CHECK(is && nd >= 0 && nd <= 8, IoError, path, ":", lineno, ": bad header for '", name, "'");
    FixTensor t;
    std::size_t numel = 1;
    for (int i = 0; i < nd; ++i) {
      std::ptrdiff_t d = -1;
      is >> d;
      ENVIT_CHECK(is && d >= 0, IoError, path, ":", lineno, ": bad dimension ", i, " of '", name, "'");
      t.dims.push_back(d);
      numel *= std::size_t(d);
    }
    t.v.resize(numel);
    for (std::size_t i = 0; i < numel; ++i) {
      is >> t.v[i];
      ENVIT_CHECK(is, IoError, path, ":", lineno, ": '", name, "' has ", i, " of ", numel, " values");
    }
    double extra;
    ENVIT_CHECK(!(is >> extra), IoError, path, ":", lineno, ": '", name, "' has more than ", numel, " values");
    fx[name] = std::move(t);
  }
  return fx;
}

const Fixture& fixture() {
  static const Fixture fx = load_fixture(data_dir() + "/vit_block_fixture.txt");
  return fx;
}

const FixTensor& get(const std::string& name, std::size_t numel) {
  auto it = fixture().find(name);
  ENVIT_CHECK(it != fixture().end(), IoError, "fixture has no tensor '", name, "'");
  ENVIT_CHECK(it->second.v.size() == numel, ShapeError, "fixture tensor '", name, "': expected ", numel,
              " values, got ", it->second.v.size());
  return it->second;
}

// The fixture tensors prefix + name for each field of layout, as a Pack (e.g. "block.qkv_w").
template <class T>
Pack<T> fixture_pack(const std::string& prefix, const Layout& layout) {
  Pack<T> p;
  for (const Field& f : layout) {
    p.add(f.name, f.size);
    p.v.back() = cast_vec<T>(get(prefix + f.name, f.size).v);
  }
  return p;
}

// One forward+backward of the op at shape s on the fixture's "<prefix><in_name>" input, its
// parameters and R (the upstream gradient), against its output, dx and "<prefix>d<param>" values.
template <class T, class Shape, class... FwdArgs>
void check_fixture(const std::string& prefix, const std::string& in_name, Shape s, double tol,
                   FwdArgs... fwd_args) {
  using O = Op<Shape, T>;
  const Layout layout = O::layout(s);
  const std::size_t ni = O::in_size(s), no = O::out_size(s);
  Case<Shape, T> c{s, cast_vec<T>(get(prefix + in_name, ni).v), cast_vec<T>(get(prefix + "R", no).v),
                   fixture_pack<T>(prefix, layout)};
  const std::vector<double> dx = O::has_dx ? get(prefix + "dx", ni).v : std::vector<double>{};
  RefRun<NoCache> want{get(prefix + O::out_name, no).v, dx, fixture_pack<double>(prefix + "d", layout), {}};
  require_matches(run(c, O::batch(s), fwd_args...), want, tol);
}

template <class T>
void check_block(double tol) {
  const auto& sh = fixture().at("block.shape").v;
  REQUIRE(sh.size() == 5);
  BlockShape s{idx(sh[0]), idx(sh[1]), idx(sh[2]), idx(sh[3]), idx(sh[4])};
  const double eps = fixture().at("block.eps").v.at(0);
  check_fixture<T>("block.", "x", s, tol, T(eps));
}

template <class T>
void check_patch_embed(double tol) {
  const auto& sh = fixture().at("patch.shape").v;
  REQUIRE(sh.size() == 6);
  PatchEmbedShape s{idx(sh[0]), idx(sh[1]), idx(sh[2]), idx(sh[3]), idx(sh[4]), idx(sh[5])};
  check_fixture<T>("patch.", "images", s, tol);
}

}  // namespace

TEST_CASE("golden fixture parses with the expected tensors", "[golden][io]") {
  REQUIRE(fixture().size() == 42);
  REQUIRE(fixture().at("block.x").dims == std::vector<std::ptrdiff_t>{2, 5, 12});
  REQUIRE(fixture().at("patch.images").dims == std::vector<std::ptrdiff_t>{2, 3, 8, 12});
  REQUIRE_THROWS_AS(load_fixture(data_dir() + "/no_such_fixture.txt"), IoError);
}

// Tolerances are relative to each tensor's largest entry (require_close_scaled). Double: envit and
// torch differ only in summation order; observed <= 1.4e-15, 1e-12 allowed. Float (inputs rounded
// to float, compared with torch's float64 values): observed <= 5e-7, 1e-5 allowed.
TEST_CASE("block matches PyTorch (double)", "[golden][block]") { check_block<double>(1e-12); }
TEST_CASE("block matches PyTorch (float)", "[golden][block]") { check_block<float>(1e-5); }
TEST_CASE("patch embedding matches PyTorch conv2d (double)", "[golden][patch_embed]") {
  check_patch_embed<double>(1e-12);
}
TEST_CASE("patch embedding matches PyTorch conv2d (float)", "[golden][patch_embed]") {
  check_patch_embed<float>(1e-5);
}
