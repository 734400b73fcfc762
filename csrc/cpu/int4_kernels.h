// int4 (W4A16, group-wise) CPU micro-kernels, one set per ISA path (int4_avx512.cpp,
// int4_avx2.cpp, int4_scalar.cpp). Torch-free, like the int8 ones: each ISA file is compiled for
// its own target; threading is the caller's, every kernel takes the row range it owns.
//
// Packed layout (docs/kernels.md): q in 0..15, element 2j in the low nibble of byte j and 2j+1 in
// the high nibble, rows of W [N, K] contiguous (K/2 bytes each). Group g of row n covers
// k in [g*group, (g+1)*group) with scale s = scales[n, g] and zero point z = zeros[n, g]
// (8 when zeros is null: symmetric). Dequantized weight: (float(q) - z) * s, in fp32.
#pragma once
#include <cstdint>

#include "float_kind.h"

namespace greenops::cpu::int4 {

using cpu::FloatKind;

// The memory-bound path takes at most this many activation rows; int4.cpp sends larger M to
// a dequantized tile + library GEMM.
constexpr int64_t kGemvMaxRows = 16;

// Activations for gemv are fp32 and permuted once per 32-element chunk (whole chunks only; a
// tail shorter than 32 stays in natural order): position i < 16 holds element 2i of the chunk,
// position 16 + i holds element 2i + 1 — the order in which 16 packed bytes unpack into their
// low and their high nibbles. permute_chunks writes that layout.
void permute_chunks(const float* x, int64_t K, float* out);

// out[m, n] = sum_k x[m, k] * W[n, k] + (bias ? bias[n] : 0) in fp32 for n in [n_begin, n_end).
struct GemvArgs {
  const float* x;  // [M, K], permuted (above)
  const uint8_t* w;  // [N, K/2]
  const float* scales;  // [N, K/group]
  const float* zeros;  // [N, K/group] or null
  const float* bias;  // [N] or null
  float* out;  // [M, N]
  int64_t M, N, K, group;
};

// The fixed-point gemv (int4_avx512.cpp, int4_avx2.cpp) never turns weights into floats: it
// multiplies the 4-bit q by activations held in fixed point with integer dot products (u8 x s8,
// exact in int32) and applies each group's scale and zero point afterwards, out[n] = sum_g s[n,g] * (sum_k q * x~ - z[n,g] * sum_k x~).
// x~ keeps as many bits as its float type has: each 32-element block b is scaled by
// sigma_b = max|x_b| / 127 and X = rint(x / sigma_b * 256^(P-1)) is written as P signed bytes
// (balanced digits, most significant first), P = 3 for fp32 (|x - x~| <= 2^-24 max|x_b| / 0.99),
// 2 for fp16 / bf16. Layout, per 128-element chunk c of a row (64 bytes of packed weight):
//   bytes  [c][p][even 64 | odd 64]: piece p of x[128c + 2j] (low nibbles), then of x[128c + 2j + 1]
//   sigma  [c][16]: sigma of lane i's block (lane i covers 8 elements) / 256^(P-1); 0 past K
//   gsum   [G]: sum of x~ over group g, for the zero-point term
// Blocks past K are zero. Returns false, writing nothing useful, when a value is not finite or a
// nonzero block maximum lies outside [2^-100, 2^100] (the fixed-point scale would lose bits):
// the caller then uses the float gemv (to_fixed_avx512 below; to_fixed_scalar the same in
// portable code). The kernels: gemv_fixed_avx512 (vpdpbusd), gemv_fixed_avx2 (vpmaddubsw +
// vpmaddwd).
constexpr int64_t kFixedChunk = 128;
inline int64_t fixed_chunks(int64_t K) { return (K + kFixedChunk - 1) / kFixedChunk; }

struct FixedArgs {
  const int8_t* x;  // [M][fixed_chunks(K)][P][128]
  const float* sigma;  // [M][fixed_chunks(K)][16]
  const float* gsum;  // [M][G]
  const uint8_t* w;  // [N, K/2]
  const float* scales;  // [N, G]
  const float* zeros;  // [N, G] or null (z = 8)
  const float* bias;  // [N] or null
  float* out;  // [M, N]
  int64_t M, N, K, group;
  int P;  // 2 or 3
};

// to_fixed_avx512's portable twin (the same numbers: both round x * 127 * unit / max to
// nearest-even in fp32), for the AVX2 gemv.
bool to_fixed_scalar(const float* x, int64_t K, int64_t group, int P, int8_t* bytes, float* sigma,
                     float* gsum);

// Symmetric / asymmetric min-max quantization of rows [begin, end) of w [N, K] (kind: w's
// dtype), writing packed [N, K/2], scales and (asymmetric) zeros [N, K/group]:
//   asymmetric: s = (max - min) / 15 (1 if 0), z = -min / s, q = clamp(rint(w / s + z), 0, 15)
//   symmetric:  s = amax / 7 (1 if 0), z = 8,             q = clamp(rint(w / s) + 8, 0, 15)
// rint rounds half to even. A group holding NaN or +-Inf gets s = NaN (and z = NaN), q = 0.
void quantize_rows(const void* w, FloatKind kind, int64_t K, int64_t group, bool symmetric,
                   int64_t begin, int64_t end, uint8_t* packed, float* scales, float* zeros);

// dequantize_rows: out[r, k] = (float(q) - z) * s rounded to `kind`, rows [begin, end).
#define GREENOPS_INT4_KERNELS(isa)                                                         \
  void gemv_##isa(const GemvArgs& args, int64_t n_begin, int64_t n_end);                   \
  void dequantize_rows_##isa(const uint8_t* w, const float* scales, const float* zeros,    \
                             int64_t K, int64_t group, int64_t begin, int64_t end, void* out, \
                             FloatKind kind);

GREENOPS_INT4_KERNELS(scalar)
#if defined(__x86_64__)
GREENOPS_INT4_KERNELS(avx2)
GREENOPS_INT4_KERNELS(avx512)
bool to_fixed_avx512(const float* x, int64_t K, int64_t group, int P, int8_t* bytes, float* sigma,
                     float* gsum);
void gemv_fixed_avx512(const FixedArgs& args, int64_t n_begin, int64_t n_end);
void gemv_fixed_avx2(const FixedArgs& args, int64_t n_begin, int64_t n_end);
#endif
#undef GREENOPS_INT4_KERNELS

}  // namespace greenops::cpu::int4
