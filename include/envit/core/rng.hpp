// envit/core/rng.hpp — counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
// Every draw is a pure function of (key, counter): masks and augmentations keyed by
// (seed, step, block, sample) do not depend on thread count or call order, and a resumed run
// only needs its step counter to reproduce them. Not cryptographic.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

namespace envit {

using Philox4 = std::array<std::uint32_t, 4>;

// Philox4x32 with 10 rounds: 4 random 32-bit words for counter `ctr` under 64-bit key `key`.
inline Philox4 philox4x32(Philox4 ctr, std::uint64_t key) {
  std::uint32_t k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    std::uint64_t p0 = std::uint64_t{0xD2511F53u} * ctr[0];
    std::uint64_t p1 = std::uint64_t{0xCD9E8D57u} * ctr[2];
    ctr = {static_cast<std::uint32_t>(p1 >> 32) ^ ctr[1] ^ k0, static_cast<std::uint32_t>(p1),
           static_cast<std::uint32_t>(p0 >> 32) ^ ctr[3] ^ k1, static_cast<std::uint32_t>(p0)};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return ctr;
}

// Uniform in [0, 1) from the top 24 bits of a word (exactly representable in float and double).
inline double uniform01(std::uint32_t w) { return static_cast<double>(w >> 8) * (1.0 / 16777216.0); }

// Stream identities so different consumers of one seed never share counters.
enum class RngStream : std::uint32_t { init = 1, dropout = 2, shuffle = 3, augment = 4, split = 5, thresholds = 6 };

// A small sequential generator on top of Philox for code that wants "next()" semantics
// (initialisation, shuffling). Its whole state is (key, stream, a, b, counter): copyable, saveable.
struct CounterRng {
  std::uint64_t key = 0;
  std::uint32_t stream = 0, a = 0;  // caller-chosen coordinates (e.g. stream, epoch)
  std::uint32_t counter = 0;        // advances by one block of 4 words
  Philox4 buf{};
  int used = 4;

  CounterRng() = default;
  CounterRng(std::uint64_t seed, RngStream s, std::uint32_t a_ = 0)
      : key(seed), stream(static_cast<std::uint32_t>(s)), a(a_) {}

  std::uint32_t next_u32() {
    if (used == 4) {
      buf = philox4x32({counter++, a, stream, 0x454E5654u /* "ENVT" */}, key);
      used = 0;
    }
    return buf[used++];
  }
  double uniform() { return uniform01(next_u32()); }
  // Unbiased integer in [0, n) (Lemire's method with rejection).
  std::uint32_t below(std::uint32_t n) {
    std::uint64_t m = std::uint64_t{next_u32()} * n;
    std::uint32_t l = static_cast<std::uint32_t>(m);
    if (l < n) {
      std::uint32_t t = static_cast<std::uint32_t>(-n) % n;
      while (l < t) { m = std::uint64_t{next_u32()} * n; l = static_cast<std::uint32_t>(m); }
    }
    return static_cast<std::uint32_t>(m >> 32);
  }
  // Standard normal (Box-Muller, one value per call; deterministic).
  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

// One uniform draw in [0, 1) addressed by four coordinates: no state at all.
inline double uniform_at(std::uint64_t seed, RngStream s, std::uint32_t a, std::uint32_t b,
                         std::uint32_t c) {
  return uniform01(philox4x32({a, b, c, static_cast<std::uint32_t>(s)}, seed)[0]);
}

}  // namespace envit
