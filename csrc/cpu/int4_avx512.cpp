// AVX-512 int4 kernels. The whole translation unit is compiled for that target and entered only
// after run-time detection. Nibbles become floats through a 16-entry table per group: the
// group's dequantized values (i - z) * s for i = 0..15 in one zmm, indexed by vpermps with the
// packed bytes zero-extended to dwords (vpermps reads only an index's low 4 bits, so the low
// nibble needs no mask and the high one a single shift). The weight is read once, as packed
// bytes, and dequantized only in registers.
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")
#include <immintrin.h>

#include "int4_kernels.h"

namespace greenops::cpu::int4 {
namespace {

inline __m512 group_table(const float* scales, const float* zeros, int64_t i) {
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 z = _mm512_set1_ps(zeros ? zeros[i] : 8.f);
  return _mm512_mul_ps(_mm512_sub_ps(iota, z), _mm512_set1_ps(scales[i]));  // as the reference
}

// MB activation rows against one weight row n: each 32-element chunk of the row is unpacked
// once and used by all MB rows. Low and high nibbles accumulate separately, and for MB <= 2
// two chunks at a time, so that enough independent FMA chains hide the FMA latency (one chain
// per row ran 3x slower at M = 1).
template <int MB>
void rows_times_weight_row(const GemvArgs& p, int64_t m0, int64_t n) {
  constexpr int U = MB <= 2 ? 2 : 1;  // chunks per step
  const int64_t K = p.K, G = K / p.group;
  const uint8_t* wr = p.w + n * (K / 2);
  const float* x0 = p.x + m0 * K;
  __m512 acc[MB][2 * U];
  float tail[MB];
  for (int r = 0; r < MB; ++r) {
    for (int a = 0; a < 2 * U; ++a) acc[r][a] = _mm512_setzero_ps();
    tail[r] = 0.f;
  }
  for (int64_t g = 0; g < G; ++g) {
    const __m512 table = group_table(p.scales, p.zeros, n * G + g);
    const int64_t k1 = (g + 1) * p.group;
    int64_t k = g * p.group;
    auto chunk = [&](int64_t kc, int a) __attribute__((always_inline)) {
      const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + kc / 2)));
      const __m512 lo = _mm512_permutexvar_ps(b, table);
      const __m512 hi = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table);
      for (int r = 0; r < MB; ++r) {
        const float* x = x0 + r * K + kc;
        acc[r][a] = _mm512_fmadd_ps(lo, _mm512_loadu_ps(x), acc[r][a]);
        acc[r][a + 1] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + 16), acc[r][a + 1]);
      }
    };
    if constexpr (U == 2) {
      for (; k + 64 <= k1; k += 64) {
        chunk(k, 0);
        chunk(k + 32, 2);
      }
    }
    for (; k + 32 <= k1; k += 32) chunk(k, 0);
    if (k < k1) {  // a per-channel group (group == K) whose K is not a multiple of 32
      const float s = p.scales[n * G + g], z = p.zeros ? p.zeros[n * G + g] : 8.f;
      for (; k < k1; k += 2) {
        const uint8_t byte = wr[k / 2];
        const float w0 = (float(byte & 15) - z) * s, w1 = (float(byte >> 4) - z) * s;
        for (int r = 0; r < MB; ++r) {
          const float* x = x0 + r * K;
          tail[r] += w0 * x[k] + w1 * x[k + 1];  // the tail past the last chunk is in natural order
        }
      }
    }
  }
  const float b = p.bias ? p.bias[n] : 0.f;
  for (int r = 0; r < MB; ++r) {
    __m512 sum = acc[r][0];
    for (int a = 1; a < 2 * U; ++a) sum = _mm512_add_ps(sum, acc[r][a]);
    p.out[(m0 + r) * p.N + n] = _mm512_reduce_add_ps(sum) + tail[r] + b;
  }
}

template <int MB>
void rows_block(const GemvArgs& p, int64_t m0, int64_t n_begin, int64_t n_end) {
  for (int64_t n = n_begin; n < n_end; ++n) rows_times_weight_row<MB>(p, m0, n);
}

template <int KIND>
inline void store16(void* out, int64_t i, __m512 v) {
  if constexpr (KIND == int(FloatKind::F32)) {
    _mm512_storeu_ps(static_cast<float*>(out) + i, v);
  } else if constexpr (KIND == int(FloatKind::F16)) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(out) + i),
                        _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {  // bf16, nearest-even; NaN stays NaN (quieted)
    const __m512i bits = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(out) + i), _mm512_cvtepi32_epi16(r));
  }
}

template <int KIND>
void dequantize_rows(const uint8_t* w, const float* scales, const float* zeros, int64_t K,
                     int64_t group, int64_t begin, int64_t end, void* out) {
  if (K % 32) return dequantize_rows_scalar(w, scales, zeros, K, group, begin, end, out, FloatKind(KIND));
  const int64_t G = K / group;
  // Interleave the low (even k) and high (odd k) nibbles back into natural order.
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i second = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  for (int64_t r = begin; r < end; ++r) {
    const uint8_t* wr = w + r * (K / 2);
    for (int64_t g = 0; g < G; ++g) {
      const __m512 table = group_table(scales, zeros, r * G + g);
      for (int64_t k = g * group; k < (g + 1) * group; k += 32) {
        const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + k / 2)));
        const __m512 lo = _mm512_permutexvar_ps(b, table);
        const __m512 hi = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table);
        store16<KIND>(out, r * K + k, _mm512_permutex2var_ps(lo, first, hi));
        store16<KIND>(out, r * K + k + 16, _mm512_permutex2var_ps(lo, second, hi));
      }
    }
  }
}

}  // namespace

void gemv_avx512(const GemvArgs& p, int64_t n_begin, int64_t n_end) {
  // Blocks of 8 activation rows: 8 accumulators + 2 unpacked vectors + x stay in registers.
  int64_t m0 = 0;
  for (; m0 + 8 <= p.M; m0 += 8) rows_block<8>(p, m0, n_begin, n_end);
  switch (p.M - m0) {
    case 7: rows_block<7>(p, m0, n_begin, n_end); break;
    case 6: rows_block<6>(p, m0, n_begin, n_end); break;
    case 5: rows_block<5>(p, m0, n_begin, n_end); break;
    case 4: rows_block<4>(p, m0, n_begin, n_end); break;
    case 3: rows_block<3>(p, m0, n_begin, n_end); break;
    case 2: rows_block<2>(p, m0, n_begin, n_end); break;
    case 1: rows_block<1>(p, m0, n_begin, n_end); break;
    default: break;
  }
}

void dequantize_rows_avx512(const uint8_t* w, const float* scales, const float* zeros, int64_t K,
                            int64_t group, int64_t begin, int64_t end, void* out, FloatKind kind) {
  switch (kind) {
    case FloatKind::F32: return dequantize_rows<0>(w, scales, zeros, K, group, begin, end, out);
    case FloatKind::F16: return dequantize_rows<1>(w, scales, zeros, K, group, begin, end, out);
    case FloatKind::BF16: return dequantize_rows<2>(w, scales, zeros, K, group, begin, end, out);
  }
}

}  // namespace greenops::cpu::int4
#endif  // __x86_64__
