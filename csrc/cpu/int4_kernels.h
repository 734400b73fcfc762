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
#endif
#undef GREENOPS_INT4_KERNELS

}  // namespace greenops::cpu::int4
