// AVX2 + FMA + F16C int8 kernels, for x86-64 CPUs without AVX-512 VNNI. Compiled for that
// target as a whole; entered only after run-time detection (cpu_features.cpp).
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

#include "int8_kernels.h"

namespace greenops::cpu::int8 {
namespace {

template <FloatKind KIND>
inline __m256 load8(const void* x, int64_t i) {
  if constexpr (KIND == FloatKind::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(x) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(x) + i));
    if constexpr (KIND == FloatKind::F16) {
      return _mm256_cvtph_ps(h);
    } else {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
  }
}

template <FloatKind KIND>
inline float load1(const void* x, int64_t i) {
  if constexpr (KIND == FloatKind::F32) {
    return static_cast<const float*>(x)[i];
  } else if constexpr (KIND == FloatKind::F16) {
    return _cvtsh_ss(static_cast<const uint16_t*>(x)[i]);
  } else {
    const uint32_t bits = uint32_t(static_cast<const uint16_t*>(x)[i]) << 16;
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(int(bits))));
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

inline int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

template <FloatKind KIND>
void quantize_rows(const void* x, int64_t K, int64_t begin, int64_t end, int8_t* q, float* scale) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const int64_t K8 = K & ~int64_t(7);
  for (int64_t r = begin; r < end; ++r) {
    const int64_t base = r * K;
    __m256 vmax = zero, poison = zero;  // x * 0 is NaN exactly for NaN / +-Inf
    for (int64_t k = 0; k < K8; k += 8) {
      const __m256 v = load8<KIND>(x, base + k);
      vmax = _mm256_max_ps(vmax, _mm256_and_ps(v, abs_mask));
      poison = _mm256_add_ps(poison, _mm256_mul_ps(v, zero));
    }
    float amax = hmax(vmax), p = hsum(poison);
    for (int64_t k = K8; k < K; ++k) {
      const float v = load1<KIND>(x, base + k);
      const float a = v < 0 ? -v : v;
      amax = a > amax ? a : amax;
      p += v * 0.f;
    }
    if (p != p) {
      scale[r] = __builtin_nanf("");
      for (int64_t k = 0; k < K; ++k) q[base + k] = 0;
      continue;
    }
    const float s = (amax > kEps ? amax : kEps) / 127.f;
    scale[r] = s;
    const __m256 vs = _mm256_set1_ps(s);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    for (int64_t k = 0; k < K8; k += 8) {
      const __m256 y = _mm256_round_ps(_mm256_div_ps(load8<KIND>(x, base + k), vs),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m256i i = _mm256_max_epi32(_mm256_min_epi32(_mm256_cvtps_epi32(y), hi), lo);
      const __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(q + base + k), _mm_packs_epi16(p16, p16));
    }
    for (int64_t k = K8; k < K; ++k) {
      const __m128 y = _mm_round_ss(_mm_setzero_ps(), _mm_set_ss(load1<KIND>(x, base + k) / s),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      float v = _mm_cvtss_f32(y);
      v = v > 127.f ? 127.f : (v < -127.f ? -127.f : v);
      q[base + k] = int8_t(v);
    }
  }
}

// Exact for the whole int8 range: bytes are widened to int16 and multiplied with vpmaddwd
// (vpmaddubsw would saturate at 2 * 128 * 128).
template <int MB, int NB>
struct DotTile {
static void run(const DotArgs& p, int64_t m0, int64_t n0) {
  __m256i acc[MB][NB];
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < NB; ++j) acc[i][j] = _mm256_setzero_si256();
  const int64_t K = p.K, K16 = K & ~int64_t(15);
  for (int64_t k = 0; k < K16; k += 16) {
    __m256i w[NB];
    for (int j = 0; j < NB; ++j)
      w[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p.w + (n0 + j) * K + k)));
    for (int i = 0; i < MB; ++i) {
      const __m256i a = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p.a + (m0 + i) * K + k)));
      for (int j = 0; j < NB; ++j) acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(a, w[j]));
    }
  }
  for (int i = 0; i < MB; ++i) {
    for (int j = 0; j < NB; ++j) {
      int32_t s = hsum(acc[i][j]);
      const int8_t* a = p.a + (m0 + i) * K;
      const int8_t* w = p.w + (n0 + j) * K;
      for (int64_t k = K16; k < K; ++k) s += int32_t(a[k]) * int32_t(w[k]);
      p.out[(m0 + i) * p.N + n0 + j] = s;
    }
  }
}
};

template <int MB, int NB>
struct WeightDotTile {
static void run(const WeightDotArgs& p, int64_t m0, int64_t n0) {
  __m256 acc[MB][NB];
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < NB; ++j) acc[i][j] = _mm256_setzero_ps();
  const int64_t K = p.K, K8 = K & ~int64_t(7);
  for (int64_t k = 0; k < K8; k += 8) {
    __m256 w[NB];
    for (int j = 0; j < NB; ++j) {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p.w + (n0 + j) * K + k));
      w[j] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
    }
    for (int i = 0; i < MB; ++i) {
      const __m256 x = _mm256_loadu_ps(p.x + (m0 + i) * K + k);
      for (int j = 0; j < NB; ++j) acc[i][j] = _mm256_fmadd_ps(x, w[j], acc[i][j]);
    }
  }
  for (int j = 0; j < NB; ++j) {
    const float s = p.w_scale[n0 + j], b = p.bias ? p.bias[n0 + j] : 0.f;
    const int8_t* w = p.w + (n0 + j) * K;
    for (int i = 0; i < MB; ++i) {
      float t = hsum(acc[i][j]);
      const float* x = p.x + (m0 + i) * K;
      for (int64_t k = K8; k < K; ++k) t += x[k] * float(w[k]);
      p.out[(m0 + i) * p.N + n0 + j] = t * s + b;
    }
  }
}
};

#include "tile_walk.h"

}  // namespace

// Large-M W8A16 is bound by the library GEMM, not by this pass: the portable loop serves.
void dequantize_rows_avx2(const int8_t* w, const float* scale, int64_t K, int64_t begin,
                          int64_t end, void* out, FloatKind kind) {
  dequantize_rows_scalar(w, scale, K, begin, end, out, kind);
}

void quantize_rows_avx2(const void* x, FloatKind kind, int64_t K, int64_t begin, int64_t end,
                        int8_t* q, float* scale) {
  switch (kind) {
    case FloatKind::F32: return quantize_rows<FloatKind::F32>(x, K, begin, end, q, scale);
    case FloatKind::F16: return quantize_rows<FloatKind::F16>(x, K, begin, end, q, scale);
    case FloatKind::BF16: return quantize_rows<FloatKind::BF16>(x, K, begin, end, q, scale);
  }
}

void dot_avx2(const DotArgs& p, int64_t n_begin, int64_t n_end) {
  walk_n<EachM<DotTile>::Tile>(p, n_begin, n_end);
}

void weight_dot_avx2(const WeightDotArgs& p, int64_t n_begin, int64_t n_end) {
  walk_n<EachM<WeightDotTile>::Tile>(p, n_begin, n_end);
}

}  // namespace greenops::cpu::int8
#endif  // __x86_64__
