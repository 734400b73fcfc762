// AVX-512 instantiation of the block-sparse kernels (bsr_tile.h); entered after run-time detection.
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "bsr_kernels.h"
#include "float_bits.h"

namespace greenops::cpu::bsr {
namespace {
// fp16 by vcvtph2ps (exact, subnormals and NaN included), bf16 by moving its bits up.
void widen16(const uint16_t* src, FloatKind kind, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m512 f = kind == FloatKind::F16
                         ? _mm512_cvtph_ps(h)
                         : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    _mm512_storeu_ps(dst + i, f);
  }
  for (; i < n; ++i) dst[i] = load(src, kind, i);
}
#include "bsr_tile.h"
}  // namespace

void forward_avx512(const ForwardArgs& a, int64_t r_begin, int64_t r_end) { forward_impl(a, r_begin, r_end); }
void forward_bn_avx512(const ForwardArgs& a, int64_t r_begin, int64_t r_end) {
  forward_bn_impl(a, r_begin, r_end);
}
void forward_dot_avx512(const ForwardArgs& a, int64_t r_begin, int64_t r_end) {
  forward_dot_impl(a, r_begin, r_end);
}
void backward_x_avx512(const BackwardXArgs& a, int64_t c_begin, int64_t c_end) {
  backward_x_impl(a, c_begin, c_end);
}
void sddmm_avx512(const SddmmArgs& a, int64_t b_begin, int64_t b_end) { sddmm_impl(a, b_begin, b_end); }

// --- W8A8 (bsr_kernels.h): the float tile's loop order, in int32 with vpdpbusd -----------------

namespace {

// acc[r][v] (lanes: 16 rows of x each) += sum over the segments (blocks) and their bk/4 quads j of
// the block's 4 weights of row r at quad j (one int32 broadcast) . x's 4 bytes per lane. The next
// block's x and weights are prefetched a quad at a time, as in the float tile.
template <int W, int MR>
void w8a8_tile(const int8_t* const* wrow, const uint8_t* const* xb, int64_t nseg, int64_t bk,
               int32_t* ot, int64_t ldo) {
  constexpr int V = W / 16;
  __m512i acc[MR][V];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_si512();
  const int64_t quads = bk / 4;
  for (int64_t s = 0; s < nseg; ++s) {
    const int8_t* A = wrow[s];
    const uint8_t* B = xb[s];
    const int64_t n = s + 1 < nseg ? s + 1 : s;
    for (int64_t j = 0; j < quads; ++j) {
      __m512i xv[V];
      for (int v = 0; v < V; ++v) {
        xv[v] = _mm512_loadu_si512(B + (j * W + v * 16) * 4);
        __builtin_prefetch(xb[n] + (j * W + v * 16) * 4, 0, 3);
      }
      if (j < MR) __builtin_prefetch(wrow[n] + j * bk, 0, 3);
      for (int r = 0; r < MR; ++r) {
        int32_t w4;
        std::memcpy(&w4, A + r * bk + j * 4, 4);
        const __m512i wb = _mm512_set1_epi32(w4);
        for (int v = 0; v < V; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], xv[v], wb);
      }
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < V; ++v) _mm512_storeu_si512(ot + r * ldo + v * 16, acc[r][v]);
}

template <int W>
void w8a8_rows(std::vector<const int8_t*>& wrow, const std::vector<const uint8_t*>& xb,
               const std::vector<const int8_t*>& blocks, int64_t bn, int64_t bk, int32_t* ot,
               int64_t ldo) {
  const int64_t nseg = int64_t(blocks.size());
  for (int64_t r = 0; r < bn;) {  // row tiles as the float kernel's: 6s, 8 left as 4 + 4
    const int64_t mr = bn - r >= 6 && bn - r != 8 ? 6 : 4;
    for (int64_t s = 0; s < nseg; ++s) wrow[s] = blocks[s] + r * bk;
    if (mr == 6) w8a8_tile<W, 6>(wrow.data(), xb.data(), nseg, bk, ot + r * ldo, ldo);
    else w8a8_tile<W, 4>(wrow.data(), xb.data(), nseg, bk, ot + r * ldo, ldo);
    r += mr;
  }
}

}  // namespace

void forward_w8a8_avx512(const PackedArgs& a, int64_t r_begin, int64_t r_end) {
  const Dims& d = a.d;
  const int64_t bs = d.bn * d.bk;
  thread_local std::vector<int32_t> ot;
  thread_local std::vector<const int8_t*> blocks, wrow;
  thread_local std::vector<const uint8_t*> xb;
  thread_local std::vector<int32_t> wsum;
  ot.resize(d.bn * a.mp);
  float* of = reinterpret_cast<float*>(ot.data());  // the sums, then the results, in place
  wsum.resize(d.bn);
  for (int64_t R_ = r_begin; R_ < r_end; ++R_) {
    const int64_t b0 = a.crow[R_], b1 = a.crow[R_ + 1];
    blocks.clear();
    std::fill(wsum.begin(), wsum.end(), 0);
    for (int64_t b = b0; b < b1; ++b) {
      const int8_t* v = reinterpret_cast<const int8_t*>(a.values) + b * bs;
      blocks.push_back(v);
      for (int64_t i = 0; i < d.bn; ++i) {
        int32_t sum = 0;  // a local: stores through wsum kept the loop scalar (int8 may alias)
        for (int64_t k = 0; k < d.bk; ++k) sum += v[i * d.bk + k];
        wsum[i] += sum;
      }
    }
    wrow.resize(blocks.size());
    xb.resize(blocks.size());
    for (int64_t m0 = 0; m0 < a.mp;) {
      const int64_t w = strip_width(a.mp - m0);
      for (size_t s = 0; s < blocks.size(); ++s) xb[s] = a.xp + m0 * d.K + a.col[b0 + s] * d.bk * w;
      int32_t* o = ot.data() + m0;
      if (w == 64) w8a8_rows<64>(wrow, xb, blocks, d.bn, d.bk, o, a.mp);
      if (w == 32) w8a8_rows<32>(wrow, xb, blocks, d.bn, d.bk, o, a.mp);
      if (w == 16) w8a8_rows<16>(wrow, xb, blocks, d.bn, d.bk, o, a.mp);
      m0 += w;
    }
    // (sum - 128 * row sum) * x scale * w scale + bias, then into out's columns
    for (int64_t i = 0; i < d.bn; ++i) {
      const int64_t n = R_ * d.bn + i;
      const __m512i off = _mm512_set1_epi32(128 * wsum[i]);
      const __m512 sw = _mm512_set1_ps(a.scales[n]), bias = _mm512_set1_ps(a.bias ? a.bias[n] : 0.f);
      for (int64_t m = 0; m < a.mp; m += 16) {
        const __m512i acc = _mm512_sub_epi32(_mm512_loadu_si512(ot.data() + i * a.mp + m), off);
        const __m512 xs = _mm512_mul_ps(_mm512_loadu_ps(a.xs + m), sw);
        _mm512_storeu_ps(of + i * a.mp + m, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), xs, bias));
      }
    }
    store_transposed(of, d.bn, a.mp, d.M, a.out + R_ * d.bn, d.N, a.transpose16);
  }
}

// unpack pairs of rows, then 4 x 4 within 128-bit lanes, then 128-bit lanes twice.
void transpose16_avx512(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ldd, r[i]);
}

}  // namespace greenops::cpu::bsr
#endif  // __x86_64__
