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
