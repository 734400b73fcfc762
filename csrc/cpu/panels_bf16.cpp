// bf16 weight panels for the panel GEMMs' weight-only callers (panels.h): quantized weight rows
// widened to bf16 in cache. Compiled for AVX-512 with BF16 and entered only on a path that has
// it (Isa::Avx512Bf16 and up).
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")
#include <immintrin.h>

#include "panels.h"

namespace greenops::cpu {
namespace {

// fp32 -> bf16 bits, nearest-even, NaN quieted: c10::BFloat16's rounding (subnormals kept,
// unlike vcvtneps2bf16), as the dequantized tiles of the other paths are rounded.
__m256i to_bf16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

}  // namespace

// int8 q -> bf16(q): exact (|q| <= 128 has 8 significant bits), so the channel's scale is left
// to the epilogue and the panel costs a widening, not a rounding.
void fill_int8_bf16(const void* ctx, int64_t n0, int64_t rows, uint8_t* dst, int64_t ld) {
  const auto& p = *static_cast<const Int8Panel*>(ctx);
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* src = p.w + (n0 + r) * p.K;
    uint16_t* out = reinterpret_cast<uint16_t*>(dst + r * ld);
    for (int64_t k = 0; k < p.K; k += 32) {  // K is a multiple of 32 (whole tile rows)
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + k));
      const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
      const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
      _mm512_storeu_si512(out + k, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

// Packed int4 -> bf16((q - z) * s): a group's 16 values, rounded as c10::BFloat16 rounds them, in
// one register, looked up by vpermw for 32 nibbles at a time; even k's come from the low nibbles,
// odd ones from the high, interleaved back into natural order.
void fill_int4_bf16(const void* ctx, int64_t n0, int64_t rows, uint8_t* dst, int64_t ld) {
  const auto& p = *static_cast<const Int4Panel*>(ctx);
  const int64_t G = p.K / p.group;
  alignas(64) uint16_t order[32];  // word 2j: element j of the low nibbles' lookup, 2j + 1: the high ones'
  for (int j = 0; j < 16; ++j) order[2 * j] = uint16_t(j), order[2 * j + 1] = uint16_t(32 + j);
  const __m512i first = _mm512_load_si512(order);
  const __m512i second = _mm512_add_epi16(first, _mm512_set1_epi16(16));
  const __m512i low4 = _mm512_set1_epi16(0x0f);
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = p.w + (n0 + r) * (p.K / 2);
    uint16_t* out = reinterpret_cast<uint16_t*>(dst + r * ld);
    for (int64_t g = 0; g < G; ++g) {
      const int64_t i = (n0 + r) * G + g;
      const __m512 v = _mm512_mul_ps(_mm512_sub_ps(iota, _mm512_set1_ps(p.zeros ? p.zeros[i] : 8.f)),
                                     _mm512_set1_ps(p.scales[i]));  // as the reference
      const __m512i table = _mm512_castsi256_si512(to_bf16(v));  // vpermw reads index bits 0-3 here
      int64_t k = g * p.group;
      const int64_t k1 = k + p.group;
      for (; k + 64 <= k1; k += 64) {
        const __m512i b = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + k / 2)));
        const __m512i lo = _mm512_permutexvar_epi16(_mm512_and_si512(b, low4), table);
        const __m512i hi = _mm512_permutexvar_epi16(_mm512_srli_epi16(b, 4), table);
        _mm512_storeu_si512(out + k, _mm512_permutex2var_epi16(lo, first, hi));
        _mm512_storeu_si512(out + k + 32, _mm512_permutex2var_epi16(lo, second, hi));
      }
      if (k < k1) {  // 32 left (group 32, or a per-channel group of 32 m)
        const __m512i b = _mm512_cvtepu8_epi16(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k / 2))));
        const __m512i lo = _mm512_permutexvar_epi16(_mm512_and_si512(b, low4), table);
        const __m512i hi = _mm512_permutexvar_epi16(_mm512_srli_epi16(b, 4), table);
        _mm512_storeu_si512(out + k, _mm512_permutex2var_epi16(lo, first, hi));
      }
    }
  }
}

}  // namespace greenops::cpu
#endif  // __x86_64__
