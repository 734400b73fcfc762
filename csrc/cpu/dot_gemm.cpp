// AVX-512 dot-product GEMM for the quantized matmuls where there is no AMX (dot_gemm.h).
// Compiled for AVX-512 VNNI; the bf16 blocks also for AVX512-BF16 (target attribute), entered
// only on Isa::Avx512Bf16 and up.
//
// Loop order as the AMX GEMM's: a block of x (~1 MiB packed, so it stays in L2) against every
// panel of the caller's range; a weight-only panel is dequantized and transposed once per block
// of x. Within a panel, 12 rows of x x 32 channels over all of K: per dword of K, 2 loads of the
// panel and 12 broadcasts of x feed 24 dot products, and the panel (32 x K x esz bytes) is read
// from L2 at ~5 bytes a cycle, so K is not sliced.
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "bf16_avx512.h"
#include "dot_gemm.h"

namespace greenops::cpu::dot {
namespace {

// What a panel's epilogue applies: channel scales, bias, the int8 correction; masks for a short
// panel's channels.
struct Epilogue {
  __m512 ws[2], bias[2];
  __m512i corr[2];  // 128 * sum_k w[n, k] (int8)
  __mmask16 mask[2];
  int64_t n0;
};

inline void store_row(const GemmArgs& a, const Epilogue& e, int64_t m, __m512 v0, __m512 v1) {
  const __m512 xs = _mm512_set1_ps(a.xs ? a.xs[m] : 1.f);
  v0 = _mm512_fmadd_ps(v0, _mm512_mul_ps(e.ws[0], xs), e.bias[0]);
  v1 = _mm512_fmadd_ps(v1, _mm512_mul_ps(e.ws[1], xs), e.bias[1]);
  const int64_t o = m * a.N + e.n0;
  if (a.out_bf16) {
    _mm256_mask_storeu_epi16(a.out_bf16 + o, e.mask[0], bf16_bits(v0));
    _mm256_mask_storeu_epi16(a.out_bf16 + o + 16, e.mask[1], bf16_bits(v1));
  } else {
    _mm512_mask_storeu_ps(a.out + o, e.mask[0], v0);
    _mm512_mask_storeu_ps(a.out + o + 16, e.mask[1], v1);
  }
}

// acc += u8 a . s8 b, four bytes a lane. Inline asm: with the intrinsic GCC 12 spilled the 12-row
// block's sums to the stack on every step of K (the bf16 block it kept in registers).
inline void dpbusd(__m512i& acc, __m512i a, __m512i b) { asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b)); }

// R rows of x (a packed group: [steps][12][4 bytes]) against the panel ([steps][32][4 bytes]).
// Every loop over r is unrolled so that the sums are registers, not an array on the stack.
template <int R>
void block_int8(const GemmArgs& a, const uint32_t* x, const __m512i* panel, int64_t steps, const Epilogue& e,
                int64_t m0) {
  __m512i c0[R], c1[R];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_si512();
  for (int64_t s = 0; s < steps; ++s) {
    const __m512i b0 = _mm512_load_si512(panel + 2 * s), b1 = _mm512_load_si512(panel + 2 * s + 1);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m512i v = _mm512_set1_epi32(int(x[s * kRows + r]));
      dpbusd(c0[r], v, b0);
      dpbusd(c1[r], v, b1);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r)  // int32 wraps alike on both sides of the subtraction
    store_row(a, e, m0 + r, _mm512_cvtepi32_ps(_mm512_sub_epi32(c0[r], e.corr[0])),
              _mm512_cvtepi32_ps(_mm512_sub_epi32(c1[r], e.corr[1])));
}

template <int R>
__attribute__((target("avx512bf16"))) void block_bf16(const GemmArgs& a, const uint32_t* x, const __m512i* panel,
                                                       int64_t steps, const Epilogue& e, int64_t m0) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t s = 0; s < steps; ++s) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(panel + 2 * s);
    const __m512bh b1 = (__m512bh)_mm512_load_si512(panel + 2 * s + 1);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m512bh v = (__m512bh)_mm512_set1_epi32(int(x[s * kRows + r]));
      c0[r] = _mm512_dpbf16_ps(c0[r], v, b0);
      c1[r] = _mm512_dpbf16_ps(c1[r], v, b1);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) store_row(a, e, m0 + r, c0[r], c1[r]);
}

using BlockFn = void (*)(const GemmArgs&, const uint32_t*, const __m512i*, int64_t, const Epilogue&, int64_t);

template <bool kInt8, int... R>
constexpr auto block_table(std::integer_sequence<int, R...>) {
  if constexpr (kInt8) {
    return std::array<BlockFn, kRows>{&block_int8<R + 1>...};
  } else {
    return std::array<BlockFn, kRows>{&block_bf16<R + 1>...};
  }
}

// The panel's rows (row-major, 32 x Kb bytes) -> [steps][32 channels][4 bytes].
void transpose_panel(const GemmArgs& a, const uint8_t* src, int64_t Kb, uint8_t* panel) {
  const int64_t steps = Kb / 4;
  for (int h = 0; h < 2; ++h)
    for (int64_t j0 = 0; j0 < steps; j0 += 16)
      a.transpose16(reinterpret_cast<const float*>(src + h * 16 * Kb) + j0, steps,
                    reinterpret_cast<float*>(panel) + j0 * kPanelRows + h * 16, kPanelRows);
}

template <bool kInt8>
void run(const GemmArgs& a, int64_t p_begin, int64_t p_end, uint8_t* scratch) {
  static constexpr auto blocks = block_table<kInt8>(std::make_integer_sequence<int, kRows>());
  const int64_t Kb = a.K * (kInt8 ? 1 : 2), steps = Kb / 4, group_bytes = kRows * Kb;
  uint8_t* rows_buf = scratch;  // a panel's rows as filled (row-major), or a short panel's copy
  uint8_t* panel = scratch + kPanelRows * Kb;
  const int64_t groups = a.mp / kRows;
  const int64_t block = std::max<int64_t>(1, kBlockBytes / group_bytes);
  for (int64_t g0 = 0; g0 < groups; g0 += block) {
    const int64_t g1 = std::min(groups, g0 + block);
    for (int64_t p = p_begin; p < p_end; ++p) {
      const int64_t n0 = p * kPanelRows, rows = std::min(kPanelRows, a.N - n0);
      const uint8_t* src = rows_buf;
      if (a.w && rows == kPanelRows) {
        src = a.w + n0 * Kb;
      } else {
        if (a.w) {
          std::memcpy(rows_buf, a.w + n0 * Kb, rows * Kb);
        } else {
          a.fill(a.ctx, n0, rows, rows_buf, Kb);
        }
        std::memset(rows_buf + rows * Kb, 0, (kPanelRows - rows) * Kb);
      }
      transpose_panel(a, src, Kb, panel);
      Epilogue e;
      e.n0 = n0;
      for (int h = 0; h < 2; ++h) {
        const int64_t nn = std::clamp<int64_t>(rows - 16 * h, 0, 16);
        e.mask[h] = __mmask16((1u << nn) - 1);
        e.ws[h] = a.ws ? _mm512_maskz_loadu_ps(e.mask[h], a.ws + n0 + 16 * h) : _mm512_set1_ps(1.f);
        e.bias[h] = a.bias ? _mm512_maskz_loadu_ps(e.mask[h], a.bias + n0 + 16 * h) : _mm512_setzero_ps();
        e.corr[h] = _mm512_setzero_si512();
      }
      const __m512i* pv = reinterpret_cast<const __m512i*>(panel);
      if constexpr (kInt8) {  // sum_k w[n, k] by the same instruction: ones . w
        const __m512i ones = _mm512_set1_epi8(1);
        for (int64_t s = 0; s < steps; ++s) {
          e.corr[0] = _mm512_dpbusd_epi32(e.corr[0], ones, _mm512_load_si512(pv + 2 * s));
          e.corr[1] = _mm512_dpbusd_epi32(e.corr[1], ones, _mm512_load_si512(pv + 2 * s + 1));
        }
        e.corr[0] = _mm512_slli_epi32(e.corr[0], 7);
        e.corr[1] = _mm512_slli_epi32(e.corr[1], 7);
      }
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t R = std::min(kRows, a.M - g * kRows);
        blocks[R - 1](a, reinterpret_cast<const uint32_t*>(a.xp + g * group_bytes), pv, steps, e, g * kRows);
      }
    }
  }
}

}  // namespace

void pack(const uint8_t* x, int64_t M, int64_t row_bytes, bool int8, uint8_t* dst, int64_t g0, int64_t g1) {
  const int64_t steps = row_bytes / 4;
  const uint32_t flip = int8 ? 0x80808080u : 0u;  // int8 -> u8 = x + 128, bytewise
  for (int64_t g = g0; g < g1; ++g) {
    uint32_t* d = reinterpret_cast<uint32_t*>(dst + g * kRows * row_bytes);
    for (int64_t r = 0; r < kRows; ++r) {
      const int64_t m = g * kRows + r;
      if (m >= M) {
        for (int64_t s = 0; s < steps; ++s) d[s * kRows + r] = 0;
        continue;
      }
      const uint8_t* src = x + m * row_bytes;
      for (int64_t s = 0; s < steps; ++s) {
        uint32_t v;
        std::memcpy(&v, src + 4 * s, 4);
        d[s * kRows + r] = v ^ flip;
      }
    }
  }
}

void gemm(const GemmArgs& a, int64_t p_begin, int64_t p_end, uint8_t* scratch) {
  if (a.int8) return run<true>(a, p_begin, p_end, scratch);
  run<false>(a, p_begin, p_end, scratch);
}

}  // namespace greenops::cpu::dot
#endif  // __x86_64__
