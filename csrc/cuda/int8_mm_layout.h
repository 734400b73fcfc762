// Index math of the CUDA int8_mm kernel (int8_mm.cu), as functions the host compiles too, so
// that tests/test_cuda_host.py can check them on a machine without a GPU: an emulator there
// runs the kernel's loop with these functions and the PTX ISA's ldmatrix / mma.m16n8k32
// fragment layouts and compares the tile it computes with a plain matmul.
//
// Plain C++ (no torch, no CUDA headers when compiled for the host).
#pragma once

#if defined(__CUDACC__)
#define GREENOPS_HD __host__ __device__ __forceinline__
#else
#define GREENOPS_HD inline
#endif

namespace greenops::cuda::int8_mm_tile {

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

static_assert(CHUNKS == 4, "the swizzle below assumes 64-byte rows");
static_assert((BM * CHUNKS) % THREADS == 0 && (BN * CHUNKS) % THREADS == 0, "even cp.async split");

// Byte offset of chunk `chunk` (16 bytes) of tile row `row`. Rows are 64 bytes, so 8 rows
// read at one chunk by ldmatrix would fall in 2 of the 8 16-byte bank groups (4-way
// conflict); XOR-ing the chunk with bits 1..2 of the row spreads them over all 8.
GREENOPS_HD int smem_offset(int row, int chunk) {
  return row * BK + ((chunk ^ ((row >> 1) & 3)) << 4);
}

// cp.async assignment: copy `i` (0 .. rows*CHUNKS-1, i = thread + THREADS * p) loads chunk
// i % CHUNKS of row i / CHUNKS: consecutive threads read consecutive 16 bytes of a row.
GREENOPS_HD void copy_coord(int i, int& row, int& chunk) {
  row = i / CHUNKS;
  chunk = i % CHUNKS;
}

// ldmatrix.x4 row addresses for an A fragment (16 rows x 32 bytes at k byte 32*kk): lanes
// 0-7 give rows 0-7 and 8-15 rows 8-15 of the first 16 bytes, lanes 16-31 the same rows of
// the next 16 bytes -> registers a0..a3 in mma.m16n8k32's A order.
GREENOPS_HD void ldmatrix_a(int lane, int kk, int& row, int& chunk) {
  row = lane & 15;
  chunk = 2 * kk + (lane >> 4);
}

// ldmatrix.x4 row addresses for the B fragments of two n8 tiles (W rows n, 32 bytes of k):
// matrix j = lane / 8 is (n tile j / 2, k half j % 2) -> {b0, b1} of tile 0, then of tile 1.
GREENOPS_HD void ldmatrix_b(int lane, int kk, int& row, int& chunk) {
  const int j = lane >> 3;
  row = (j >> 1) * 8 + (lane & 7);
  chunk = 2 * kk + (j & 1);
}

// Accumulator c[i] (i = 0..3) of mma.m16n8k32 at lane: row and column in the 16 x 8 tile.
GREENOPS_HD void acc_coord(int lane, int i, int& row, int& col) {
  row = (lane >> 2) + 8 * (i >> 1);
  col = (lane & 3) * 2 + (i & 1);
}

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
