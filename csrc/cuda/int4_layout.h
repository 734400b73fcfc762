// The CUDA int4_weight_mm kernel's prepacked weight layout and index math (int4_weight_mm.cu),
// as functions the host compiles too: greenops.ops.int4.prepack_cuda builds the same layout in
// torch (tested equal), and tests/cuda_host/int4_emulator.cpp runs the kernel's loop on the
// host with the PTX ISA's mma.m16n8k16 fragment layouts. Plain C++, no torch.
//
// Layout: W [N, K] (q in 0..15) in tiles of 8 rows x 128 k; tile (nt, kb) is 32 lanes x 4
// 32-bit words (512 bytes, contiguous, tiles ordered kb-fastest within a row of tiles): one
// 16-byte load per lane per tile, coalesced across the warp. Word j of lane l holds the 16
// nibbles that lane needs as mma B fragments for the k16 steps 2j and 2j+1, placed so that
// (word >> 4e) & 0x000f000f yields, in the two 16-bit halves, the q pair of one B register:
// OR-ing 0x6400 (fp16 1024) or 0x4300 (bf16 128) turns each half into 1024 + q / 128 + q, and
// one subtraction gives q exactly -- no lookup, no conversion instruction.
#pragma once

#include <cstdint>

#include "mma_layout.h"  // acc_coord, GREENOPS_HD

namespace greenops::cuda::int4_tile {

using namespace mma_layout;

constexpr int TILE_N = 8, TILE_K = 128, LANES = 32, WORDS = 4;  // 512-byte tiles
constexpr int WARPS = 4, BLOCK_N = 64, NT = BLOCK_N / TILE_N;   // 4 warps x 8 n-tiles
constexpr int BLOCK_M = 16;                                     // one mma m-tile per block

// Nibble i (bits 4i..4i+3) of word j of lane l: its row in the tile and its k in the tile.
// Extraction e = i % 4 of the word covers k16 step 2j + e / 2 and B register e % 2 (k 2t, 2t+1
// or 2t+8, 2t+9 for t = l % 4); the low half (i < 4) is the even k of the pair.
GREENOPS_HD void nibble_coord(int lane, int j, int i, int& row, int& k) {
  const int e = i & 3, high = i >> 2, t = lane & 3;
  const int step = 2 * j + (e >> 1);
  row = lane >> 2;
  k = 16 * step + 2 * t + 8 * (e & 1) + high;
}

// The word's (step, B register) of extraction e.
GREENOPS_HD void extraction_of(int j, int e, int& step, int& reg) {
  step = 2 * j + (e >> 1);
  reg = e & 1;
}

// The q pair of extraction e, one per 16-bit half.
GREENOPS_HD uint32_t nibble_pair(uint32_t word, int e) { return (word >> (4 * e)) & 0x000f000fu; }

// 32-bit word offset of tile (nt, kb), lane, word j in the prepacked tensor.
GREENOPS_HD int64_t word_offset(int64_t nt, int64_t kb, int64_t k_tiles, int lane, int j) {
  return ((nt * k_tiles + kb) * LANES + lane) * WORDS + j;
}

// mma.m16n8k16 A fragment element (PTX ISA): register r (0..3), half h of lane -> (row, k).
GREENOPS_HD void a_coord(int lane, int r, int h, int& row, int& k) {
  row = (lane >> 2) + 8 * (r & 1);
  k = 2 * (lane & 3) + h + 8 * (r >> 1);
}

// Split-K: enough blocks for `waves` per SM, each warp left at least 2 k-tiles to stream.
GREENOPS_HD int choose_split(int n_blocks, int m_blocks, int k_tiles, int sms, int waves = 2) {
  const int blocks = n_blocks * m_blocks;
  int split = (waves * sms + blocks - 1) / blocks;
  const int most = k_tiles / (2 * WARPS);
  if (split > most) split = most;
  return split < 1 ? 1 : split;
}

// k-tiles [begin, end) of split s of `split` (as even as possible).
GREENOPS_HD void split_range(int s, int split, int k_tiles, int& begin, int& end) {
  begin = static_cast<int>(static_cast<int64_t>(k_tiles) * s / split);
  end = static_cast<int>(static_cast<int64_t>(k_tiles) * (s + 1) / split);
}

}  // namespace greenops::cuda::int4_tile
