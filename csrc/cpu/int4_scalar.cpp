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

bool to_fixed_scalar(const float* x, int64_t K, int64_t group, int P, int8_t* bytes, float* sigma,
                     float* gsum) {
  const int64_t chunks = fixed_chunks(K), G = K / group;
  const float unit = P == 3 ? 65536.f : 256.f;
  std::fill(bytes, bytes + chunks * P * kFixedChunk, int8_t(0));
  std::fill(sigma, sigma + chunks * 16, 0.f);
  double sum = 0.0;
  for (int64_t k0 = 0; k0 < K; k0 += 32) {
    const int64_t k1 = std::min(K, k0 + 32);
    float amax = 0.f;
    for (int64_t k = k0; k < k1; ++k) {
      if (!std::isfinite(x[k])) return false;
      amax = std::max(amax, std::fabs(x[k]));
    }
    if (amax != 0.f && (amax < 0x1p-100f || amax > 0x1p100f)) return false;
    const int64_t c = k0 / kFixedChunk;
    float* lanes = sigma + c * 16 + (k0 % kFixedChunk) / 8;
    const float sig = amax / 127.f / unit;  // as to_fixed_avx512 computes it
    for (int i = 0; i < 4; ++i) lanes[i] = sig;
    int64_t total = 0;
    if (amax != 0.f) {
      const float scale = 127.f * unit / amax;
      const int32_t lim = 127 * int32_t(unit);
      int8_t* chunk = bytes + c * P * kFixedChunk;
      for (int64_t k = k0; k < k1; ++k) {
        int32_t X = std::clamp(int32_t(std::nearbyint(x[k] * scale)), -lim, lim);  // nearest-even
        total += X;
        const int64_t j = k % kFixedChunk, slot = (j % 2) * 64 + j / 2;  // even | odd
        for (int p = P - 1; p >= 0; --p) {
          // Balanced digit: the low byte sign-extended; X - digit is then a multiple of 256.
          const int8_t digit = p ? int8_t(uint8_t(X & 0xff)) : int8_t(X);
          chunk[p * kFixedChunk + slot] = digit;
          X = (X - digit) / 256;
        }
      }
    }
    sum += double(total) * double(sig);
    if (k1 % group == 0 || k1 == K) {  // a group ends on a block boundary or at K
      gsum[std::min(k0 / group, G - 1)] = float(sum);
      sum = 0.0;
    }
  }
  return true;
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
        if (std::isinf(s)) {
          // hi - lo beyond FLT_MAX (a finite range near +-3e38): the scale without overflow, and
          // the range pulled in by 2^-20 (16 ulps; the rounding of z, 15 - z and the products is
          // < 10) so that the levels 0 and 15 cannot dequantize past FLT_MAX
          lo *= 1.f - 0x1p-20f;
          hi *= 1.f - 0x1p-20f;
          s = hi / 15.f - lo / 15.f;
        }
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
