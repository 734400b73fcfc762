// AVX2 int4 kernels: the AVX-512 scheme (a per-group table of the 16 dequantized values,
// indexed by the nibbles) on 8-lane registers, where one vpermps reaches 8 entries: two
// lookups, blended on the index's bit 3. Compiled for this target only; entered after run-time
// detection.
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "int4_kernels.h"

namespace greenops::cpu::int4 {
namespace {

struct Table {
  __m256 lo, hi;  // (i - z) * s for i = 0..7 and 8..15
};

inline Table group_table(const float* scales, const float* zeros, int64_t i) {
  const __m256 z = _mm256_set1_ps(zeros ? zeros[i] : 8.f), s = _mm256_set1_ps(scales[i]);
  const __m256 iota = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), eight = _mm256_set1_ps(8.f);
  return {_mm256_mul_ps(_mm256_sub_ps(iota, z), s),
          _mm256_mul_ps(_mm256_sub_ps(_mm256_add_ps(iota, eight), z), s)};
}

inline __m256 lookup(const Table& t, __m256i idx) {  // only idx's low 4 bits matter
  const __m256 a = _mm256_permutevar8x32_ps(t.lo, idx), b = _mm256_permutevar8x32_ps(t.hi, idx);
  return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

inline __m256i bytes8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int MB>
void rows_times_weight_row(const GemvArgs& p, int64_t m0, int64_t n) {
  const int64_t K = p.K, G = K / p.group;
  const uint8_t* wr = p.w + n * (K / 2);
  __m256 acc[MB];
  float tail[MB];
  for (int r = 0; r < MB; ++r) acc[r] = _mm256_setzero_ps(), tail[r] = 0.f;
  for (int64_t g = 0; g < G; ++g) {
    const Table t = group_table(p.scales, p.zeros, n * G + g);
    const int64_t k1 = (g + 1) * p.group;
    int64_t k = g * p.group;
    for (; k + 32 <= k1; k += 32) {
      // Bytes 0..7 hold elements 0..15 (positions 0..7 even, 16..23 odd of the permuted
      // chunk), bytes 8..15 elements 16..31 (positions 8..15 and 24..31).
      const __m256i b0 = bytes8(wr + k / 2), b1 = bytes8(wr + k / 2 + 8);
      const __m256 w[4] = {lookup(t, b0), lookup(t, b1), lookup(t, _mm256_srli_epi32(b0, 4)),
                           lookup(t, _mm256_srli_epi32(b1, 4))};
      for (int r = 0; r < MB; ++r) {
        const float* x = p.x + (m0 + r) * K + k;
        for (int j = 0; j < 4; ++j) acc[r] = _mm256_fmadd_ps(w[j], _mm256_loadu_ps(x + 8 * j), acc[r]);
      }
    }
    if (k < k1) {  // a per-channel group whose K is not a multiple of 32 (natural order)
      const float s = p.scales[n * G + g], z = p.zeros ? p.zeros[n * G + g] : 8.f;
      for (; k < k1; k += 2) {
        const uint8_t byte = wr[k / 2];
        const float w0 = (float(byte & 15) - z) * s, w1 = (float(byte >> 4) - z) * s;
        for (int r = 0; r < MB; ++r) {
          const float* x = p.x + (m0 + r) * K;
          tail[r] += w0 * x[k] + w1 * x[k + 1];
        }
      }
    }
  }
  const float b = p.bias ? p.bias[n] : 0.f;
  for (int r = 0; r < MB; ++r) p.out[(m0 + r) * p.N + n] = hsum(acc[r]) + tail[r] + b;
}

template <int MB>
void rows_block(const GemvArgs& p, int64_t m0, int64_t n_begin, int64_t n_end) {
  for (int64_t n = n_begin; n < n_end; ++n) rows_times_weight_row<MB>(p, m0, n);
}

// The fixed-point gemv (int4_kernels.h; int4_avx512.cpp explains the scheme) on 8-lane
// registers, each 128-element chunk as two halves of 32 bytes. Without vpdpbusd: vpmaddubsw
// multiplies the nibbles (u8) by x's digits (s8) into pairs of s16 (at most 2 * 15 * 128 = 3840:
// no saturation), the low and high nibbles' pairs are added (7680) and vpmaddwd with ones widens
// them to int32 lanes of 8 products each, joined over the digits Horner style as there.
template <int P, int SPG, int MB>
void fixed_rows(const FixedArgs& a, int64_t m0, int64_t n, int64_t c0, int64_t c1) {
  const int64_t K = a.K, G = K / a.group, chunks = fixed_chunks(K), row_bytes = K / 2;
  const uint8_t* wr = a.w + n * row_bytes;
  const float* sr = a.scales + n * G;
  const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  const int group_shift = G == 1 ? 62 : a.group == 128 ? 7 : 8;  // SPG == 1, as in AVX-512
  auto scale = [&](int64_t g) { return g < G ? sr[g] : 0.f; };  // past K: lanes of zeros
  __m256 acc[MB];
  for (int r = 0; r < MB; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t c = c0; c < c1; ++c) {
    _mm_prefetch(reinterpret_cast<const char*>(wr + row_bytes + c * 64), _MM_HINT_T0);  // next row
    for (int h = 0; h < 2; ++h) {
      const int64_t off = c * 64 + 32 * h;
      if (off >= row_bytes) break;
      __m256i v;
      if (off + 32 <= row_bytes) {
        v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + off));
      } else {  // the row's last bytes; the digits past K are zero
        alignas(32) uint8_t tail[32] = {};
        std::memcpy(tail, wr + off, row_bytes - off);
        v = _mm256_load_si256(reinterpret_cast<const __m256i*>(tail));
      }
      const __m256i lo = _mm256_and_si256(v, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      __m256 ws;  // weight scale per lane (lane i: elements 8i .. 8i + 7 of the half)
      if constexpr (SPG == 1) {
        ws = _mm256_set1_ps(sr[(c * kFixedChunk) >> group_shift]);
      } else if constexpr (SPG == 2) {
        ws = _mm256_set1_ps(scale(2 * c + h));
      } else {
        const float s0 = scale(4 * c + 2 * h), s1 = scale(4 * c + 2 * h + 1);
        ws = _mm256_setr_ps(s0, s0, s0, s0, s1, s1, s1, s1);
      }
      for (int r = 0; r < MB; ++r) {
        const int8_t* xc = a.x + ((m0 + r) * chunks + c) * P * kFixedChunk + 32 * h;
        __m256i sum = _mm256_setzero_si256();
        for (int p = 0; p < P; ++p) {
          const __m256i xe = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc + p * kFixedChunk));
          const __m256i xo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc + p * kFixedChunk + 64));
          const __m256i t = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xe), _mm256_maddubs_epi16(hi, xo));
          const __m256i d = _mm256_madd_epi16(t, ones);
          sum = p ? _mm256_add_epi32(_mm256_slli_epi32(sum, 8), d) : d;
        }
        const __m256 f = _mm256_mul_ps(_mm256_loadu_ps(a.sigma + ((m0 + r) * chunks + c) * 16 + 8 * h), ws);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), f, acc[r]);
      }
    }
  }
  for (int r = 0; r < MB; ++r) {
    float* out = a.out + (m0 + r) * a.N + n;
    const float part = hsum(acc[r]);
    if (c0 > 0) {
      *out += part;
      continue;
    }
    const float* gs = a.gsum + (m0 + r) * G;
    float zt = 0.f;  // zero points: sum_g s * z * gsum[g]
    for (int64_t g = 0; g < G; ++g) zt += sr[g] * (a.zeros ? a.zeros[n * G + g] : 8.f) * gs[g];
    *out = part - zt + (a.bias ? a.bias[n] : 0.f);
  }
}

#include "int4_fixed.h"  // the loops around fixed_rows

}  // namespace

void gemv_fixed_avx2(const FixedArgs& a, int64_t n_begin, int64_t n_end) {
  fixed_gemv(a, n_begin, n_end);
}

void gemv_avx2(const GemvArgs& p, int64_t n_begin, int64_t n_end) {
  int64_t m0 = 0;
  for (; m0 + 4 <= p.M; m0 += 4) rows_block<4>(p, m0, n_begin, n_end);
  switch (p.M - m0) {
    case 3: rows_block<3>(p, m0, n_begin, n_end); break;
    case 2: rows_block<2>(p, m0, n_begin, n_end); break;
    case 1: rows_block<1>(p, m0, n_begin, n_end); break;
    default: break;
  }
}

// The large-M path's tile: dequantization is a small share of that path (the GEMM dominates),
// so the portable loop serves it on AVX2 machines.
void dequantize_rows_avx2(const uint8_t* w, const float* scales, const float* zeros, int64_t K,
                          int64_t group, int64_t begin, int64_t end, void* out, FloatKind kind) {
  dequantize_rows_scalar(w, scales, zeros, K, group, begin, end, out, kind);
}

}  // namespace greenops::cpu::int4
#endif  // __x86_64__
