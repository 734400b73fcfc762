// Host emulation of csrc/cuda/bsr_mm.cu, built with g++ by tests/test_cuda_host.py: the
// kernel's grid (row tiles x block rows), the walk over a block row's nonzero blocks through
// the 3-stage ring, the copies, ldmatrix and the epilogue run with the kernel's own index
// functions (bsr_layout.h, mma_layout.h), while ldmatrix and mma.m16n8k16 behave as the PTX
// ISA documents them (ptx_model.h). Elements are small integers in 16-bit slots (the index math is under
// test, not fp16 arithmetic), so the result is compared exactly with a dense matmul. Also
// checks: copies cover each stage once, ldmatrix reads are free of bank conflicts, every
// output element is written once.
//
//   bsr_emulator M N K bn bk density_percent  -> "ok ..." (exit 0) or the first mismatch
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "bsr_layout.h"
#include "ptx_model.h"

using namespace greenops::cuda::bsr_tile;
using namespace ptx_model;

// mma.m16n8k16 on the registers' 16-bit slots read as small integers.
static void mma(int64_t (&c)[32][4], const Regs4 (&a)[32], const uint32_t (&b)[32][2]) {
  int64_t av[32][4][2], bv[32][2][2];
  for (int t = 0; t < 32; ++t)
    for (int h = 0; h < 2; ++h) {
      for (int r = 0; r < 4; ++r) av[t][r][h] = int16_t(a[t].r[r] >> (16 * h));
      for (int r = 0; r < 2; ++r) bv[t][r][h] = int16_t(b[t][r] >> (16 * h));
    }
  mma16(c, av, bv);
}

template <int BN_, int BK_>
int run(int M, int N, int K, int density) {
  using S = Shape<BN_, BK_>;
  constexpr int bn = BN_, bk = BK_;
  if (N % bn || K % bk) return fail("shape");
  std::mt19937 rng(M * 131 + N * 7 + K + bn * 3 + bk + density);
  const int R = N / bn, C = K / bk;
  std::vector<int64_t> crow(R + 1, 0), col;
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c)
      if (int(rng() % 100) < (r == 1 ? 100 : density)) col.push_back(c);  // row 1: dense
    crow[r + 1] = int64_t(col.size());
  }
  const int64_t nnz = int64_t(col.size());
  std::vector<int16_t> x(size_t(M) * K), values(size_t(nnz) * bn * bk);
  for (auto& v : x) v = int16_t(int(rng() % 7) - 3);
  for (auto& v : values) v = int16_t(int(rng() % 7) - 3);

  std::vector<uint8_t> smem(S::SMEM_BYTES);
  auto load_stage = [&](int stage, int64_t b, int64_t c, int m0, std::vector<int>* writes) {
    const int base = stage * S::STAGE_BYTES;
    for (int i = 0; i < BM * S::CHUNKS; ++i) {  // every thread's copies (t + THREADS p)
      int row, chunk;
      copy_coord(i, S::CHUNKS, row, chunk);
      const int m = m0 + row, off = base + smem_offset(row, chunk, S::CHUNKS);
      for (int e = 0; e < 8; ++e) {
        const int16_t v = m < M ? x[size_t(m) * K + c * bk + chunk * 8 + e] : 0;
        std::memcpy(&smem[off + 2 * e], &v, 2);
      }
      if (writes) for (int e = 0; e < 16; ++e) ++(*writes)[off + e];
    }
    for (int i = 0; i < bn * S::CHUNKS; ++i) {
      int row, chunk;
      copy_coord(i, S::CHUNKS, row, chunk);
      const int off = base + S::A_BYTES + smem_offset(row, chunk, S::CHUNKS);
      std::memcpy(&smem[off], &values[(size_t(b) * bn + row) * bk + chunk * 8], 16);
      if (writes) for (int e = 0; e < 16; ++e) ++(*writes)[off + e];
    }
  };
  {  // a stage's copies write each of its bytes once
    std::vector<int> writes(S::SMEM_BYTES, 0);
    if (nnz) load_stage(1, 0, col[0], 0, &writes);
    for (int i = 0; nnz && i < S::SMEM_BYTES; ++i)
      if (writes[i] != (i / S::STAGE_BYTES == 1 ? 1 : 0)) return fail("stage coverage", i, writes[i]);
  }

  std::vector<int64_t> out(size_t(M) * N, INT64_MIN);
  long conflicts = 0;
  for (int mt = 0; mt < (M + BM - 1) / BM; ++mt)
    for (int r = 0; r < R; ++r) {
      const int m0 = mt * BM;
      const int64_t b0 = crow[r], nblocks = crow[r + 1] - b0;
      static int64_t acc[WARPS_M * WARPS_N][MI][S::NI][32][4];
      std::memset(acc, 0, sizeof(acc));
      std::fill(smem.begin(), smem.end(), 0xAB);  // stale bytes must never be read as data
      for (int s = 0; s < STAGES - 1; ++s)
        if (s < nblocks) load_stage(s, b0 + s, col[b0 + s], m0, nullptr);
      for (int64_t kt = 0; kt < nblocks; ++kt) {
        const int64_t next = kt + STAGES - 1;
        if (next < nblocks) load_stage(int(next % STAGES), b0 + next, col[b0 + next], m0, nullptr);
        const int a_tile = int(kt % STAGES) * S::STAGE_BYTES, b_tile = a_tile + S::A_BYTES;
        for (int warp = 0; warp < WARPS_M * WARPS_N; ++warp) {
          const int wm = warp / WARPS_N, wn = warp % WARPS_N;
          for (int kk = 0; kk < bk / 16; ++kk) {
            Regs4 a[MI][32];
            uint32_t b[S::NI][32][2];
            for (int i = 0; i < MI; ++i) {
              int addr[32];
              for (int lane = 0; lane < 32; ++lane) {
                int row, chunk;
                ldmatrix_a(lane, kk, row, chunk);
                addr[lane] = a_tile + smem_offset(wm * WM + i * 16 + row, chunk, S::CHUNKS);
              }
              conflicts += !conflict_free(addr);
              ldmatrix_x4(smem, addr, a[i]);
            }
            for (int j = 0; j < S::NI; j += 2) {
              int addr[32];
              for (int lane = 0; lane < 32; ++lane) {
                int row, chunk;
                ldmatrix_b(lane, kk, row, chunk);
                addr[lane] = b_tile + smem_offset(wn * S::WN + j * 8 + row, chunk, S::CHUNKS);
              }
              conflicts += !conflict_free(addr);
              Regs4 q[32];
              ldmatrix_x4(smem, addr, q);
              for (int lane = 0; lane < 32; ++lane) {
                b[j][lane][0] = q[lane].r[0], b[j][lane][1] = q[lane].r[1];
                b[j + 1][lane][0] = q[lane].r[2], b[j + 1][lane][1] = q[lane].r[3];
              }
            }
            for (int i = 0; i < MI; ++i)
              for (int j = 0; j < S::NI; ++j) mma(acc[warp][i][j], a[i], b[j]);
          }
        }
      }
      for (int warp = 0; warp < WARPS_M * WARPS_N; ++warp) {
        const int wm = warp / WARPS_N, wn = warp % WARPS_N;
        for (int i = 0; i < MI; ++i)
          for (int j = 0; j < S::NI; ++j)
            for (int lane = 0; lane < 32; ++lane)
              for (int c = 0; c < 4; ++c) {
                int rr, cc;
                acc_coord(lane, c, rr, cc);
                const int m = m0 + wm * WM + i * 16 + rr, n = r * bn + wn * S::WN + j * 8 + cc;
                if (m < M) {
                  if (out[size_t(m) * N + n] != INT64_MIN) return fail("written twice", m, n);
                  out[size_t(m) * N + n] = acc[warp][i][j][lane][c];
                }
              }
      }
    }
  if (conflicts) return fail("ldmatrix bank conflicts", conflicts);
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r)
      for (int nn = 0; nn < bn; ++nn) {
        int64_t ref = 0;
        for (int64_t b = crow[r]; b < crow[r + 1]; ++b)
          for (int kk = 0; kk < bk; ++kk)
            ref += int64_t(x[size_t(m) * K + col[b] * bk + kk]) * values[(size_t(b) * bn + nn) * bk + kk];
        const int n = r * bn + nn;
        if (out[size_t(m) * N + n] != ref) return fail("value", m, n, long(out[size_t(m) * N + n]), long(ref));
      }
  std::printf("ok M=%d N=%d K=%d block=%dx%d nnz=%ld\n", M, N, K, bn, bk, long(nnz));
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 7) return fail("usage: M N K bn bk density");
  const int M = std::atoi(argv[1]), N = std::atoi(argv[2]), K = std::atoi(argv[3]);
  const int bn = std::atoi(argv[4]), bk = std::atoi(argv[5]), d = std::atoi(argv[6]);
  if (bn == 32 && bk == 32) return run<32, 32>(M, N, K, d);
  if (bn == 32 && bk == 64) return run<32, 64>(M, N, K, d);
  if (bn == 64 && bk == 32) return run<64, 32>(M, N, K, d);
  if (bn == 64 && bk == 64) return run<64, 64>(M, N, K, d);
  return fail("block shape", bn, bk);
}
