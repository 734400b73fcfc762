// Dense GEMM on AMX tiles for the quantized matmuls (int8_mm, int8_weight_mm, int4_weight_mm;
// panels.h): bf16 x and weights (fp32 sums, tdpbf16ps) or int8 both (int32 sums, tdpbssd).
//
// A tile product is C[16 x 16] += A[16 rows x 64 bytes] . B[16 rows x 64 bytes]: A = 16 weight
// rows as stored (64 bytes of K each), B = 16 rows of x packed by pack_amx (gemm_ops.h; GemmArgs::xp
// is [mp / 16][K * esz / 4][16 rows][4 bytes], rows past M zero), so C holds 16 output channels
// x 16 rows of x, transposed into out by the epilogue.
#pragma once
#include <cstdint>

#include "panels.h"

namespace greenops::cpu::amx {

// Bytes of packed x per block (amx_gemm.cpp's loop order; at least 2 groups of 16 rows):
// measured, 2-core Xeon with AMX, 4096 x 4096 bf16
// (0.5 MiB: 0.92x bf16 at M = 256, 1 MiB 1.12x, 2 MiB 0.99x, 4 MiB 1.06x; at M = 2048 0.75x,
// 0.89x, 0.79x, 0.63x, W8A16; W8A8 likewise best at 1 MiB.)
constexpr int64_t kBlockBytes = 1 << 20;

// Panels [p_begin, p_end) of 32 output channels (the last may be short), all rows of x. panel:
// the calling thread's scratch of kPanelRows * (K * esz + 64) bytes, 64-byte aligned.
void gemm(const GemmArgs& a, int64_t p_begin, int64_t p_end, uint8_t* panel);

}  // namespace greenops::cpu::amx
