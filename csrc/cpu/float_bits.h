// Scalar float <-> fp16/bf16 conversions (round to nearest even) for the portable kernels.
// static inline: every translation unit gets its own copy, so nothing here can be merged with
// code compiled for another ISA target.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "float_kind.h"

namespace greenops::cpu {

static inline float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // Inf / NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal half: normalize
    int shift = 0;
    while (!(mant & 0x400u)) { mant <<= 1; ++shift; }
    bits = sign | ((113 - shift) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);  // quiet NaN
  return uint16_t((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);            // nearest-even
}

static inline uint16_t float_to_half(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;  // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: Inf
  if (abs < 0x38800000u) {                        // subnormal half (or zero): round at 2^-24
    float a;
    std::memcpy(&a, &abs, 4);
    return sign | uint16_t(std::nearbyint(a * 16777216.f));
  }
  const uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u);  // nearest-even at bit 13
  return sign | uint16_t((r - 0x38000000u) >> 13);
}

static inline float load(const void* x, FloatKind kind, int64_t i) {
  switch (kind) {
    case FloatKind::F32: return static_cast<const float*>(x)[i];
    case FloatKind::F16: return half_to_float(static_cast<const uint16_t*>(x)[i]);
    case FloatKind::BF16: {
      uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(x)[i]) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
  }
  return 0.f;
}


static inline void store(void* out, FloatKind kind, int64_t i, float v) {
  switch (kind) {
    case FloatKind::F32: static_cast<float*>(out)[i] = v; break;
    case FloatKind::F16: static_cast<uint16_t*>(out)[i] = float_to_half(v); break;
    case FloatKind::BF16: static_cast<uint16_t*>(out)[i] = float_to_bf16(v); break;
  }
}

}  // namespace greenops::cpu
