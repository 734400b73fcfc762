// Index math of the CUDA bsr_mm forward (bsr_mm.cu), as functions the host compiles too
// (tests/cuda_host/bsr_emulator.cpp runs the kernel's loop with them and the PTX ISA's
// ldmatrix / mma.m16n8k16 layouts). Plain C++, no torch.
//
// One CTA computes a BM x bn tile of out for one block row: for each nonzero block (c) of the
// row, the x tile [BM, bk] at columns c*bk and the block [bn, bk] (both k-contiguous: mma's
// row.col) go through a STAGES-deep cp.async ring into swizzled shared memory.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GREENOPS_HD __host__ __device__ __forceinline__
#else
#define GREENOPS_HD inline
#endif

namespace greenops::cuda::bsr_tile {

constexpr int BM = 128, STAGES = 3, WARPS_M = 4, WARPS_N = 2, THREADS = 32 * WARPS_M * WARPS_N;
constexpr int WM = BM / WARPS_M;  // 32 rows per warp: 2 m16 tiles
constexpr int MI = WM / 16;

// A block shape (bn, bk) the kernel is built for: bn, bk in {32, 64}.
template <int BN_, int BK_>
struct Shape {
  static constexpr int bn = BN_, bk = BK_;
  static constexpr int WN = bn / WARPS_N, NI = WN / 8;  // n8 tiles per warp
  static constexpr int CHUNKS = bk * 2 / 16;            // 16-byte chunks per smem row
  static constexpr int A_BYTES = BM * bk * 2, B_BYTES = bn * bk * 2;
  static constexpr int STAGE_BYTES = A_BYTES + B_BYTES;
  static constexpr int SMEM_BYTES = STAGES * STAGE_BYTES;
  static_assert(NI % 2 == 0, "ldmatrix.x4 loads B for two n8 tiles");
  static_assert((BM * CHUNKS) % THREADS == 0, "the x tile's copies split evenly");
};

// Byte offset of 16-byte chunk `chunk` of smem row `row` (rows of `chunks` chunks): the chunk
// is XOR-ed with row bits so that the 8 rows an ldmatrix reads at one chunk hit 8 different
// 16-byte bank groups (8 chunks per row: row & 7; 4 per row: (row >> 1) & 3).
GREENOPS_HD int smem_offset(int row, int chunk, int chunks) {
  const int sw = chunks == 8 ? (row & 7) : ((row >> 1) & 3);
  return (row * chunks + (chunk ^ sw)) * 16;
}

// cp.async assignment: copy i loads chunk i % chunks of row i / chunks.
GREENOPS_HD void copy_coord(int i, int chunks, int& row, int& chunk) {
  row = i / chunks;
  chunk = i % chunks;
}

// ldmatrix.x4 row addresses, k16 step kk (two 16-byte chunks of 8 halves):
// A (16 rows): lanes 0-15 rows 0-15 first chunk, 16-31 the same rows second chunk;
// B (two n8 tiles): matrix j = lane / 8 = (n tile j / 2, chunk j % 2).
GREENOPS_HD void ldmatrix_a(int lane, int kk, int& row, int& chunk) {
  row = lane & 15;
  chunk = 2 * kk + (lane >> 4);
}
GREENOPS_HD void ldmatrix_b(int lane, int kk, int& row, int& chunk) {
  const int j = lane >> 3;
  row = (j >> 1) * 8 + (lane & 7);
  chunk = 2 * kk + (j & 1);
}

// Accumulator c[i] of mma.m16n8k16 at lane: (row, col) in the 16 x 8 tile.
GREENOPS_HD void acc_coord(int lane, int i, int& row, int& col) {
  row = (lane >> 2) + 8 * (i >> 1);
  col = (lane & 3) * 2 + (i & 1);
}

}  // namespace greenops::cuda::bsr_tile
