// Tests for ops/gather.hpp: gather then scatter is the identity, the backward pairs (gather <->
// scatter-add), empty selections, index validation, and the debug-build index checks.
// Debug checks are forced on in this file so the kernels' ENVIT_DCHECK preconditions are active in
// a Release build (this executable has a single envit translation unit: no ODR mix).
#define ENVIT_DEBUG_CHECKS 1

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "envit/core/parallel.hpp"
#include "envit/ops/gather.hpp"
#include "testing.hpp"

using namespace envit;
using Catch::Contains;
using envit::testing::check_grad;
using envit::testing::random_vec;
using envit::testing::require_close;
using std::int32_t;
using std::ptrdiff_t;
using std::size_t;

using namespace envit::testing;

namespace {

}  // namespace

TEST_CASE("gather then scatter is the identity on selected rows; others untouched", "[gather]") {
  struct Case { ptrdiff_t N, L; };
  for (auto [N, L] : {Case{10, 5}, Case{10, 1}, Case{3, 0}, Case{4096, 192}}) {
    CAPTURE(N, L);
    auto src = random_vec<float>(N * L, 4000 + N);
    std::vector<int32_t> idx;
    for (int32_t i = 0; i < N; ++i) if (i % 3 != 1) idx.push_back(i);
    const ptrdiff_t n = ptrdiff_t(idx.size());
    check_row_indices(idx.data(), n, N, "test");
    std::vector<float> dense(n * L, -1.f);
    gather_rows(dense.data(), src.data(), idx.data(), n, L);
    std::vector<float> expect_dense(n * L);
    for (ptrdiff_t i = 0; i < n; ++i)
      for (ptrdiff_t j = 0; j < L; ++j) expect_dense[i * L + j] = src[idx[i] * L + j];
    REQUIRE(dense == expect_dense);
    // scatter back into a copy: identity
    std::vector<float> back(src);
    scatter_rows(back.data(), dense.data(), idx.data(), n, L);
    REQUIRE(back == src);
    // scatter into a sentinel-filled buffer: selected rows copied, others untouched;
    // scatter-add: selected rows gain src, others keep the prefill
    std::vector<float> out(N * L, 7.f), acc(N * L, 0.5f);
    scatter_rows(out.data(), dense.data(), idx.data(), n, L);
    scatter_add_rows(acc.data(), dense.data(), idx.data(), n, L);
    std::vector<float> expect_out(N * L), expect_acc(N * L);
    for (ptrdiff_t r = 0; r < N; ++r)
      for (ptrdiff_t j = 0; j < L; ++j) {
        const bool selected = r % 3 != 1;
        expect_out[r * L + j] = selected ? src[r * L + j] : 7.f;
        expect_acc[r * L + j] = selected ? 0.5f + src[r * L + j] : 0.5f;
      }
    REQUIRE(out == expect_out);
    REQUIRE(acc == expect_acc);
  }
}

TEST_CASE("gather/scatter: backward of gather is scatter-add, backward of scatter is gather",
          "[gather][grad]") {
  const ptrdiff_t N = 6, L = 3;
  const std::vector<int32_t> idx = {0, 2, 3, 5};
  const ptrdiff_t n = 4;
  auto src = random_vec<double>(N * L, 4100), G = random_vec<double>(n * L, 4101);
  // loss = <gather(src), G>  =>  dsrc = scatter_add(0, G)
  auto loss_g = [&] {
    std::vector<double> d(n * L);
    gather_rows(d.data(), src.data(), idx.data(), n, L);
    double s = 0;
    for (ptrdiff_t i = 0; i < n * L; ++i) s += d[i] * G[i];
    return s;
  };
  std::vector<double> dsrc(N * L, 0.0);
  scatter_add_rows(dsrc.data(), G.data(), idx.data(), n, L);
  check_grad("gather backward", src.data(), dsrc.data(), dsrc.size(), loss_g);
  // loss = <scatter(base, s), H>  =>  ds = gather(H)
  auto s = random_vec<double>(n * L, 4102), base = random_vec<double>(N * L, 4103);
  auto H = random_vec<double>(N * L, 4104);
  auto loss_s = [&] {
    std::vector<double> out(base);
    scatter_rows(out.data(), s.data(), idx.data(), n, L);
    double t = 0;
    for (ptrdiff_t i = 0; i < N * L; ++i) t += out[i] * H[i];
    return t;
  };
  std::vector<double> ds(n * L);
  gather_rows(ds.data(), H.data(), idx.data(), n, L);
  check_grad("scatter backward", s.data(), ds.data(), ds.size(), loss_s);
}

TEST_CASE("gather/scatter: empty selection works", "[gather]") {
  std::vector<float> src(12, 1.f), dst(12, 2.f);
  gather_rows<float>(nullptr, src.data(), nullptr, 0, 4);
  scatter_rows<float>(dst.data(), nullptr, nullptr, 0, 4);
  scatter_add_rows<float>(dst.data(), nullptr, nullptr, 0, 4);
  for (float v : dst) REQUIRE(v == 2.f);
  check_row_indices(nullptr, 0, 3, "test");
  check_row_indices(nullptr, 0, 0, "test");
}

TEST_CASE("check_row_indices: unsorted, duplicate, negative, out of range", "[gather][error]") {
  const int32_t unsorted[] = {0, 3, 2}, dup[] = {1, 1, 2}, neg[] = {-1, 0, 1}, big[] = {0, 1, 5};
  REQUIRE_THROWS_AS(check_row_indices(unsorted, 3, 5, "mask"), ValueError);
  REQUIRE_THROWS_WITH(check_row_indices(unsorted, 3, 5, "mask"),
                      Contains("mask") && Contains("not sorted") && Contains("position 2") && Contains(": 2"));
  REQUIRE_THROWS_WITH(check_row_indices(dup, 3, 5, "mask"), Contains("duplicate") && Contains("position 1"));
  REQUIRE_THROWS_WITH(check_row_indices(neg, 3, 5, "mask"), Contains("negative") && Contains("position 0"));
  REQUIRE_THROWS_WITH(check_row_indices(big, 3, 5, "mask"),
                      Contains("out of range") && Contains("position 2") && Contains("5 >= 5"));
  const int32_t ok[] = {0, 1, 2, 3};
  REQUIRE_THROWS_AS(check_row_indices(ok, 4, 3, "mask"), ValueError);  // more indices than rows
  REQUIRE_NOTHROW(check_row_indices(ok, 4, 4, "mask"));
}

TEST_CASE("gather/scatter kernels check index order in debug builds", "[gather][error]") {
  // ENVIT_DEBUG_CHECKS is defined at the top of this file.
  const int32_t unsorted[] = {2, 1}, neg[] = {-3, 1};
  std::vector<float> big(20, 0.f), small(10, 0.f);
  REQUIRE_THROWS_AS(gather_rows(small.data(), big.data(), unsorted, 2, 5), ValueError);
  REQUIRE_THROWS_AS(scatter_rows(big.data(), small.data(), unsorted, 2, 5), ValueError);
  REQUIRE_THROWS_AS(scatter_add_rows(big.data(), small.data(), neg, 2, 5), ValueError);
  for (float v : big) REQUIRE(v == 0.f);  // nothing written before the check
}
