// Portable int8 kernels: the reference-shaped path for CPUs without AVX2 (and aarch64).
#include <cmath>
#include <cstring>

#include "float_bits.h"
#include "int8_kernels.h"

namespace greenops::cpu::int8 {

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
      store(out, kind, r * K + k, float(w[r * K + k]) * scale[r]);
    }
  }
}

}  // namespace greenops::cpu::int8
