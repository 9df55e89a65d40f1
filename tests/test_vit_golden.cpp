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
#include "ops_vit_reference.hpp"

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

const char* kBlockNames[12] = {"norm1_w", "norm1_b", "qkv_w", "qkv_b", "proj_w", "proj_b",
                               "norm2_w", "norm2_b", "fc1_w", "fc1_b", "fc2_w", "fc2_b"};

template <class T>
void check_block(double tol) {
  const auto& sh = fixture().at("block.shape").v;
  REQUIRE(sh.size() == 5);
  BlockShape s{idx(sh[0]), idx(sh[1]), idx(sh[2]), idx(sh[3]), idx(sh[4])};
  const double eps = fixture().at("block.eps").v.at(0);
  const std::size_t D = std::size_t(s.dim), F = std::size_t(s.hidden), n = std::size_t(s.batch * s.tokens) * D;
  const std::size_t sizes[12] = {D, D, 3 * D * D, 3 * D, D * D, D, D, D, F * D, F, D * F, D};
  Pack<T> p;
  for (int i = 0; i < 12; ++i) {
    p.add(kBlockNames[i], sizes[i]);
    const auto& src = get(std::string("block.") + kBlockNames[i], sizes[i]).v;
    for (std::size_t j = 0; j < sizes[i]; ++j) p.v[i][j] = T(src[j]);
  }
  auto x = cast_vec<T>(get("block.x", n).v);
  auto R = cast_vec<T>(get("block.R", n).v);
  auto cache = carve<T>([&](auto& a) { return block_cache_take<T>(a, s); });
  auto ws = carve<T>([&](auto& a) { return block_workspace_take<T>(a, s); });
  BlockParams<T> bp{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]};
  auto g = p.zeros_like();
  BlockGrads<T> bg{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11]};
  std::vector<T> y(n), dx(n, T(0));
  block_forward<T>(y.data(), cache.value, x.data(), bp, s, T(eps));
  block_backward<T>(dx.data(), bg, R.data(), x.data(), cache.value, bp, s, ws.value);
  require_close_scaled("y", y.data(), get("block.y", n).v.data(), n, tol);
  require_close_scaled("dx", dx.data(), get("block.dx", n).v.data(), n, tol);
  for (int i = 0; i < 12; ++i)
    require_close_scaled(std::string("d") + kBlockNames[i], g[i],
                         get(std::string("block.d") + kBlockNames[i], sizes[i]).v.data(), sizes[i], tol);
}

template <class T>
void check_patch_embed(double tol) {
  const auto& sh = fixture().at("patch.shape").v;
  REQUIRE(sh.size() == 6);
  PatchEmbedShape s{idx(sh[0]), idx(sh[1]), idx(sh[2]), idx(sh[3]), idx(sh[4]), idx(sh[5])};
  const std::size_t D = std::size_t(s.dim), K = std::size_t(s.channels * s.patch * s.patch);
  const std::size_t Nt = std::size_t(patch_embed_tokens(s));
  const std::size_t ni = std::size_t(s.batch * s.channels * s.height * s.width), nt = std::size_t(s.batch) * Nt * D;
  const char* names[4] = {"w", "b", "cls", "pos"};
  const std::size_t sizes[4] = {D * K, D, D, Nt * D};
  Pack<T> p;
  for (int i = 0; i < 4; ++i) {
    p.add(names[i], sizes[i]);
    const auto& src = get(std::string("patch.") + names[i], sizes[i]).v;
    for (std::size_t j = 0; j < sizes[i]; ++j) p.v[i][j] = T(src[j]);
  }
  auto img = cast_vec<T>(get("patch.images", ni).v);
  auto R = cast_vec<T>(get("patch.R", nt).v);
  auto cache = carve<T>([&](auto& a) { return patch_embed_cache_take<T>(a, s); });
  auto ws = carve<T>([&](auto& a) { return patch_embed_workspace_take<T>(a, s); });
  PatchEmbedParams<T> pp{p[0], p[1], p[2], p[3]};
  auto g = p.zeros_like();
  std::vector<T> tok(nt);
  patch_embed_forward<T>(tok.data(), cache.value, img.data(), pp, s);
  patch_embed_backward<T>({g[0], g[1], g[2], g[3]}, R.data(), cache.value, pp, s, ws.value);
  require_close_scaled("tokens", tok.data(), get("patch.tokens", nt).v.data(), nt, tol);
  for (int i = 0; i < 4; ++i)
    require_close_scaled(std::string("d") + names[i], g[i],
                         get(std::string("patch.d") + names[i], sizes[i]).v.data(), sizes[i], tol);
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
