// Tiling of the CUDA int8_mm kernel (int8_mm.cu), compiled for the host too: the emulator in
// tests/cuda_host runs the kernel's loop with these and mma_layout.h's functions and the PTX
// ISA's ldmatrix / mma.m16n8k32 fragment layouts, and compares the result with a matmul.
//
// Plain C++ (no torch, no CUDA headers when compiled for the host).
#pragma once

#include "mma_layout.h"  // smem_offset, copy_coord, ldmatrix_a/b, acc_coord

namespace greenops::cuda::int8_mm_tile {

using namespace mma_layout;

// Block tile BM x BN, K step BK (bytes of int8), 8 warps as 2 (M) x 4 (N), each a 64 x 32
// warp tile = 4 x 4 mma.m16n8k32 per 32 of K. STAGES cp.async stages (4 x 16 KiB).
constexpr int BM = 128, BN = 128, BK = 64, STAGES = 4;
constexpr int WARPS_M = 2, WARPS_N = 4, THREADS = 32 * WARPS_M * WARPS_N;
constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // 64 x 32
constexpr int MI = WM / 16, NI = WN / 8;              // 4 x 4 mma tiles per warp
constexpr int CHUNKS = BK / 16;                        // 16-byte chunks per tile row
constexpr int TILE_BYTES = (BM + BN) * BK;             // one stage: A tile then W tile
constexpr int SMEM_BYTES = STAGES * TILE_BYTES;
constexpr int GROUP_M = 8;  // tile raster: GROUP_M tile rows share each W column tile in L2

static_assert((BM * CHUNKS) % THREADS == 0 && (BN * CHUNKS) % THREADS == 0, "even cp.async split");

// Tile raster: program `pid` -> (tile_m, tile_n), grouped so that GROUP_M consecutive
// programs walk down a column of tiles (they share W's tile in L2) before moving right.
GREENOPS_HD void tile_of(int pid, int tiles_m, int tiles_n, int& tm, int& tn) {
  const int per_group = GROUP_M * tiles_n;
  const int group = pid / per_group;
  const int first_m = group * GROUP_M;
  const int rows = (tiles_m - first_m) < GROUP_M ? (tiles_m - first_m) : GROUP_M;
  const int in_group = pid % per_group;
  tm = first_m + in_group % rows;
  tn = in_group / rows;
}

}  // namespace greenops::cuda::int8_mm_tile

// The sm_90a kernel (int8_mm_wgmma_kernel): 2 warpgroups, each a 64 x BN wgmma tile
// (m64n256k32, accumulators in registers) reading A and W from shared memory by descriptor.
// Rows are 128 bytes of K, stored as smem_offset(row, chunk, 8) places them: exactly the
// hardware's 128-byte swizzle (16-byte chunk ^= row % 8, 8-row atoms of 1024 bytes), so a
// K-major descriptor with SBO = 1024 reads them. Loads run AHEAD tiles in front of the
// multiply: with wgmma(kt - 1) still in flight, the stage loaded at k tile kt is neither
// kt's nor kt - 1's (the emulator checks this with the copies and reads reordered).
namespace greenops::cuda::int8_mm_wg {

using namespace mma_layout;

constexpr int BM = 128, BN = 256, BK = 128, STAGES = 4, AHEAD = STAGES - 2;
constexpr int WARPGROUPS = BM / 64, THREADS = 128 * WARPGROUPS;
constexpr int CHUNKS = BK / 16;  // 8: one 128-byte swizzle line per row
constexpr int K_STEPS = BK / 32;  // wgmma k32 steps per tile
constexpr int A_BYTES = BM * BK, TILE_BYTES = (BM + BN) * BK;
constexpr int ALIGN = 1024;  // a swizzle atom: stage and warpgroup bases sit on multiples
constexpr int SMEM_BYTES = STAGES * TILE_BYTES + ALIGN;  // + room to align the base
constexpr int ACC = BN / 2;  // int32 accumulators per thread (64 x BN over 128 threads)

static_assert(CHUNKS == 8, "rows must be one 128-byte swizzle line");
static_assert(TILE_BYTES % ALIGN == 0 && A_BYTES % ALIGN == 0 && (64 * BK) % ALIGN == 0,
              "every operand base on a swizzle atom");
static_assert((BM * CHUNKS) % THREADS == 0 && (BN * CHUNKS) % THREADS == 0, "even cp.async split");

// The wgmma shared-memory descriptor of a K-major operand in that layout starting at shared
// address `addr` (k byte offsets within a line are added to addr): start >> 4 in bits 0-13,
// leading byte offset 16 >> 4 (unused by swizzled K-major), stride byte offset 1024 >> 4 in
// bits 32-45 (the next 8 rows), swizzle mode 1 (128 bytes) in bits 62-63.
GREENOPS_HD unsigned long long smem_desc(unsigned addr) {
  return (static_cast<unsigned long long>((addr & 0x3FFFF) >> 4)) |
         (static_cast<unsigned long long>(16 >> 4) << 16) |
         (static_cast<unsigned long long>((8 * BK) >> 4) << 32) | (1ull << 62);
}

// Accumulator r (0..ACC-1) of thread t (0..127) of a warpgroup: (row, col) in its 64 x BN tile.
// Warp t / 32 owns rows 16 (t / 32) ..+15; each 8 columns repeat mma.sync's 16 x 8 C layout.
GREENOPS_HD void acc_coord(int t, int r, int& row, int& col) {
  mma_layout::acc_coord(t & 31, r & 3, row, col);
  row += 16 * (t >> 5);
  col += 8 * (r >> 2);
}

}  // namespace greenops::cuda::int8_mm_wg
