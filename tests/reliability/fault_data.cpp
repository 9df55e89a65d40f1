// tests/reliability/fault_data.cpp — writes a small learnable dataset in Fashion-MNIST's file names
// (plain IDX) for the program-level fault tests: class k is a bright bar at row 2k + 3 on noise.
// Usage: envit_fault_data DIR N_TRAIN N_TEST TRAIN_SIZE TEST_SIZE   (sizes in pixels, square)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "envit/core/rng.hpp"
#include "envit/data/idx.hpp"

static void split(const std::string& dir, const std::string& pre, int n, int s, std::uint64_t seed) {
  envit::CounterRng r(seed, envit::RngStream::init, 7);
  std::vector<std::uint8_t> im(std::size_t(n) * s * s), lb(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const int k = int(r.below(10));
    lb[std::size_t(i)] = std::uint8_t(k);
    std::uint8_t* p = im.data() + std::size_t(i) * s * s;
    for (int q = 0; q < s * s; ++q) p[q] = std::uint8_t(r.below(60));
    const int row = (2 * k + 3) % s;
    for (int x = 0; x < s; ++x) p[row * s + x] = 230;
  }
  envit::idx_write(dir + "/" + pre + "-images-idx3-ubyte", {n, s, s}, im.data(), false);
  envit::idx_write(dir + "/" + pre + "-labels-idx1-ubyte", {n}, lb.data(), false);
}

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s DIR N_TRAIN N_TEST TRAIN_SIZE TEST_SIZE\n", argv[0]);
    return 2;
  }
  split(argv[1], "train", std::atoi(argv[2]), std::atoi(argv[4]), 1);
  split(argv[1], "t10k", std::atoi(argv[3]), std::atoi(argv[5]), 2);
  return 0;
}
