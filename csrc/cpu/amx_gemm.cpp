// AMX GEMM for the quantized matmuls (amx_gemm.h). Compiled for AMX and entered only on
// Isa::Avx512Amx (run-time detection and the OS's permission).
//
// Loop order: a block of x (rows whose packed bytes fit ~1 MiB, so they stay in L2) against every
// panel of 32 weight rows of the caller's range; within a panel, 2 x 2 tiles (32 channels x 32 rows
// of x) over all of K, so the sums never leave the tiles until the epilogue. A weight-only panel
// is dequantized once per block of x (once per call while M fits the block; filling 8 MiB of
// the weight ahead, once, and reading it in place for every block measured slower at M = 256,
// 0.92-0.97x bf16 against 1.04-1.14x, and no faster at M = 2048).
#if defined(__x86_64__)
#pragma GCC target("amx-tile,amx-int8,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "amx_gemm.h"
#include "amx_tiles.h"
#include "bf16_avx512.h"

namespace greenops::cpu::amx {
namespace {

// C tiles 0, 1 (channels 0-15; rows of x 0-15, 16-31) and 2, 3 (channels 16-31) over all of K.
// A tiles 4, 5: the panel's two 16-row halves; B tiles 6, 7: two groups of 16 rows of x.
// (Slicing K so that the panel's slice stays in L1, the sums carried in memory, measured no
// faster: 4096 x 4096, M = 256 and 2048, bf16 and int8.)
template <int MB, bool kInt8>
void tiles(const uint8_t* A, int64_t lda, const uint8_t* B, int64_t group_bytes, int64_t steps) {
  _tile_zero(0);
  _tile_zero(2);
  if (MB == 2) {
    _tile_zero(1);
    _tile_zero(3);
  }
  const uint8_t* A1 = A + 16 * lda;
  const uint8_t* B1 = B + group_bytes;
  for (int64_t s = 0; s < steps; ++s) {
    _tile_loadd(4, A + s * 64, lda);
    _tile_loadd(6, B + s * 1024, 64);
    if (MB == 2) _tile_loadd(7, B1 + s * 1024, 64);
    _tile_loadd(5, A1 + s * 64, lda);
    if constexpr (kInt8) {
      _tile_dpbssd(0, 4, 6);
      if (MB == 2) _tile_dpbssd(1, 4, 7);
      _tile_dpbssd(2, 5, 6);
      if (MB == 2) _tile_dpbssd(3, 5, 7);
    } else {
      _tile_dpbf16ps(0, 4, 6);
      if (MB == 2) _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      if (MB == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
}

// One C tile (channels n0.., rows of x m0.., stored [16 channels][16 rows]) into out.
void epilogue(const GemmArgs& a, float* c, int64_t n0, int64_t m0) {
  if (m0 >= a.M || n0 >= a.N) return;
  if (a.int8) {
    for (int i = 0; i < 256; i += 16)
      _mm512_store_ps(c + i, _mm512_cvtepi32_ps(_mm512_load_si512(c + i)));
  }
  alignas(64) float t[256];
  a.transpose16(c, 16, t, 16);  // t[row of x][channel]
  const int64_t nn = std::min<int64_t>(16, a.N - n0), mm = std::min<int64_t>(16, a.M - m0);
  const __mmask16 mask = __mmask16((1u << nn) - 1);
  const __m512 ws = a.ws ? _mm512_maskz_loadu_ps(mask, a.ws + n0) : _mm512_set1_ps(1.f);
  const __m512 bias = a.bias ? _mm512_maskz_loadu_ps(mask, a.bias + n0) : _mm512_setzero_ps();
  for (int64_t m = 0; m < mm; ++m) {
    const __m512 s = a.xs ? _mm512_mul_ps(ws, _mm512_set1_ps(a.xs[m0 + m])) : ws;
    const __m512 v = _mm512_fmadd_ps(_mm512_load_ps(t + m * 16), s, bias);
    const int64_t o = (m0 + m) * a.N + n0;
    if (a.out_bf16) {
      _mm256_mask_storeu_epi16(a.out_bf16 + o, mask, bf16_bits(v));
    } else {
      _mm512_mask_storeu_ps(a.out + o, mask, v);
    }
  }
}

template <bool kInt8>
void run(const GemmArgs& a, int64_t p_begin, int64_t p_end, uint8_t* panel) {
  const int64_t Kb = a.K * (kInt8 ? 1 : 2), steps = Kb / 64, group_bytes = 16 * Kb;
  const int64_t groups = a.mp / 16;
  const int64_t block = std::max<int64_t>(2, kBlockBytes / group_bytes);
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  // GCC does not see ldtilecfg read the struct and dropped these stores (an all-zero config,
  // #GP): the empty asm "reads" it.
  asm volatile("" ::"m"(cfg));
  _tile_loadconfig(&cfg);
  alignas(64) float c[4][256];
  for (int64_t g0 = 0; g0 < groups; g0 += block) {
    const int64_t g1 = std::min(groups, g0 + block);
    for (int64_t p = p_begin; p < p_end; ++p) {
      const int64_t n0 = p * kPanelRows, rows = std::min(kPanelRows, a.N - n0);
      // A filled panel's rows are 64 bytes longer than K: at K * esz a multiple of 4 KiB the 16
      // rows of a tile load would all map to one set of L1. Measured (4096^2, A/B in one process,
      // the machine disturbed, all ~3x slower than quiet): W8A16 M = 2048 116.7 vs 126.5 ms,
      // M = 256 17.3 vs 18.2; W4A16 110.5 vs 119.7 and 16.8 vs 17.8. Copying an int8 weight
      // into such a panel, rather than reading it in place, gained nothing (W8A8 65 vs 62 ms).
      const uint8_t* A = panel;
      int64_t lda = Kb + 64;
      const uint8_t* w = a.w ? a.w + n0 * Kb : nullptr;
      if (w && rows == kPanelRows) {
        A = w;
        lda = Kb;
      } else {
        if (w) {
          for (int64_t r = 0; r < rows; ++r) std::memcpy(panel + r * lda, w + r * Kb, Kb);
        } else {
          a.fill(a.ctx, n0, rows, panel, lda);
        }
        for (int64_t r = rows; r < kPanelRows; ++r) std::memset(panel + r * lda, 0, Kb);
      }
      int64_t g = g0;
      for (; g + 2 <= g1; g += 2) {
        tiles<2, kInt8>(A, lda, a.xp + g * group_bytes, group_bytes, steps);
        _tile_stored(0, c[0], 64);  // tile numbers are immediates
        _tile_stored(1, c[1], 64);
        _tile_stored(2, c[2], 64);
        _tile_stored(3, c[3], 64);
        for (int t = 0; t < 4; ++t) epilogue(a, c[t], n0 + (t / 2) * 16, (g + t % 2) * 16);
      }
      if (g < g1) {
        tiles<1, kInt8>(A, lda, a.xp + g * group_bytes, group_bytes, steps);
        _tile_stored(0, c[0], 64);
        _tile_stored(2, c[2], 64);
        epilogue(a, c[0], n0, g * 16);
        epilogue(a, c[2], n0 + 16, g * 16);
      }
    }
  }
  _tile_release();
}

}  // namespace

void gemm(const GemmArgs& a, int64_t p_begin, int64_t p_end, uint8_t* panel) {
  if (a.int8) return run<true>(a, p_begin, p_end, panel);
  run<false>(a, p_begin, p_end, panel);
}

}  // namespace greenops::cpu::amx
#endif  // __x86_64__
