// fp32 -> bf16 bits on AVX-512 for the GEMM epilogues (amx_gemm.cpp, dot_gemm.cpp). Include
// after the translation unit's `#pragma GCC target` (AVX-512 F/BW); static, so each unit keeps
// the copy compiled for its own target.
#pragma once
#include <immintrin.h>

namespace greenops::cpu {

// Nearest-even, NaN -> 0x7FC0: c10::BFloat16's rounding (subnormals kept, unlike vcvtneps2bf16).
static inline __m256i bf16_bits(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  return _mm512_cvtepi32_epi16(r);
}

}  // namespace greenops::cpu
