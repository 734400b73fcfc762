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

#include "tile_walk.h"

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
// 128 * sum_k w[n, k] (one more vpdpbusd against a vector of ones, on the first m-tile of each
// n-tile only) is subtracted at the end. Exact for the whole int8 range, including -128.
template <int MB, int NB, bool SUM_W>
void dot_block(const DotArgs& p, int64_t m0, int64_t n0, uint32_t* corr) {
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
      if (SUM_W) wsum[j] = _mm512_dpbusd_epi32(wsum[j], ones, w[j]);
    }
    for (int i = 0; i < MB; ++i) {
      // Masked-off lanes become 0 ^ 0x80 = 128, multiplied by w = 0: no contribution.
      const __m512i a =
          _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, p.a + (m0 + i) * K + k), flip);
      for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], a, w[j]);
    }
  };
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) step(k, ~__mmask64(0));
  if (k < K) step(k, tail64(K - k));
  for (int j = 0; j < NB; ++j) {
    // Unsigned arithmetic: wraps like the int32 accumulator itself instead of being UB.
    if (SUM_W) corr[j] = 128u * uint32_t(_mm512_reduce_add_epi32(wsum[j]));
    for (int i = 0; i < MB; ++i) {
      p.out[(m0 + i) * p.N + n0 + j] =
          int32_t(uint32_t(_mm512_reduce_add_epi32(acc[i][j])) - corr[j]);
    }
  }
}

template <int NB>
struct DotTile {
  static void run(const DotArgs& p, int64_t n0) {
    uint32_t corr[NB];
    walk_m(p.M, [&](auto mb, int64_t m0) {
      constexpr int MB = decltype(mb)::value;
      if (m0 == 0) {
        dot_block<MB, NB, true>(p, m0, n0, corr);
      } else {
        dot_block<MB, NB, false>(p, m0, n0, corr);
      }
    });
  }
};

// W8A16. Per n-tile of NB weight rows and k-block of KB: the int8 block is converted to fp32
// once into an L1 buffer and reused by every m-tile (converting inside the FMA loop redoes it
// per m-tile: at M = 16, 4096x4096 that measured 4.5 ms against 2.9 ms for this layout);
// partial sums stay in 16-lane vectors in an L1 buffer across k-blocks, reduced once at the end.
constexpr int64_t KB = 512;

template <int MB, int NB>
void weight_dot_block(const WeightDotArgs& p, const float (*wf)[KB], int64_t k0, int64_t kb,
                      int64_t m0, float (*accbuf)[4][16]) {
  __m512 acc[MB][NB];
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < NB; ++j)
      acc[i][j] = k0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(accbuf[m0 + i][j]);
  const float* x = p.x + m0 * p.K + k0;
  for (int64_t k = 0; k < kb; k += 16) {
    const __mmask16 mask = tail16(kb - k);
    __m512 w[NB];
    for (int j = 0; j < NB; ++j) w[j] = _mm512_load_ps(wf[j] + k);  // zero-padded past kb
    for (int i = 0; i < MB; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * p.K + k);
      for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_fmadd_ps(xv, w[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < NB; ++j) _mm512_store_ps(accbuf[m0 + i][j], acc[i][j]);
}

template <int NB>
struct WeightDotTile {
  static void run(const WeightDotArgs& p, int64_t n0) {
    alignas(64) float wf[NB][KB];
    alignas(64) float accbuf[kWeightDotMaxRows][4][16];
    const int64_t K = p.K;
    for (int64_t k0 = 0; k0 < K; k0 += KB) {
      const int64_t kb = K - k0 < KB ? K - k0 : KB;
      for (int j = 0; j < NB; ++j) {
        const int8_t* w = p.w + (n0 + j) * K + k0;
        for (int64_t k = 0; k < kb; k += 16) {
          const __m128i b = _mm_maskz_loadu_epi8(tail16(kb - k), w + k);
          _mm512_store_ps(wf[j] + k, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)));
        }
      }
      walk_m(p.M, [&](auto mb, int64_t m0) {
        weight_dot_block<decltype(mb)::value, NB>(p, wf, k0, kb, m0, accbuf);
      });
    }
    for (int j = 0; j < NB; ++j) {
      const float s = p.w_scale[n0 + j], b = p.bias ? p.bias[n0 + j] : 0.f;
      for (int64_t m = 0; m < p.M; ++m) {
        const float dot = K == 0 ? 0.f : _mm512_reduce_add_ps(_mm512_load_ps(accbuf[m][j]));
        p.out[m * p.N + n0 + j] = dot * s + b;
      }
    }
  }
};


template <FloatKind KIND>
void dequantize_rows(const int8_t* w, const float* scale, int64_t K, int64_t begin, int64_t end,
                     void* out) {
  for (int64_t r = begin; r < end; ++r) {
    const __m512 s = _mm512_set1_ps(scale[r]);
    for (int64_t k = 0; k < K; k += 16) {
      const __mmask16 m = tail16(K - k);
      const __m512 v = _mm512_mul_ps(
          _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, w + r * K + k))), s);
      if constexpr (KIND == FloatKind::F32) {
        _mm512_mask_storeu_ps(static_cast<float*>(out) + r * K + k, m, v);
      } else {
        __m256i h;
        if constexpr (KIND == FloatKind::F16) {
          h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        } else {  // bf16, nearest-even; NaN stays NaN (0x7fc0... + 0x7fff carries no further)
          const __m512i b = _mm512_castps_si512(v);
          const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
          const __m512i r16 = _mm512_srli_epi32(
              _mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
          h = _mm512_cvtepi32_epi16(r16);
        }
        _mm256_mask_storeu_epi16(static_cast<uint16_t*>(out) + r * K + k, m, h);
      }
    }
  }
}

}  // namespace

void dequantize_rows_avx512(const int8_t* w, const float* scale, int64_t K, int64_t begin,
                            int64_t end, void* out, FloatKind kind) {
  switch (kind) {
    case FloatKind::F32: return dequantize_rows<FloatKind::F32>(w, scale, K, begin, end, out);
    case FloatKind::F16: return dequantize_rows<FloatKind::F16>(w, scale, K, begin, end, out);
    case FloatKind::BF16: return dequantize_rows<FloatKind::BF16>(w, scale, K, begin, end, out);
  }
}

void quantize_rows_avx512(const void* x, FloatKind kind, int64_t K, int64_t begin, int64_t end,
                          int8_t* q, float* scale) {
  switch (kind) {
    case FloatKind::F32: return quantize_rows<FloatKind::F32>(x, K, begin, end, q, scale);
    case FloatKind::F16: return quantize_rows<FloatKind::F16>(x, K, begin, end, q, scale);
    case FloatKind::BF16: return quantize_rows<FloatKind::BF16>(x, K, begin, end, q, scale);
  }
}

void dot_avx512(const DotArgs& p, int64_t n_begin, int64_t n_end) {
  walk_n<DotTile>(p, n_begin, n_end);
}

void weight_dot_avx512(const WeightDotArgs& p, int64_t n_begin, int64_t n_end) {
  walk_n<WeightDotTile>(p, n_begin, n_end);
}

}  // namespace greenops::cpu::int8
#endif  // __x86_64__
