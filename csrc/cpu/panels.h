// What the two panel GEMMs of the quantized matmuls share (amx_gemm.h: AMX tiles; dot_gemm.h:
// AVX-512 dot products where there is no AMX): out[m, n] = (sum_k x[m, k] * w[n, k]) * xs[m] *
// ws[n] + bias[n], with bf16 x and weights (fp32 sums) or int8 both (int32 sums), the weight
// taken 32 output channels (a panel) at a time. Weight-only callers never materialize the float
// weight: `fill` dequantizes a panel's rows into bf16 in cache while every row of x passes.
// Torch-free, like the other kernels.
#pragma once
#include <cstdint>

namespace greenops::cpu {

// Output channels per panel.
constexpr int64_t kPanelRows = 32;

// Writes weight rows [n0, n0 + rows) (rows <= 32), all of K, into dst with a row stride of ld
// bytes: bf16 for weight-only callers.
using FillFn = void (*)(const void* ctx, int64_t n0, int64_t rows, uint8_t* dst, int64_t ld);
using Transpose16Fn = void (*)(const float* src, int64_t lds, float* dst, int64_t ldd);

struct GemmArgs {
  const uint8_t* xp;  // x packed for the GEMM that takes it (amx::pack / dot::pack)
  int64_t M, mp, N, K;  // K * esz a multiple of 64 (esz: 2 bf16, 1 int8); mp: M rounded up by the packing
  bool int8;
  const uint8_t* w;  // the weight [N, K] read in place (K * esz bytes a row), or null: from fill
  FillFn fill;
  const void* ctx;
  const float* xs;  // [M] or null (1)
  const float* ws;  // [N] or null (1)
  const float* bias;  // [N] or null (0)
  float* out;  // [M, N], or null when out_bf16 is set
  uint16_t* out_bf16;  // [M, N] bf16 bits, rounded to nearest even from the fp32 result
  Transpose16Fn transpose16;
};

// Fills for weight-only callers (panels_bf16.cpp; AVX-512 BF16). fill_int8_bf16 writes bf16(q)
// (exact; the caller passes the channel scales as ws), fill_int4_bf16 bf16((q - z) * s) of the
// int4 layout (int4_kernels.h).
struct Int8Panel {
  const int8_t* w;  // [N, K]
  int64_t K;
};
struct Int4Panel {
  const uint8_t* w;  // [N, K / 2]
  const float* scales;  // [N, K / group]
  const float* zeros;  // [N, K / group] or null (8)
  int64_t K, group;
};
void fill_int8_bf16(const void* ctx, int64_t n0, int64_t rows, uint8_t* dst, int64_t ld);
void fill_int4_bf16(const void* ctx, int64_t n0, int64_t rows, uint8_t* dst, int64_t ld);

}  // namespace greenops::cpu
