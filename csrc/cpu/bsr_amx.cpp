// AMX block-sparse forward (Isa::Avx512Amx; entered after run-time detection and the OS's
// permission): bf16 x and blocks (fp32 sums, tdpbf16ps) or int8 x and blocks (W8A8, int32 sums,
// tdpbssd). A tile product is C[16 x 16] += A[16 rows x 64 bytes] . B[rows x 64 bytes], B in
// pairs (bf16) or quads (int8) of k's per 4-byte lane. Here A = 16 rows of a block (the weights
// as stored: no repacking of the weight), B = 16 rows of x, packed once per call into that
// layout by pack_amx; so C = 16 output channels x 16 rows of x, the result made transposed as in
// the float kernels and turned into out's columns while in cache.
#if defined(__x86_64__)
#pragma GCC target("amx-tile,amx-int8,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "bsr_kernels.h"
#include "amx_tiles.h"

namespace greenops::cpu::bsr {
namespace {

// Tiles 0-3: C (16 x 16 fp32 / int32); 4, 5: A (16 block rows x kc k's); 6, 7: B (kc k's of 16
// rows of x, 4 bytes a lane).
TileConfig config(int64_t kc_bytes) {
  TileConfig c;
  for (int t = 0; t < 4; ++t) c.rows[t] = 16, c.colsb[t] = 64;
  for (int t = 4; t < 6; ++t) c.rows[t] = 16, c.colsb[t] = uint16_t(kc_bytes);
  for (int t = 6; t < 8; ++t) c.rows[t] = uint8_t(kc_bytes / 4), c.colsb[t] = 64;
  return c;
}

// C tiles for two 16-row groups of x (B tiles 6, 7) and one (NA = 1) or two (A tiles 4, 5)
// 16-row slices of the block row, over all its blocks and k-steps; stored to ot [bn, mp] at
// (n0, m0).
template <int NA, bool kInt8>
void tile_pair(const PackedArgs& a, int64_t R_, int64_t n0, int64_t m0, int32_t* ot) {
  const Dims& d = a.d;
  const int64_t esz = kInt8 ? 1 : 2, kc = std::min<int64_t>(d.bk, 64 / esz), lda = d.bk * esz;
  const int64_t xrows = d.K * esz / 4;  // B rows (4 bytes a lane) per group of 16 rows of x
  _tile_zero(0);
  _tile_zero(1);
  if (NA == 2) {
    _tile_zero(2);
    _tile_zero(3);
  }
  const uint8_t* x0 = a.xp + (m0 / 16) * xrows * 64;
  for (int64_t b = a.crow[R_]; b < a.crow[R_ + 1]; ++b) {
    const uint8_t* w = a.values + (b * d.bn + n0) * lda;
    const uint8_t* xb = x0 + a.col[b] * d.bk * esz / 4 * 64;
    for (int64_t s = 0; s < d.bk; s += kc) {
      _tile_loadd(4, w + s * esz, lda);
      _tile_loadd(6, xb + s * esz / 4 * 64, 64);
      _tile_loadd(7, xb + xrows * 64 + s * esz / 4 * 64, 64);
      if (NA == 2) _tile_loadd(5, w + 16 * lda + s * esz, lda);
      if (kInt8) {
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        if (NA == 2) {
          _tile_dpbssd(2, 5, 6);
          _tile_dpbssd(3, 5, 7);
        }
      } else {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if (NA == 2) {
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
    }
  }
  const int64_t ld = a.mp * 4;
  int32_t* o = ot + n0 * a.mp + m0;
  _tile_stored(0, o, ld);
  _tile_stored(1, o + 16, ld);
  if (NA == 2) {
    _tile_stored(2, o + 16 * a.mp, ld);
    _tile_stored(3, o + 16 * a.mp + 16, ld);
  }
}

// fp32 -> bf16 bits, rounded to nearest even, NaN -> 0x7FC0: c10::BFloat16's rounding (what
// .to(torch.bfloat16) gives; subnormals kept, unlike vcvtneps2bf16, which flushes them).
__m256i to_bf16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  return _mm512_cvtepi32_epi16(r);
}

// store_transposed's bf16 twin: ot [rows, mp] -> dst[m * ldd + i] as bf16, m < M, 16 x 16 at a
// time through a buffer (ot has mp >= M rounded up to 32 columns: whole tiles are readable).
void store_transposed_bf16(const float* ot, int64_t rows, int64_t mp, int64_t M, uint16_t* dst, int64_t ldd,
                           Transpose16Fn tr) {
  alignas(64) float t[256];
  for (int64_t m0 = 0; m0 < M; m0 += 16) {
    const int64_t n = std::min<int64_t>(16, M - m0);
    for (int64_t i0 = 0; i0 < rows; i0 += 16) {
      tr(ot + i0 * mp + m0, mp, t, 16);
      for (int64_t m = 0; m < n; ++m)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (m0 + m) * ldd + i0), to_bf16(_mm512_load_ps(t + m * 16)));
    }
  }
}

template <bool kInt8>
void forward(const PackedArgs& a, int64_t r_begin, int64_t r_end) {
  const Dims& d = a.d;
  const TileConfig cfg = config(std::min<int64_t>(d.bk * (kInt8 ? 1 : 2), 64));
  _tile_loadconfig(&cfg);
  thread_local std::vector<int32_t> ot;
  ot.resize(d.bn * a.mp);
  float* of = reinterpret_cast<float*>(ot.data());  // the sums, then the results, in place
  for (int64_t R_ = r_begin; R_ < r_end; ++R_) {
    for (int64_t m0 = 0; m0 < a.mp; m0 += 32) {
      int64_t n0 = 0;
      for (; n0 + 32 <= d.bn; n0 += 32) tile_pair<2, kInt8>(a, R_, n0, m0, ot.data());
      if (n0 < d.bn) tile_pair<1, kInt8>(a, R_, n0, m0, ot.data());  // bn = 16
    }
    for (int64_t i = 0; i < d.bn; ++i) {  // scales and bias, 16 rows of x at a time
      const int64_t n = R_ * d.bn + i;
      const __m512 bias = _mm512_set1_ps(a.bias ? a.bias[n] : 0.f);
      const __m512 sw = _mm512_set1_ps(kInt8 ? a.scales[n] : 1.f);
      for (int64_t m = 0; m < a.mp; m += 16) {
        float* o = of + i * a.mp + m;
        if (kInt8) {
          const __m512 sum = _mm512_cvtepi32_ps(_mm512_loadu_si512(ot.data() + i * a.mp + m));
          _mm512_storeu_ps(o, _mm512_fmadd_ps(sum, _mm512_mul_ps(_mm512_loadu_ps(a.xs + m), sw), bias));
        } else {
          _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), bias));
        }
      }
    }
    if (a.out_bf16)
      store_transposed_bf16(of, d.bn, a.mp, d.M, a.out_bf16 + R_ * d.bn, d.N, a.transpose16);
    else
      store_transposed(of, d.bn, a.mp, d.M, a.out + R_ * d.bn, d.N, a.transpose16);
  }
  _tile_release();
}

// C tiles of one block's dV for NA (1, 2) 16-row slices of dy^T from n0 and NB (1, 2) 16-column
// slices of x from k0, over all of m; stored into the block's dv [bn, bk] rows at (n0, k0).
template <int NA, int NB>
void sddmm_tiles(const SddmmAmxArgs& a, const uint16_t* dyt, int64_t c, int64_t n0, int64_t k0, float* dv) {
  const Dims& d = a.d;
  const int64_t lda = a.mp * 2, group = a.mp / 2 * 64;  // bytes: a dy^T row; a group of x pairs
  _tile_zero(0);
  if (NB == 2) _tile_zero(1);
  if (NA == 2) _tile_zero(2);
  if (NA == 2 && NB == 2) _tile_zero(3);
  const uint8_t* arow = reinterpret_cast<const uint8_t*>(dyt) + n0 * lda;
  const uint8_t* bg = reinterpret_cast<const uint8_t*>(a.xv) + (c * d.bk + k0) / 16 * group;
  for (int64_t m = 0; m < a.mp; m += 32) {
    _tile_loadd(4, arow + m * 2, lda);
    _tile_loadd(6, bg + m / 2 * 64, 64);
    if (NB == 2) _tile_loadd(7, bg + group + m / 2 * 64, 64);
    if (NA == 2) _tile_loadd(5, arow + 16 * lda + m * 2, lda);
    _tile_dpbf16ps(0, 4, 6);
    if (NB == 2) _tile_dpbf16ps(1, 4, 7);
    if (NA == 2) _tile_dpbf16ps(2, 5, 6);
    if (NA == 2 && NB == 2) _tile_dpbf16ps(3, 5, 7);
  }
  const int64_t ld = d.bk * 4;
  float* o = dv + n0 * d.bk + k0;
  _tile_stored(0, o, ld);
  if (NB == 2) _tile_stored(1, o + 16, ld);
  if (NA == 2) _tile_stored(2, o + 16 * d.bk, ld);
  if (NA == 2 && NB == 2) _tile_stored(3, o + 16 * d.bk + 16, ld);
}

}  // namespace

void pack_pairs_amx(const SddmmAmxArgs& a, int64_t g_begin, int64_t g_end) {
  const Dims& d = a.d;
  for (int64_t g = g_begin; g < g_end; ++g) {
    uint16_t* out = a.xv + g * (a.mp / 2) * 32;
    for (int64_t p = 0; p < a.mp / 2; ++p) {  // rows 2p (low halves) and 2p + 1 (high)
      const int64_t m = 2 * p;
      const __m512i lo = m < d.M ? _mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                       reinterpret_cast<const __m256i*>(a.x + m * d.K + g * 16)))
                                 : _mm512_setzero_si512();
      const __m512i hi = m + 1 < d.M ? _mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                           reinterpret_cast<const __m256i*>(a.x + (m + 1) * d.K + g * 16)))
                                     : _mm512_setzero_si512();
      _mm512_storeu_si512(out + p * 32, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
}

void sddmm_amx(const SddmmAmxArgs& a, int64_t r_begin, int64_t r_end) {
  const Dims& d = a.d;
  const TileConfig cfg = config(64);
  _tile_loadconfig(&cfg);
  thread_local std::vector<uint16_t> dyt;  // the block row's dy^T [bn, mp], m past M zero
  dyt.assign(d.bn * a.mp, 0);
  thread_local std::vector<float> sums;  // a block's fp32 dV, then rounded into a.dv
  sums.resize(d.bn * d.bk);
  for (int64_t R_ = r_begin; R_ < r_end; ++R_) {
    if (a.crow[R_] == a.crow[R_ + 1]) continue;
    for (int64_t m = 0; m < d.M; ++m) {  // a line of dy per m, in order
      const uint16_t* src = a.dy + m * d.N + R_ * d.bn;
      for (int64_t i = 0; i < d.bn; ++i) dyt[i * a.mp + m] = src[i];
    }
    for (int64_t b = a.crow[R_]; b < a.crow[R_ + 1]; ++b) {
      float* dv = sums.data();
      for (int64_t n0 = 0; n0 < d.bn; n0 += 32) {
        const bool two_n = n0 + 32 <= d.bn;
        for (int64_t k0 = 0; k0 < d.bk; k0 += 32) {
          const bool two_k = k0 + 32 <= d.bk;
          if (two_n && two_k) sddmm_tiles<2, 2>(a, dyt.data(), a.col[b], n0, k0, dv);
          else if (two_n) sddmm_tiles<2, 1>(a, dyt.data(), a.col[b], n0, k0, dv);
          else if (two_k) sddmm_tiles<1, 2>(a, dyt.data(), a.col[b], n0, k0, dv);
          else sddmm_tiles<1, 1>(a, dyt.data(), a.col[b], n0, k0, dv);
        }
      }
      uint16_t* out = a.dv + b * d.bn * d.bk;
      for (int64_t i = 0; i < d.bn * d.bk; i += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), to_bf16(_mm512_loadu_ps(dv + i)));
    }
  }
  _tile_release();
}

void forward_amx(const PackedArgs& a, int64_t r_begin, int64_t r_end) {
  if (a.int8)
    forward<true>(a, r_begin, r_end);
  else
    forward<false>(a, r_begin, r_end);
}

}  // namespace greenops::cpu::bsr
#endif  // __x86_64__
