// Tiling of the CUDA bsr_mm forward (bsr_mm.cu), compiled for the host too
// (tests/cuda_host/bsr_emulator.cpp runs the kernel's loop with it, mma_layout.h's index
// functions and the PTX ISA's ldmatrix / mma.m16n8k16 layouts). Plain C++, no torch.
//
// One CTA computes a BM x bn tile of out for one block row: for each nonzero block (c) of the
// row, the x tile [BM, bk] at columns c*bk and the block [bn, bk] (both k-contiguous: mma's
// row.col) go through a STAGES-deep cp.async ring into swizzled shared memory.
#pragma once

#include "mma_layout.h"  // smem_offset, copy_coord, ldmatrix_a/b, acc_coord

namespace greenops::cuda::bsr_tile {

using namespace mma_layout;

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

}  // namespace greenops::cuda::bsr_tile
