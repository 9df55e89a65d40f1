// envit/core/bf16.hpp — bfloat16 <-> float, scalar: the one definition of the rounding every BF16
// path uses (the GEMM's operand packing, the kernel sets' reference tests, the safetensors readers).
// Round to nearest even; a NaN stays a quiet NaN (as torch's float -> bfloat16 cast); infinities
// and subnormals convert exactly (no flush to zero here: the hardware dot products may flush
// subnormal BF16 inputs, see kernels/dispatch.hpp).
#pragma once
#include <bit>
#include <cstdint>

namespace envit {

inline float bf16_to_float(std::uint16_t h) { return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16); }

inline std::uint16_t float_to_bf16(float f) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

// f rounded to the nearest BF16 value, as a float (exactly representable in both).
inline float round_to_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

}  // namespace envit
