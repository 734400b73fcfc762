// AVX-512 (F, BW, VL, VNNI) int8 kernels. This whole translation unit is compiled for that
// target; only the three entry points leave it, and they are called only after run-time
// detection (cpu_features.cpp) said the CPU has these instructions.
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,fma,f16c")
#include <immintrin.h>

#include "int8_kernels.h"

namespace greenops::cpu::int8 {
namespace {

template <FloatKind KIND>
inline __m512 load16(const void* x, int64_t i, __mmask16 m) {
  if constexpr (KIND == FloatKind::F32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(x) + i);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(x) + i);
    if constexpr (KIND == FloatKind::F16) {
      return _mm512_cvtph_ps(h);
    } else {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
}

inline __mmask16 tail16(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }
inline __mmask64 tail64(int64_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }

template <FloatKind KIND>
void quantize_rows(const void* x, int64_t K, int64_t begin, int64_t end, int8_t* q, float* scale) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t r = begin; r < end; ++r) {
    const int64_t base = r * K;
    __m512 vmax = zero, poison = zero;  // x * 0 is NaN exactly for NaN / +-Inf
    for (int64_t k = 0; k < K; k += 16) {
      const __m512 v = load16<KIND>(x, base + k, tail16(K - k));
      vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v));
      poison = _mm512_add_ps(poison, _mm512_mul_ps(v, zero));
    }
    const float p = _mm512_reduce_add_ps(poison);
    if (p != p) {
      scale[r] = __builtin_nanf("");
      for (int64_t k = 0; k < K; ++k) q[base + k] = 0;
      continue;
    }
    float amax = _mm512_reduce_max_ps(vmax);
    const float s = (amax > kEps ? amax : kEps) / 127.f;
    scale[r] = s;
    const __m512 vs = _mm512_set1_ps(s);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    for (int64_t k = 0; k < K; k += 16) {
      const __mmask16 m = tail16(K - k);
      const __m512 y = _mm512_div_ps(load16<KIND>(x, base + k, m), vs);
      __m512i i = _mm512_cvtps_epi32(
          _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      i = _mm512_max_epi32(_mm512_min_epi32(i, hi), lo);
      _mm512_mask_cvtepi32_storeu_epi8(q + base + k, m, i);
    }
  }
}

// vpdpbusd multiplies unsigned by signed bytes, so a is shifted to a + 128 (a ^ 0x80) and
// 128 * sum_k w[n, k] (one more vpdpbusd against a vector of ones) is subtracted at the end.
// Exact for the whole int8 range, including -128.
template <int MB, int NB>
struct DotTile {
static void run(const DotArgs& p, int64_t m0, int64_t n0) {
  __m512i acc[MB][NB], wsum[NB];
  for (int j = 0; j < NB; ++j) {
    wsum[j] = _mm512_setzero_si512();
    for (int i = 0; i < MB; ++i) acc[i][j] = _mm512_setzero_si512();
  }
  const __m512i flip = _mm512_set1_epi8(char(0x80)), ones = _mm512_set1_epi8(1);
  const int64_t K = p.K;
  auto step = [&](int64_t k, __mmask64 mask) {
    __m512i w[NB];
    for (int j = 0; j < NB; ++j) {
      w[j] = _mm512_maskz_loadu_epi8(mask, p.w + (n0 + j) * K + k);
      wsum[j] = _mm512_dpbusd_epi32(wsum[j], ones, w[j]);
    }
    for (int i = 0; i < MB; ++i) {
      // Masked-off lanes become 0 ^ 0x80 = 128, multiplied by w = 0: no contribution.
      const __m512i a = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, p.a + (m0 + i) * K + k), flip);
      for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], a, w[j]);
    }
  };
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) step(k, ~__mmask64(0));
  if (k < K) step(k, tail64(K - k));
  for (int j = 0; j < NB; ++j) {
    // Unsigned arithmetic: wraps like the int32 accumulator itself instead of being UB.
    const uint32_t corr = 128u * uint32_t(_mm512_reduce_add_epi32(wsum[j]));
    for (int i = 0; i < MB; ++i) {
      p.out[(m0 + i) * p.N + n0 + j] = int32_t(uint32_t(_mm512_reduce_add_epi32(acc[i][j])) - corr);
    }
  }
}
};

template <int MB, int NB>
struct WeightDotTile {
static void run(const WeightDotArgs& p, int64_t m0, int64_t n0) {
  __m512 acc[MB][NB];
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_setzero_ps();
  const int64_t K = p.K;
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 mask = tail16(K - k);
    __m512 w[NB];
    for (int j = 0; j < NB; ++j) {
      w[j] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, p.w + (n0 + j) * K + k)));
    }
    for (int i = 0; i < MB; ++i) {
      const __m512 x = _mm512_maskz_loadu_ps(mask, p.x + (m0 + i) * K + k);
      for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_fmadd_ps(x, w[j], acc[i][j]);
    }
  }
  for (int j = 0; j < NB; ++j) {
    const float s = p.w_scale[n0 + j], b = p.bias ? p.bias[n0 + j] : 0.f;
    for (int i = 0; i < MB; ++i) p.out[(m0 + i) * p.N + n0 + j] = _mm512_reduce_add_ps(acc[i][j]) * s + b;
  }
}
};

#include "tile_walk.h"

}  // namespace

void quantize_rows_avx512(const void* x, FloatKind kind, int64_t K, int64_t begin, int64_t end,
                          int8_t* q, float* scale) {
  switch (kind) {
    case FloatKind::F32: return quantize_rows<FloatKind::F32>(x, K, begin, end, q, scale);
    case FloatKind::F16: return quantize_rows<FloatKind::F16>(x, K, begin, end, q, scale);
    case FloatKind::BF16: return quantize_rows<FloatKind::BF16>(x, K, begin, end, q, scale);
  }
}

void dot_avx512(const DotArgs& p, int64_t n_begin, int64_t n_end) {
  walk<DotTile>(p, n_begin, n_end);
}

void weight_dot_avx512(const WeightDotArgs& p, int64_t n_begin, int64_t n_end) {
  walk<WeightDotTile>(p, n_begin, n_end);
}

}  // namespace greenops::cpu::int8
#endif  // __x86_64__
