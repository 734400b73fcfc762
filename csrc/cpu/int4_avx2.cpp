// AVX2 int4 kernels: the AVX-512 scheme (a per-group table of the 16 dequantized values,
// indexed by the nibbles) on 8-lane registers, where one vpermps reaches 8 entries: two
// lookups, blended on the index's bit 3. Compiled for this target only; entered after run-time
// detection.
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

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

}  // namespace

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
