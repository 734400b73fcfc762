// Block-sparse (BSR) CPU micro-kernels, fp32. Torch-free; one instantiation per ISA path
// (bsr_avx512.cpp compiled for AVX-512, bsr_scalar.cpp portable) of the same templates
// (bsr_tile.h). Threading is the caller's.
//
// W [N, K] in blocks (bn, bk): crow [N/bn + 1], col [nnz], values [nnz, bn, bk] row-major.
// Transposed metadata (for dX = dY @ W): t_crow [K/bk + 1] over column blocks, t_block[j] and
// t_row[j] the block index and block row of the j-th block in column order.
//
// int8 blocks (qvalues + per-output-channel scales): the dot kernel (M <= 4) reads them as they
// are (memory-bound: the weight's bytes are the time); the other kernels take each block row
// dequantized into a per-thread buffer once and run on it in cache. fp16/bf16 blocks (hvalues)
// go through the same buffer, widened to fp32 there (a per-call fp32 copy of the whole weight
// cost more than the product: 10.7 ms of 12 at M = 1, 50%, 4096^2), and dX widens each column
// block's blocks the same way.
//
// The forward and dX kernels put M along the vector lanes: they read x / dy transposed ([K, Mp]
// / [N, Mp], Mp = M rounded up to 16, padding zero) and make the result transposed (the forward
// one block row, dX one column block at a time, turned back while in cache), so that the weight's
// blocks are used as stored (no per-call copy of the weight). For a few rows of x
// the forward instead runs dot products along K on x and out as they are (forward_dot).
#pragma once
#include <cstdint>
#include <vector>

#include "float_kind.h"

namespace greenops::cpu::bsr {

// dst[i * ldd + j] = src[j * lds + i] for a 16 x 16 tile: the ISA's transpose16 (below).
using Transpose16Fn = void (*)(const float* src, int64_t lds, float* dst, int64_t ldd);

struct Dims {
  int64_t M, N, K, bn, bk;
};

struct ForwardArgs {
  const float* x;  // [M, K] (forward_dot)
  const float* xt;  // x transposed, padded to mp and packed in strips (forward)
  const float* values;  // [nnz, bn, bk]
  const int8_t* qvalues;  // int8 blocks instead of `values`, with
  const float* scales;  // [N]: W[n, :] = qvalues * scales[n]
  const int64_t* crow;
  const int64_t* col;
  const float* bias;  // [N] or null
  float* out;  // [M, N]
  // forward: each block row's result is made transposed ([bn, mp], in cache) and turned into
  // out's columns right away by this 16 x 16 transpose.
  Transpose16Fn transpose16;
  int64_t mp;
  Dims d;
  const uint16_t* hvalues = nullptr;  // fp16/bf16 blocks instead of `values`, of kind hkind
  FloatKind hkind = FloatKind::F32;
};

struct BackwardXArgs {
  const float* dyt;  // dy transposed, padded to mp and packed in strips
  const float* values;
  const int64_t* t_crow;
  const int64_t* t_block;
  const int64_t* t_row;
  float* dx;  // [M, K]: each column block's result made transposed, then turned by transpose16
  Transpose16Fn transpose16;
  int64_t mp;
  Dims d;
  const uint16_t* hvalues = nullptr;  // fp16/bf16 blocks instead of `values`, of kind hkind
  FloatKind hkind = FloatKind::F32;
};

// dy and x packed per call by block column: [N / bn, M, bn] and [K / bk, M, bk], so that a
// block's operands are two contiguous runs (row-major, the rows of one block were a whole row of
// dy or x apart: a TLB miss and no hardware prefetch at every step of M).
struct SddmmArgs {
  const float* dy;  // [N / bn, M, bn]
  const float* x;  // [K / bk, M, bk]
  const int64_t* row;  // block row of each block
  const int64_t* col;
  float* dv;  // [nnz, bn, bk]
  Dims d;
};

// The kernels that take x packed per call in bytes, and write out [M, N] (fp32; bf16 for bf16 x
// on AMX):
// - W8A8 (forward_w8a8_avx512): int8 x (per-row scales xs) times int8 blocks (per-output-
//   channel scales), by vpdpbusd (AVX-512 VNNI; bsr.cpp sends other machines, and M <=
//   kDotMaxRows, to the float kernels with x dequantized). xp: like xt above but in bytes, 4 k's
//   a lane: strip m0 of width w at xp + m0 * K holds [K/4][w][4] bytes of x + 128 (vpdpbusd's
//   unsigned operand; the 128 * sum of each weight row is taken off after); mp a multiple of
//   16. Sums are exact in int32 up to K = 65536.
// - AMX (forward_amx, bsr_amx.cpp, Isa::Avx512Amx): bf16 x and blocks, or int8 x and blocks
//   (W8A8). xp is laid out for the tiles' B operand: group g of 16 rows of x (rows past M zero),
//   its row r the 4 bytes r*4 .. r*4+3 of each of the 16 rows (2 bf16 or 4 int8 k's a lane), at
//   xp + (g * K * esz / 4 + r) * 64; mp a multiple of 32. The blocks are read as stored.
struct PackedArgs {
  const uint8_t* xp;
  const uint8_t* values;  // [nnz, bn, bk]: int8, or bf16 (AMX)
  const float* scales;  // int8 blocks: [N]
  const float* xs;  // int8 x: [mp], x's row scales, zero past M
  const int64_t* crow;
  const int64_t* col;
  const float* bias;  // [N] or null
  float* out;  // [M, N] fp32, or null and:
  uint16_t* out_bf16;  // [M, N] bf16 (AMX, bf16 x), or null
  Transpose16Fn transpose16;
  int64_t mp;
  Dims d;
  bool int8;
};

// Width of the strip of output columns (M) starting `left` columns before the end (a multiple
// of 16): 64, then 32, then 16. The forward and dX kernels read x / dy transposed and packed
// in such strips: strip m0 of width w is [rows, w] contiguous, starting at element m0 * rows.
int64_t strip_width(int64_t left);

// Rows of x up to which the forward takes the dot-product kernel, and from which it takes
// forward_bn (lanes along the output channels: no transposes of x and out, which at M = 2048
// cost more than a 90%-sparse product; measured, 4096^2, 2 threads: M = 2048, 50%, blocks 64:
// 147 ms vs 254 ms; at M = 512, blocks 32, the transposing kernel was faster, 54 vs 76 ms).
constexpr int64_t kDotMaxRows = 4;
constexpr int64_t kBnMinRows = 1024;
// Rows of dy from which bf16 dX runs on AMX tiles (with the blocks transposed per call: ~3 ms at
// 4096^2, 50%) rather than the float kernels; measured, 32 x 32 blocks, 2 threads, 50% / 90%:
// M = 32 3.4-4.8 vs 2.7-4.1 ms, 0.7-1.1 vs 0.7-1.0; M = 64 3.8-6.0 vs 4.6-6.4, 0.8-1.2 vs 1.4-1.5;
// M = 128 4.5-7.8 vs 9.9-13.1; M = 2048 40-42 vs 152-177.
constexpr int64_t kAmxGradMinRows = 64;

// dst[i * ldd + j] = src[j * lds + i] for a 16 x 16 tile (the per-call transposes of x and out:
// in registers, 16 loads and 16 stores, instead of 256 strided scalar copies).
#define GREENOPS_BSR_KERNELS(isa)                                                   \
  void transpose16_##isa(const float* src, int64_t lds, float* dst, int64_t ldd);   \
  void forward_##isa(const ForwardArgs& a, int64_t r_begin, int64_t r_end);         \
  void forward_dot_##isa(const ForwardArgs& a, int64_t r_begin, int64_t r_end);     \
  void forward_bn_##isa(const ForwardArgs& a, int64_t r_begin, int64_t r_end);      \
  void backward_x_##isa(const BackwardXArgs& a, int64_t c_begin, int64_t c_end);    \
  void sddmm_##isa(const SddmmArgs& a, int64_t b_begin, int64_t b_end);

// ot [rows, mp] (a result made transposed, rows a multiple of 16) -> dst[m * ldd + i], m < M.
// static: each ISA's translation unit keeps its own copy (an inline one merged across them could
// carry another file's instructions).
static inline void store_transposed(const float* ot, int64_t rows, int64_t mp, int64_t M, float* dst,
                             int64_t ldd, Transpose16Fn tr) {
  for (int64_t m0 = 0; m0 < M; m0 += 16) {
    for (int64_t i0 = 0; i0 < rows; i0 += 16) {
      if (m0 + 16 <= M) {
        // The lines the next block row (column block) will write, taken for writing now: they
        // are a whole row of out apart, so no streamer brings them (~4% at 90% sparsity).
        for (int64_t m = m0; m < m0 + 16; ++m) __builtin_prefetch(dst + m * ldd + i0 + rows, 1, 3);
        tr(ot + i0 * mp + m0, mp, dst + m0 * ldd + i0, ldd);
        continue;
      }
      for (int64_t m = m0; m < M; ++m)
        for (int64_t i = i0; i < i0 + 16; ++i) dst[m * ldd + i] = ot[i * mp + m];
    }
  }
}

GREENOPS_BSR_KERNELS(scalar)
#if defined(__x86_64__)
GREENOPS_BSR_KERNELS(avx512)
void forward_w8a8_avx512(const PackedArgs& a, int64_t r_begin, int64_t r_end);
void forward_amx(const PackedArgs& a, int64_t r_begin, int64_t r_end);

// bf16 dValues on AMX tiles (bsr_amx.cpp): dV_b = dy[:, R_b]^T x[:, C_b], the sum over m. The
// tiles' A is 16 rows of dy^T (made per block row, in cache, from dy as it is: [M, N]); their B
// holds x in pairs of m: xv = [K/16][mp/2][16][2] bf16, m past M zero (pack_pairs_amx). dv bf16,
// each block's fp32 sums rounded as .to(bfloat16) rounds them, in cache.
struct SddmmAmxArgs {
  const uint16_t* dy;  // [M, N] bf16
  const uint16_t* x;  // [M, K] bf16
  uint16_t* xv;  // [K / 16, mp / 2, 16, 2]
  const int64_t* crow;
  const int64_t* col;
  uint16_t* dv;  // [nnz, bn, bk] bf16
  int64_t mp;  // M rounded up to 32
  Dims d;
};
void pack_pairs_amx(const SddmmAmxArgs& a, int64_t g_begin, int64_t g_end);  // groups of 16 k's
void sddmm_amx(const SddmmAmxArgs& a, int64_t r_begin, int64_t r_end);  // block rows
#endif
#undef GREENOPS_BSR_KERNELS

}  // namespace greenops::cpu::bsr
