// Portable int8 kernels: the reference-shaped path for CPUs without AVX2 (and aarch64).
#include <cmath>
#include <cstring>

#include "int8_kernels.h"

namespace greenops::cpu::int8 {
namespace {

float half_to_float(uint16_t h) {
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

uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);  // quiet NaN
  return uint16_t((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);            // nearest-even
}

uint16_t float_to_half(float f) {
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

float load(const void* x, FloatKind kind, int64_t i) {
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

}  // namespace

void quantize_rows_scalar(const void* x, FloatKind kind, int64_t K, int64_t begin, int64_t end,
                          int8_t* q, float* scale) {
  for (int64_t r = begin; r < end; ++r) {
    const int64_t base = r * K;
    float amax = 0.f, poison = 0.f;  // poison: x * 0 is NaN exactly when x is NaN or +-Inf
    for (int64_t k = 0; k < K; ++k) {
      const float v = load(x, kind, base + k);
      amax = std::fmax(amax, std::fabs(v));
      poison += v * 0.f;
    }
    if (poison != poison) {
      scale[r] = NAN;
      std::memset(q + base, 0, K);
      continue;
    }
    const float s = std::fmax(amax, kEps) / 127.f;
    scale[r] = s;
    for (int64_t k = 0; k < K; ++k) {
      float y = std::nearbyint(load(x, kind, base + k) / s);  // half-to-even (default mode)
      y = std::fmin(std::fmax(y, -127.f), 127.f);
      q[base + k] = static_cast<int8_t>(y);
    }
  }
}

void dot_scalar(const DotArgs& p, int64_t n_begin, int64_t n_end) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    const int8_t* w = p.w + n * p.K;
    for (int64_t m = 0; m < p.M; ++m) {
      const int8_t* a = p.a + m * p.K;
      int32_t acc = 0;
      for (int64_t k = 0; k < p.K; ++k) acc += int32_t(a[k]) * int32_t(w[k]);
      p.out[m * p.N + n] = acc;
    }
  }
}

void weight_dot_scalar(const WeightDotArgs& p, int64_t n_begin, int64_t n_end) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    const int8_t* w = p.w + n * p.K;
    const float b = p.bias ? p.bias[n] : 0.f;
    for (int64_t m = 0; m < p.M; ++m) {
      const float* x = p.x + m * p.K;
      float acc = 0.f;
      for (int64_t k = 0; k < p.K; ++k) acc += x[k] * float(w[k]);
      p.out[m * p.N + n] = acc * p.w_scale[n] + b;
    }
  }
}

void dequantize_rows_scalar(const int8_t* w, const float* scale, int64_t K, int64_t begin,
                            int64_t end, void* out, FloatKind kind) {
  for (int64_t r = begin; r < end; ++r) {
    for (int64_t k = 0; k < K; ++k) {
      const float v = float(w[r * K + k]) * scale[r];
      switch (kind) {
        case FloatKind::F32: static_cast<float*>(out)[r * K + k] = v; break;
        case FloatKind::F16: static_cast<uint16_t*>(out)[r * K + k] = float_to_half(v); break;
        case FloatKind::BF16: static_cast<uint16_t*>(out)[r * K + k] = float_to_bf16(v); break;
      }
    }
  }
}

}  // namespace greenops::cpu::int8
