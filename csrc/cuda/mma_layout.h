// Index math shared by the tensor-core kernels (int8_mm, int4_weight_mm, bsr_mm), compiled for
// the host too so that the emulators in tests/cuda_host check it: where ldmatrix.x4 reads,
// where mma's accumulators land, and the XOR swizzle of shared-memory rows. Plain C++.
#pragma once

#if defined(__CUDACC__)
#define GREENOPS_HD __host__ __device__ __forceinline__
#else
#define GREENOPS_HD inline
#endif

namespace greenops::cuda::mma_layout {

// Byte offset of 16-byte chunk `chunk` of shared-memory row `row`, rows of `chunks` chunks
// (4: 64-byte rows, 8: 128-byte rows). The chunk is XOR-ed with row bits so that the 8 rows
// one ldmatrix matrix reads at one chunk fall in 8 different 16-byte bank groups (unswizzled,
// 64-byte rows put them in 2: a 4-way conflict).
GREENOPS_HD int smem_offset(int row, int chunk, int chunks) {
  const int sw = chunks == 8 ? (row & 7) : ((row >> 1) & 3);
  return (row * chunks + (chunk ^ sw)) * 16;
}

// cp.async assignment: copy i loads chunk i % chunks of row i / chunks (consecutive threads
// read consecutive 16 bytes of a row).
GREENOPS_HD void copy_coord(int i, int chunks, int& row, int& chunk) {
  row = i / chunks;
  chunk = i % chunks;
}

// ldmatrix.x4 row addresses for one 16 x 32-byte A fragment at k step kk (two 16-byte
// chunks): lanes 0-15 give rows 0-15 of the first chunk, lanes 16-31 the same rows of the
// second -> registers a0..a3 in mma's A order (m16n8k16 halves and m16n8k32 bytes alike).
GREENOPS_HD void ldmatrix_a(int lane, int kk, int& row, int& chunk) {
  row = lane & 15;
  chunk = 2 * kk + (lane >> 4);
}

// ldmatrix.x4 row addresses for the B fragments of two n8 tiles (rows n, k contiguous):
// matrix j = lane / 8 is (n tile j / 2, chunk j % 2) -> {b0, b1} of tile 0, then of tile 1.
GREENOPS_HD void ldmatrix_b(int lane, int kk, int& row, int& chunk) {
  const int j = lane >> 3;
  row = (j >> 1) * 8 + (lane & 7);
  chunk = 2 * kk + (j & 1);
}

// Accumulator c[i] (i = 0..3) of mma.m16n8k16 / m16n8k32 at lane: (row, col) in the 16 x 8 tile.
GREENOPS_HD void acc_coord(int lane, int i, int& row, int& col) {
  row = (lane >> 2) + 8 * (i >> 1);
  col = (lane & 3) * 2 + (i & 1);
}

}  // namespace greenops::cuda::mma_layout
