// Dense GEMM on AMX tiles for the quantized matmuls (int8_mm, int8_weight_mm, int4_weight_mm):
// out[m, n] = (sum_k x[m, k] * w[n, k]) * xs[m] * ws[n] + bias[n], with bf16 x and weights
// (fp32 sums, tdpbf16ps) or int8 both (int32 sums, tdpbssd). Torch-free, like the other kernels.
//
// A tile product is C[16 x 16] += A[16 rows x 64 bytes] . B[16 rows x 64 bytes]: A = 16 weight
// rows as stored (64 bytes of K each), B = 16 rows of x packed by pack_amx (amx_pack.h: 4 bytes
// of K a lane, 16 rows of x across), so C holds 16 output channels x 16 rows of x, transposed
// into out by the epilogue. Weight-only callers never materialize the float weight: `fill`
// dequantizes 32 rows at a time into a bf16 panel that stays in L2 while every row of x passes.
#pragma once
#include <cstdint>

namespace greenops::cpu::amx {

// Output channels per panel (two A tiles).
constexpr int64_t kPanelRows = 32;

// Bytes of packed x per block (amx_gemm.cpp's loop order; at least 2 groups of 16 rows):
// measured, 2-core Xeon with AMX, 4096 x 4096 bf16
// (0.5 MiB: 0.92x bf16 at M = 256, 1 MiB 1.12x, 2 MiB 0.99x, 4 MiB 1.06x; at M = 2048 0.75x,
// 0.89x, 0.79x, 0.63x, W8A16; W8A8 likewise best at 1 MiB.)
constexpr int64_t kBlockBytes = 1 << 20;


// Writes weight rows [n0, n0 + rows) (rows <= 32), all of K, into dst with a row stride of ld
// bytes: bf16 for weight-only, int8 copies for an int8 weight whose last panel is short.
using FillFn = void (*)(const void* ctx, int64_t n0, int64_t rows, uint8_t* dst, int64_t ld);
using Transpose16Fn = void (*)(const float* src, int64_t lds, float* dst, int64_t ldd);

struct GemmArgs {
  const uint8_t* xp;  // x packed: [mp / 16][K * esz / 4][16 rows][4 bytes]; rows past M zero
  int64_t M, mp, N, K;  // K * esz a multiple of 64 (esz: 2 bf16, 1 int8); mp a multiple of 16
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

// Panels [p_begin, p_end) of 32 output channels (the last may be short), all rows of x. panel:
// the calling thread's scratch of kPanelRows * K * esz bytes, 64-byte aligned.
void gemm(const GemmArgs& a, int64_t p_begin, int64_t p_end, uint8_t* panel);

}  // namespace greenops::cpu::amx
