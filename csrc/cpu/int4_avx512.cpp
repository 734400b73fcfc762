// AVX-512 int4 kernels. The whole translation unit is compiled for that target and entered only
// after run-time detection. Nibbles become floats through a 16-entry table per group: the
// group's dequantized values (i - z) * s for i = 0..15 in one zmm, indexed by vpermps with the
// packed bytes zero-extended to dwords (vpermps reads only an index's low 4 bits, so the low
// nibble needs no mask and the high one a single shift). The weight is read once, as packed
// bytes, and dequantized only in registers.
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

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

// One 32-element block of x (elements k0 .. k0 + n, n <= 32) into P digit bytes per element
// (even elements, then odd, at their chunk slots) and its lane scales; returns sum X (|X| <=
// 127 * unit, so at most 32 * 127 * 2^16 < 2^31), or -1 with *ok = false for a value to refuse.
template <int P>
int64_t fixed_block(const float* x, int64_t n, int8_t* chunk, int64_t slot, float* lanes, bool* ok) {
  const __mmask16 m0 = __mmask16(n >= 16 ? 0xffff : (1u << n) - 1);
  const __mmask16 m1 = __mmask16(n >= 32 ? 0xffff : n <= 16 ? 0 : (1u << (n - 16)) - 1);
  const __m512 x0 = _mm512_maskz_loadu_ps(m0, x), x1 = _mm512_maskz_loadu_ps(m1, x + 16);
  const __m512 inf = _mm512_set1_ps(INFINITY);
  const __m512 a0 = _mm512_abs_ps(x0), a1 = _mm512_abs_ps(x1);
  // Not less than Inf, or unordered: Inf or NaN.
  if (_mm512_cmp_ps_mask(a0, inf, _CMP_NLT_UQ) | _mm512_cmp_ps_mask(a1, inf, _CMP_NLT_UQ)) return *ok = false, -1;
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
  constexpr float unit = P == 3 ? 65536.f : 256.f;
  const __m512 sig = _mm512_set1_ps(amax / 127.f / unit);
  _mm512_mask_storeu_ps(lanes, 0x000f, sig);  // the block's 4 lanes
  if (amax == 0.f) return 0;
  if (amax < 0x1p-100f || amax > 0x1p100f) return *ok = false, -1;
  const __m512 c = _mm512_set1_ps(127.f * unit / amax);
  const __m512i lim = _mm512_set1_epi32(127 * int32_t(unit));
  // Even elements (low nibbles) and odd ones (high nibbles), 16 each.
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  int32_t total = 0;
  for (int half = 0; half < 2; ++half) {
    const __m512 v = _mm512_permutex2var_ps(x0, half ? odd : even, x1);
    __m512i X = _mm512_cvtps_epi32(_mm512_mul_ps(v, c));  // nearest-even
    X = _mm512_max_epi32(_mm512_min_epi32(X, lim), _mm512_sub_epi32(_mm512_setzero_si512(), lim));
    total += _mm512_reduce_add_epi32(X);
    for (int p = P - 1; p >= 0; --p) {
      // Balanced digit: the low byte sign-extended; X - digit is then a multiple of 256.
      const __m512i digit = p ? _mm512_srai_epi32(_mm512_slli_epi32(X, 24), 24) : X;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(chunk + p * kFixedChunk + half * 64 + slot), _mm512_cvtepi32_epi8(digit));
      X = _mm512_srai_epi32(_mm512_sub_epi32(X, digit), 8);
    }
  }
  return total;
}

template <int P>
bool to_fixed(const float* x, int64_t K, int64_t group, int8_t* bytes, float* sigma, float* gsum) {
  const int64_t chunks = fixed_chunks(K), G = K / group;
  std::memset(bytes, 0, chunks * P * kFixedChunk);
  std::memset(sigma, 0, chunks * 16 * sizeof(float));
  double sum = 0.0;
  bool ok = true;
  for (int64_t k = 0; k < K; k += 32) {
    const int64_t c = k / kFixedChunk, bi = (k % kFixedChunk) / 32;
    float* lanes = sigma + c * 16 + bi * 4;
    const int64_t total = fixed_block<P>(x + k, std::min<int64_t>(32, K - k), bytes + c * P * kFixedChunk, bi * 16, lanes, &ok);
    if (!ok) return false;
    sum += double(total) * double(*lanes);  // X * sigma / unit, as the kernel scales
    // A group ends on a block boundary (groups are multiples of 32) or at K (per channel).
    if ((k + 32) % group == 0 || k + 32 >= K) {
      gsum[std::min(k / group, G - 1)] = float(sum);
      sum = 0.0;
    }
  }
  return true;
}

// The fixed-point gemv (int4_kernels.h, to_fixed): per 64-byte chunk of a weight row, the low
// and high nibbles are masked out as bytes (no widening, no table) and vpdpbusd multiplies them
// by the P digit vectors of x, four products per lane per instruction, exactly in int32. The
// digits are joined on the way (A = sum_p a_p * 256^(P-1-p): a lane's 8 products of the top
// digit give at most 8 * 15 * 127 * 2^16 ~ 1.0e9, the rest ~4e6: < 2^31) and the chunk's int
// sums are scaled into a float accumulator by sigma (per 32 elements) times the
// weight scale of each lane's group. SPG: weight groups per chunk (1: group >= 128 or a single
// group; 2: group 64; 4: group 32). MB rows of x share each unpacked chunk.
//
// fixed_rows: rows m0 .. m0 + MB - 1 of x times weight row n over chunks [c0, c1); the first
// slice (c0 == 0) writes out with the bias and zero-point terms, later ones add to it.
template <int P, int SPG, int MB>
void fixed_rows(const FixedArgs& a, int64_t m0, int64_t n, int64_t c0, int64_t c1) {
  const int64_t K = a.K, G = K / a.group, chunks = fixed_chunks(K), full = K / kFixedChunk;
  const uint8_t* wr = a.w + n * (K / 2);
  const float* sr = a.scales + n * G;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  // SPG == 1: the chunk's group is (128 c) >> group_shift (group 128 or 256; always 0 when G == 1).
  const int group_shift = G == 1 ? 62 : a.group == 128 ? 7 : 8;
  // Lane i of a chunk belongs to group i / (16 / SPG) of the chunk's SPG groups.
  const __m512i spread = SPG == 4   ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                         : SPG == 2 ? _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
                                    : _mm512_setzero_si512();
  __m512 acc[MB];
  for (int r = 0; r < MB; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t c = c0; c < c1; ++c) {
    // The weight streams from L3 or DRAM once; the hardware prefetcher alone left a single
    // thread at ~14 GB/s here, fetching the same chunk of the next row (read next) at ~20.
    // A prefetch never faults, so past the end is fine.
    _mm_prefetch(reinterpret_cast<const char*>(wr + K / 2 + c * 64), _MM_HINT_T0);
    const __m512i v = c < full ? _mm512_loadu_si512(wr + c * 64)
                               : _mm512_maskz_loadu_epi8(~0ull >> (64 - (K / 2 - c * 64)), wr + c * 64);
    const __m512i lo = _mm512_and_si512(v, low4);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
    __m512 ws;  // weight scale per lane
    if constexpr (SPG == 1) {
      ws = _mm512_set1_ps(sr[(c * kFixedChunk) >> group_shift]);
    } else {
      const int64_t g0 = c * SPG;
      const __mmask16 in = __mmask16((1u << std::min<int64_t>(SPG, G - g0)) - 1);
      ws = _mm512_permutexvar_ps(spread, _mm512_maskz_loadu_ps(in, sr + g0));
    }
    for (int r = 0; r < MB; ++r) {
      const int8_t* xc = a.x + ((m0 + r) * chunks + c) * P * kFixedChunk;
      // Horner over the digits: the shifted sum is the next vpdpbusd's accumulator.
      __m512i sum = _mm512_setzero_si512();
      for (int p = 0; p < P; ++p) {
        if (p) sum = _mm512_slli_epi32(sum, 8);
        sum = _mm512_dpbusd_epi32(sum, lo, _mm512_loadu_si512(xc + p * kFixedChunk));
        sum = _mm512_dpbusd_epi32(sum, hi, _mm512_loadu_si512(xc + p * kFixedChunk + 64));
      }
      const __m512 f = _mm512_mul_ps(_mm512_loadu_ps(a.sigma + ((m0 + r) * chunks + c) * 16), ws);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), f, acc[r]);
    }
  }
  for (int r = 0; r < MB; ++r) {
    float* out = a.out + (m0 + r) * a.N + n;
    const float part = _mm512_reduce_add_ps(acc[r]);
    if (c0 > 0) {
      *out += part;
      continue;
    }
    // Zero points: sum_g s * z * gsum[g], sixteen groups at a time.
    const float* gs = a.gsum + (m0 + r) * G;
    __m512 zt = _mm512_setzero_ps();
    for (int64_t g = 0; g < G; g += 16) {
      const __mmask16 in = __mmask16(G - g >= 16 ? 0xffff : (1u << (G - g)) - 1);
      const __m512 z = a.zeros ? _mm512_maskz_loadu_ps(in, a.zeros + n * G + g) : _mm512_set1_ps(8.f);
      zt = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(in, sr + g), z), _mm512_maskz_loadu_ps(in, gs + g), zt);
    }
    *out = part - _mm512_reduce_add_ps(zt) + (a.bias ? a.bias[n] : 0.f);
  }
}

#include "int4_fixed.h"  // the loops around fixed_rows

}  // namespace

bool to_fixed_avx512(const float* x, int64_t K, int64_t group, int P, int8_t* bytes, float* sigma,
                     float* gsum) {
  return P == 3 ? to_fixed<3>(x, K, group, bytes, sigma, gsum) : to_fixed<2>(x, K, group, bytes, sigma, gsum);
}

void gemv_fixed_avx512(const FixedArgs& a, int64_t n_begin, int64_t n_end) {
  fixed_gemv(a, n_begin, n_end);
}

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
