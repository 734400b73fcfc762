// Dense GEMM on AVX-512 dot-product instructions for the quantized matmuls where there is no AMX
// (panels.h): bf16 x and weights (vdpbf16ps, fp32 sums; Isa::Avx512Bf16) or int8 both
// (vpdpbusd, int32 sums; Isa::Avx512Vnni).
//
// Broadcast form: a dword of x (2 bf16, or 4 int8 as u8 = x + 128: vpdpbusd multiplies unsigned
// by signed bytes) against the same dword of K of 32 channels, 12 rows of x at a time, so 24
// accumulators stay in registers over all of K. The panel is the weight's 32 rows with their
// dwords transposed ([K * esz / 4][32 channels][4 bytes]); x is packed likewise, 12 rows a group
// ([M / 12][K * esz / 4][12 rows][4 bytes]). For int8 the epilogue takes 128 * sum_k w[n, k] back
// off each sum.
//
// (Measured against the other form, each dword of the weight broadcast against 16 rows of x in a
// register, the panel left row-major and so nothing transposed: slower at every M on the Xeon's
// VNNI path, 4096^2 int8: M = 2 2.1 vs 1.05 ms, 48 3.9 vs 3.6 — rows along the lanes waste most of
// them below 16 rows, and the panel must still be copied, its rows padded, since rows 4 KiB apart
// share one set of L1.)
#pragma once
#include <cstdint>

#include "panels.h"

namespace greenops::cpu::dot {

// Rows of x per register block.
constexpr int64_t kRows = 12;

// Bytes of packed x per block (rows that pass each panel before the next block refills it).
constexpr int64_t kBlockBytes = 1 << 20;

// Rows of x packed: M rounded up to whole groups of kRows.
inline int64_t packed_rows(int64_t M) { return (M + kRows - 1) / kRows * kRows; }

// Groups [g0, g1) of x [M, K * esz bytes] (rows as stored) into dst (packed_rows(M) * K * esz
// bytes), int8 as u8 (x + 128), rows past M zero.
void pack(const uint8_t* x, int64_t M, int64_t row_bytes, bool int8, uint8_t* dst, int64_t g0, int64_t g1);

// Scratch bytes a thread needs for K elements of esz bytes (a row-major panel, its transpose).
inline int64_t scratch_bytes(int64_t K, int64_t esz) { return 2 * kPanelRows * K * esz + 4 * kPanelRows; }

// Panels [p_begin, p_end) of 32 output channels (the last may be short), all rows of x (a.xp from
// pack). scratch: the calling thread's scratch_bytes, 64-byte aligned.
void gemm(const GemmArgs& a, int64_t p_begin, int64_t p_end, uint8_t* scratch);

}  // namespace greenops::cpu::dot
