// envit/io/half.hpp — IEEE binary16 (F16) -> float (BF16: core/bf16.hpp), and a safetensors tensor
// of any float dtype (F64, F32, F16, BF16) widened or narrowed to float. Bit manipulation only, no
// hardware half types; every F16 and BF16 value (subnormals, infinities, NaN) converts exactly.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "envit/core/bf16.hpp"
#include "envit/core/error.hpp"
#include "envit/io/safetensors.hpp"

namespace envit {

inline float f16_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  std::uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);  // inf / NaN
  } else if (exp != 0) {
    u = sign | ((exp + 112u) << 23) | (man << 13);  // normal: rebias 15 -> 127
  } else if (man == 0) {
    u = sign;  // +-0
  } else {     // subnormal: man * 2^-24, exact in float
    float v = static_cast<float>(man) * 0x1p-24f;
    u = sign | std::bit_cast<std::uint32_t>(v);
  }
  return std::bit_cast<float>(u);
}

// The tensor's elements as float. F64 values are rounded to float; other dtypes are an IoError
// naming the file and tensor.
inline std::vector<float> st_to_float(const StTensor& t, const std::string& where) {
  const std::size_t n = static_cast<std::size_t>(t.numel());
  std::vector<float> v(n);
  const std::byte* p = t.data.data();
  if (t.dtype == "F32") {
    if (n) std::memcpy(v.data(), p, n * 4);
  } else if (t.dtype == "F64") {
    for (std::size_t i = 0; i < n; ++i) {
      double d;
      std::memcpy(&d, p + 8 * i, 8);
      v[i] = static_cast<float>(d);
    }
  } else if (t.dtype == "F16" || t.dtype == "BF16") {
    const bool bf = t.dtype == "BF16";
    for (std::size_t i = 0; i < n; ++i) {
      std::uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      v[i] = bf ? bf16_to_float(h) : f16_to_float(h);
    }
  } else {
    throw IoError(detail::cat(where, ": tensor '", t.name, "' has dtype ", t.dtype,
                              "; weights must be F32, F64, F16 or BF16"));
  }
  return v;
}

}  // namespace envit
