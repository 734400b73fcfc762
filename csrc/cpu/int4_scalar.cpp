// Portable int4 kernels: quantization (offline, every ISA uses it), and the reference-shaped
// gemv and dequantization for CPUs without AVX2 (and aarch64).
#include <algorithm>
#include <cmath>

#include "float_bits.h"
#include "int4_kernels.h"

namespace greenops::cpu::int4 {

void permute_chunks(const float* x, int64_t K, float* out) {
  const int64_t full = K / 32 * 32;
  for (int64_t c = 0; c < full; c += 32) {
    for (int i = 0; i < 16; ++i) {
      out[c + i] = x[c + 2 * i];
      out[c + 16 + i] = x[c + 2 * i + 1];
    }
  }
  for (int64_t k = full; k < K; ++k) out[k] = x[k];
}

void quantize_rows(const void* w, FloatKind kind, int64_t K, int64_t group, bool symmetric,
                   int64_t begin, int64_t end, uint8_t* packed, float* scales, float* zeros) {
  const int64_t G = K / group;
  for (int64_t r = begin; r < end; ++r) {
    for (int64_t g = 0; g < G; ++g) {
      const int64_t k0 = r * K + g * group;
      float lo = INFINITY, hi = -INFINITY, amax = 0.f;
      bool finite = true;
      for (int64_t k = 0; k < group; ++k) {
        const float v = load(w, kind, k0 + k);
        finite = finite && std::isfinite(v);
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        amax = std::max(amax, std::fabs(v));
      }
      float s, z;
      if (!finite) {
        s = z = NAN;
      } else if (symmetric) {
        s = amax / 7.f;
        if (s == 0.f) s = 1.f;
        z = 8.f;
      } else {
        s = (hi - lo) / 15.f;
        if (s == 0.f) s = 1.f;
        z = -lo / s;
      }
      scales[r * G + g] = s;
      if (!symmetric) zeros[r * G + g] = z;
      uint8_t* out = packed + k0 / 2;
      for (int64_t k = 0; k < group; k += 2) {
        uint8_t q[2] = {0, 0};
        for (int j = 0; j < 2 && finite; ++j) {
          const float v = load(w, kind, k0 + k + j);
          // rint: half to even (the default rounding mode), as torch.round.
          const float t = symmetric ? std::nearbyint(v / s) + 8.f : std::nearbyint(v / s + z);
          q[j] = uint8_t(std::clamp(t, 0.f, 15.f));
        }
        out[k / 2] = uint8_t(q[0] | (q[1] << 4));
      }
    }
  }
}

void gemv_scalar(const GemvArgs& p, int64_t n_begin, int64_t n_end) {
  const int64_t G = p.K / p.group, full = p.K / 32 * 32;
  for (int64_t n = n_begin; n < n_end; ++n) {
    const uint8_t* wr = p.w + n * (p.K / 2);
    for (int64_t m = 0; m < p.M; ++m) {
      const float* x = p.x + m * p.K;
      float acc = 0.f;
      for (int64_t g = 0; g < G; ++g) {
        const float s = p.scales[n * G + g], z = p.zeros ? p.zeros[n * G + g] : 8.f;
        for (int64_t k = g * p.group; k < (g + 1) * p.group; k += 2) {
          const uint8_t b = wr[k / 2];
          const float w0 = (float(b & 15) - z) * s, w1 = (float(b >> 4) - z) * s;
          // Whole 32-chunks of x are permuted: element 2i at i, 2i + 1 at 16 + i.
          const int64_t c = k / 32 * 32, i = (k - c) / 2;
          const bool permuted = k < full;
          acc += w0 * x[permuted ? c + i : k] + w1 * x[permuted ? c + 16 + i : k + 1];
        }
      }
      p.out[m * p.N + n] = acc + (p.bias ? p.bias[n] : 0.f);
    }
  }
}

void dequantize_rows_scalar(const uint8_t* w, const float* scales, const float* zeros, int64_t K,
                            int64_t group, int64_t begin, int64_t end, void* out,
                            FloatKind kind) {
  const int64_t G = K / group;
  for (int64_t r = begin; r < end; ++r) {
    for (int64_t k = 0; k < K; ++k) {
      const int64_t g = k / group;
      const float s = scales[r * G + g], z = zeros ? zeros[r * G + g] : 8.f;
      const uint8_t b = w[(r * K + k) / 2];
      store(out, kind, r * K + k, (float(k % 2 ? b >> 4 : b & 15) - z) * s);
    }
  }
}

}  // namespace greenops::cpu::int4
