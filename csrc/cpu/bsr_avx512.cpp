// AVX-512 instantiation of the block-sparse kernels (bsr_tile.h); entered after run-time detection.
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

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
