// Host emulation of csrc/cuda/int8_mm.cu's data movement, built with g++ by
// tests/test_cuda_host.py. It runs the kernel's loop (prologue, STAGES-deep ring, prefetch,
// ldmatrix, mma, epilogue) for every block and warp with the kernel's own index functions
// (int8_mm_layout.h, mma_layout.h), while ldmatrix and mma.m16n8k32 behave as the PTX ISA
// documents them (ptx_model.h, written independently), and compares with a plain matmul.
// Also checks: each stage's copies write every shared byte exactly once, ldmatrix reads are
// free of bank conflicts, and the tile raster visits every tile once.
//
//   int8_mm_emulator M N K   -> prints "ok ..." and exits 0, or prints the first mismatch
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "int8_mm_layout.h"
#include "ptx_model.h"

using namespace greenops::cuda::int8_mm_tile;
using namespace ptx_model;

// mma.m16n8k32 s8: the registers' bytes at ptx_model's fragment coordinates.
static void mma(int32_t (&c)[32][4], const Regs4 (&a)[32], const uint32_t (&b)[32][2]) {
  int8_t A[16][32], B[32][8];
  for (int t = 0; t < 32; ++t) {
    int8_t av[16], bv[8];
    std::memcpy(av, a[t].r, 16);
    std::memcpy(bv, b[t], 8);
    for (int i = 0; i < 16; ++i) {
      int row, k;
      a8(t, i, row, k);
      A[row][k] = av[i];
    }
    for (int i = 0; i < 8; ++i) {
      int k, n;
      b8(t, i, k, n);
      B[k][n] = bv[i];
    }
  }
  for (int t = 0; t < 32; ++t)
    for (int i = 0; i < 4; ++i) {
      int row, col;
      c_at(t, i, row, col);
      int32_t sum = 0;
      for (int k = 0; k < 32; ++k) sum += int32_t(A[row][k]) * int32_t(B[k][col]);
      c[t][i] += sum;
    }
}

static void load_stage(std::vector<uint8_t>& smem, int stage, const std::vector<int8_t>& A,
                       const std::vector<int8_t>& W, int M, int N, int K, int m0, int n0, int k0,
                       std::vector<int>* writes) {
  const int base = stage * TILE_BYTES;
  for (int t = 0; t < THREADS; ++t) {
    for (int p = 0; p < BM * CHUNKS / THREADS; ++p) {
      int row, chunk;
      copy_coord(t + THREADS * p, CHUNKS, row, chunk);
      const int k = k0 + chunk * 16, m = m0 + row, off = base + smem_offset(row, chunk, CHUNKS);
      for (int b = 0; b < 16; ++b) {
        smem[off + b] = (m < M && k < K) ? uint8_t(A[size_t(m) * K + k + b]) : 0;
        if (writes) ++(*writes)[off + b];
      }
    }
    for (int p = 0; p < BN * CHUNKS / THREADS; ++p) {
      int row, chunk;
      copy_coord(t + THREADS * p, CHUNKS, row, chunk);
      const int k = k0 + chunk * 16, n = n0 + row, off = base + BM * BK + smem_offset(row, chunk, CHUNKS);
      for (int b = 0; b < 16; ++b) {
        smem[off + b] = (n < N && k < K) ? uint8_t(W[size_t(n) * K + k + b]) : 0;
        if (writes) ++(*writes)[off + b];
      }
    }
  }
}

int main(int argc, char** argv) {
  if (argc != 4) return fail("usage: M N K");
  const int M = std::atoi(argv[1]), N = std::atoi(argv[2]), K = std::atoi(argv[3]);
  if (K % 16) return fail("K must be a multiple of 16", K);
  std::mt19937 rng(M * 7919 + N * 131 + K);
  std::uniform_int_distribution<int> dist(-127, 127);
  std::vector<int8_t> A(size_t(M) * K), W(size_t(N) * K);
  for (auto& v : A) v = int8_t(dist(rng));
  for (auto& v : W) v = int8_t(dist(rng));

  // Each stage's copies write every byte of the stage exactly once.
  {
    std::vector<uint8_t> smem(SMEM_BYTES);
    std::vector<int> writes(SMEM_BYTES, 0);
    load_stage(smem, 1, A, W, M, N, K, 0, 0, 0, &writes);
    for (int i = 0; i < SMEM_BYTES; ++i)
      if (writes[i] != (i / TILE_BYTES == 1 ? 1 : 0)) return fail("stage copy coverage", i, writes[i]);
  }

  const int tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
  std::vector<int> visits(size_t(tiles_m) * tiles_n, 0);
  std::vector<int32_t> out(size_t(M) * N, INT32_MIN);  // poisoned: every element must be written
  std::vector<uint8_t> smem(SMEM_BYTES);
  long conflicts = 0;
  for (int pid = 0; pid < tiles_m * tiles_n; ++pid) {
    int tm, tn;
    tile_of(pid, tiles_m, tiles_n, tm, tn);
    if (tm < 0 || tm >= tiles_m || tn < 0 || tn >= tiles_n) return fail("raster range", pid, tm, tn);
    ++visits[size_t(tm) * tiles_n + tn];
    const int m0 = tm * BM, n0 = tn * BN;
    static int32_t acc[WARPS_M * WARPS_N][MI][NI][32][4];
    std::memset(acc, 0, sizeof(acc));
    const int k_tiles = (K + BK - 1) / BK;
    std::fill(smem.begin(), smem.end(), 0xAB);  // stale bytes must never be read as data
    for (int s = 0; s < STAGES - 1; ++s)
      if (s < k_tiles) load_stage(smem, s, A, W, M, N, K, m0, n0, s * BK, nullptr);
    for (int kt = 0; kt < k_tiles; ++kt) {
      const int next = kt + STAGES - 1;
      if (next < k_tiles) load_stage(smem, next % STAGES, A, W, M, N, K, m0, n0, next * BK, nullptr);
      const int a_tile = (kt % STAGES) * TILE_BYTES, w_tile = a_tile + BM * BK;
      for (int warp = 0; warp < WARPS_M * WARPS_N; ++warp) {
        const int wm = warp / WARPS_N, wn = warp % WARPS_N;
        for (int kk = 0; kk < BK / 32; ++kk) {
          Regs4 a[MI][32];
          uint32_t b[NI][32][2];
          for (int i = 0; i < MI; ++i) {
            int addr[32];
            for (int lane = 0; lane < 32; ++lane) {
              int row, chunk;
              ldmatrix_a(lane, kk, row, chunk);
              addr[lane] = a_tile + smem_offset(wm * WM + i * 16 + row, chunk, CHUNKS);
            }
            conflicts += !conflict_free(addr);
            ldmatrix_x4(smem, addr, a[i]);
          }
          for (int j = 0; j < NI; j += 2) {
            int addr[32];
            for (int lane = 0; lane < 32; ++lane) {
              int row, chunk;
              ldmatrix_b(lane, kk, row, chunk);
              addr[lane] = w_tile + smem_offset(wn * WN + j * 8 + row, chunk, CHUNKS);
            }
            conflicts += !conflict_free(addr);
            Regs4 r[32];
            ldmatrix_x4(smem, addr, r);
            for (int lane = 0; lane < 32; ++lane) {
              b[j][lane][0] = r[lane].r[0], b[j][lane][1] = r[lane].r[1];
              b[j + 1][lane][0] = r[lane].r[2], b[j + 1][lane][1] = r[lane].r[3];
            }
          }
          for (int i = 0; i < MI; ++i)
            for (int j = 0; j < NI; ++j) mma(acc[warp][i][j], a[i], b[j]);
        }
      }
    }
    for (int warp = 0; warp < WARPS_M * WARPS_N; ++warp) {
      const int wm = warp / WARPS_N, wn = warp % WARPS_N;
      for (int i = 0; i < MI; ++i)
        for (int j = 0; j < NI; ++j)
          for (int lane = 0; lane < 32; ++lane)
            for (int c = 0; c < 4; ++c) {
              int r, col;
              acc_coord(lane, c, r, col);
              const int m = m0 + wm * WM + i * 16 + r, n = n0 + wn * WN + j * 8 + col;
              if (m < M && n < N) {
                if (out[size_t(m) * N + n] != INT32_MIN) return fail("element written twice", m, n);
                out[size_t(m) * N + n] = acc[warp][i][j][lane][c];
              }
            }
    }
  }
  for (size_t i = 0; i < visits.size(); ++i)
    if (visits[i] != 1) return fail("raster visits", int(i), visits[i]);
  if (conflicts) return fail("ldmatrix bank conflicts", 0, 0, conflicts);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      int32_t ref = 0;
      for (int k = 0; k < K; ++k) ref += int32_t(A[size_t(m) * K + k]) * int32_t(W[size_t(n) * K + k]);
      if (out[size_t(m) * N + n] != ref) return fail("value", m, n, out[size_t(m) * N + n], ref);
    }
  std::printf("ok M=%d N=%d K=%d tiles=%d\n", M, N, K, tiles_m * tiles_n);
  return 0;
}
