// Host emulation of csrc/cuda/int8_mm.cu's sm_90a kernel (int8_mm_wgmma_kernel), built with g++
// by tests/test_cuda_host.py. It runs the kernel's loop (prologue, AHEAD tiles of copies in
// flight, the stage ring, 2 warpgroups of wgmma m64n256k32 by descriptor, wgmma.wait_group 1,
// the epilogue) for every block with the kernel's own layout functions (int8_mm_layout.h:
// smem_desc, acc_coord, smem_offset, copy_coord, tile_of), while the descriptors, the swizzle
// and the accumulator fragment behave as the PTX ISA documents them (ptx_model.h, written
// independently), and compares with a plain matmul.
//
// The asynchrony is emulated at its two worst cases, one run each:
//   late_reads  copies land when issued; a wgmma group reads shared memory only when the
//               wait that retires it returns (catches a stage overwritten while read)
//   late_writes a wgmma reads when issued; copies land only at the cp.async wait that
//               retires their group (catches a stage read before its copies landed)
// Also checks: each stage's copies write every shared byte of the stage once, every wgmma
// read stays inside its operand's tile, the aligned base leaves the stages inside the
// allocation, and the raster visits every tile once.
//
//   int8_wgmma_emulator M N K   -> prints "ok ..." and exits 0, or prints the first mismatch
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <random>
#include <vector>

#include "int8_mm_layout.h"
#include "ptx_model.h"

using namespace greenops::cuda;
namespace wg = greenops::cuda::int8_mm_wg;
using namespace ptx_model;

struct Copy {
  int dst;         // shared byte offset
  const int8_t* src;  // null: zeros (row or k past the end)
};

// The kernel's load_stage<BM, BN, BK, THREADS> for the wgmma tile, as a list of 16-byte copies.
static std::vector<Copy> stage_copies(int stage_base, const std::vector<int8_t>& A,
                                      const std::vector<int8_t>& W, int M, int N, int K, int m0,
                                      int n0, int k0) {
  std::vector<Copy> out;
  for (int t = 0; t < wg::THREADS; ++t) {
    for (int p = 0; p < wg::BM * wg::CHUNKS / wg::THREADS; ++p) {
      int row, chunk;
      mma_layout::copy_coord(t + wg::THREADS * p, wg::CHUNKS, row, chunk);
      const int k = k0 + chunk * 16, m = m0 + row;
      out.push_back({stage_base + mma_layout::smem_offset(row, chunk, wg::CHUNKS),
                     m < M && k < K ? &A[size_t(m) * K + k] : nullptr});
    }
    for (int p = 0; p < wg::BN * wg::CHUNKS / wg::THREADS; ++p) {
      int row, chunk;
      mma_layout::copy_coord(t + wg::THREADS * p, wg::CHUNKS, row, chunk);
      const int k = k0 + chunk * 16, n = n0 + row;
      out.push_back({stage_base + wg::A_BYTES + mma_layout::smem_offset(row, chunk, wg::CHUNKS),
                     n < N && k < K ? &W[size_t(n) * K + k] : nullptr});
    }
  }
  return out;
}

static void land(std::vector<uint8_t>& smem, const std::vector<Copy>& copies) {
  for (const Copy& c : copies)
    for (int b = 0; b < 16; ++b) smem[c.dst + b] = c.src ? uint8_t(c.src[b]) : 0;
}

struct Issued {  // one warpgroup's committed wgmma group: the descriptors of its K_STEPS
  int group;
  uint64_t a[wg::K_STEPS], b[wg::K_STEPS];
};

static int g_bad_read = 0;

// wgmma m64n256k32 s8 on shared memory as ptx_model reads it, into the warpgroup's 128 threads'
// accumulators at ptx_model's fragment coordinates. [lo, hi) bounds each operand's reads.
static void wgmma(std::vector<int32_t>& acc, const std::vector<uint8_t>& smem, uint64_t da,
                  uint64_t db, int a_lo, int a_hi, int b_lo, int b_hi) {
  const Desc a = decode(da), b = decode(db);
  int8_t Am[64][32], Bm[256][32];
  for (int r = 0; r < 64; ++r)
    for (int k = 0; k < 32; ++k) {
      const int addr = kmajor_addr(a, r, k);
      g_bad_read += addr < a_lo || addr >= a_hi;
      Am[r][k] = int8_t(smem[addr]);
    }
  for (int n = 0; n < 256; ++n)
    for (int k = 0; k < 32; ++k) {
      const int addr = kmajor_addr(b, n, k);
      g_bad_read += addr < b_lo || addr >= b_hi;
      Bm[n][k] = int8_t(smem[addr]);
    }
  for (int t = 0; t < 128; ++t)
    for (int r = 0; r < wg::ACC; ++r) {
      int row, col;
      wgmma_d(t, r, row, col);
      int32_t s = 0;
      for (int k = 0; k < 32; ++k) s += int32_t(Am[row][k]) * int32_t(Bm[col][k]);
      acc[size_t(t) * wg::ACC + r] += s;
    }
}

static int run(int M, int N, int K, bool late_reads, const std::vector<int8_t>& A,
               const std::vector<int8_t>& W) {
  const int raw = 16;  // the dynamic allocation's start: not on a swizzle atom
  const int base = (raw + wg::ALIGN - 1) & ~(wg::ALIGN - 1);
  if (base + wg::STAGES * wg::TILE_BYTES > raw + wg::SMEM_BYTES)
    return fail("aligned stages overrun the allocation", base, wg::SMEM_BYTES);
  const int window = raw + wg::SMEM_BYTES;
  const int tiles_m = (M + wg::BM - 1) / wg::BM, tiles_n = (N + wg::BN - 1) / wg::BN;
  std::vector<int> visits(size_t(tiles_m) * tiles_n, 0);
  std::vector<int32_t> out(size_t(M) * N, INT32_MIN);  // poisoned: every element must be written
  std::vector<uint8_t> smem(window);
  std::vector<int32_t> acc[wg::WARPGROUPS];
  for (int pid = 0; pid < tiles_m * tiles_n; ++pid) {
    int tm, tn;
    int8_mm_tile::tile_of(pid, tiles_m, tiles_n, tm, tn);
    if (tm < 0 || tm >= tiles_m || tn < 0 || tn >= tiles_n) return fail("raster range", pid, tm, tn);
    ++visits[size_t(tm) * tiles_n + tn];
    const int m0 = tm * wg::BM, n0 = tn * wg::BN;
    for (auto& a : acc) a.assign(size_t(128) * wg::ACC, 0);
    std::fill(smem.begin(), smem.end(), 0xAB);  // stale bytes must never be read as data
    std::deque<std::vector<Copy>> copies;       // committed cp.async groups, oldest first
    std::deque<Issued> running;                 // committed wgmma groups, oldest first
    auto commit = [&](std::vector<Copy> c) {
      if (late_reads) land(smem, c), c.clear();
      copies.push_back(std::move(c));
    };
    auto cp_wait = [&](size_t pending) {  // cp.async.wait_group: all but the newest `pending`
      while (copies.size() > pending) land(smem, copies.front()), copies.pop_front();
    };
    auto execute = [&](const Issued& is) {
      const int stage_lo = base, stage_hi = base + wg::STAGES * wg::TILE_BYTES;
      for (int kk = 0; kk < wg::K_STEPS; ++kk) {
        // the operand's tile: the stage holding the descriptor's start address
        const int s = (decode(is.a[kk]).start - base) / wg::TILE_BYTES;
        const int a_lo = base + s * wg::TILE_BYTES + is.group * 64 * wg::BK;
        const int b_lo = base + s * wg::TILE_BYTES + wg::A_BYTES;
        if (s < 0 || a_lo < stage_lo || b_lo >= stage_hi) return fail("descriptor outside the stages", s);
        wgmma(acc[is.group], smem, is.a[kk], is.b[kk], a_lo, a_lo + 64 * wg::BK, b_lo,
              b_lo + wg::BN * wg::BK);
      }
      return 0;
    };
    auto wg_wait = [&](size_t pending) {  // wgmma.wait_group, both warpgroups (same program)
      while (running.size() > pending * wg::WARPGROUPS) {
        if (execute(running.front())) return 1;
        running.pop_front();
      }
      return 0;
    };

    const int k_tiles = (K + wg::BK - 1) / wg::BK;
    for (int s = 0; s < wg::AHEAD; ++s)
      commit(s < k_tiles ? stage_copies(base + s * wg::TILE_BYTES, A, W, M, N, K, m0, n0, s * wg::BK)
                         : std::vector<Copy>{});
    for (int kt = 0; kt < k_tiles; ++kt) {
      cp_wait(wg::AHEAD - 1);  // + fence.proxy.async + __syncthreads
      const int next = kt + wg::AHEAD;
      commit(next < k_tiles ? stage_copies(base + (next % wg::STAGES) * wg::TILE_BYTES, A, W, M, N,
                                           K, m0, n0, next * wg::BK)
                            : std::vector<Copy>{});
      for (int group = 0; group < wg::WARPGROUPS; ++group) {
        const unsigned a_tile = base + (kt % wg::STAGES) * wg::TILE_BYTES + group * 64 * wg::BK;
        const unsigned w_tile = base + (kt % wg::STAGES) * wg::TILE_BYTES + wg::A_BYTES;
        Issued is{group, {}, {}};
        for (int kk = 0; kk < wg::K_STEPS; ++kk) {
          is.a[kk] = wg::smem_desc(a_tile + 32 * kk);
          is.b[kk] = wg::smem_desc(w_tile + 32 * kk);
        }
        if (late_reads) running.push_back(is);
        else if (execute(is)) return 1;
      }
      if (wg_wait(1)) return 1;
    }
    if (wg_wait(0)) return 1;
    cp_wait(0);
    for (int group = 0; group < wg::WARPGROUPS; ++group)
      for (int t = 0; t < 128; ++t)
        for (int r = 0; r < wg::ACC; ++r) {
          int row, col;
          wg::acc_coord(t, r, row, col);
          const int m = m0 + group * 64 + row, n = n0 + col;
          if (m < M && n < N) {
            if (out[size_t(m) * N + n] != INT32_MIN) return fail("element written twice", m, n);
            out[size_t(m) * N + n] = acc[group][size_t(t) * wg::ACC + r];
          }
        }
  }
  for (size_t i = 0; i < visits.size(); ++i)
    if (visits[i] != 1) return fail("raster visits", long(i), visits[i]);
  if (g_bad_read) return fail("wgmma read outside its operand's tile", g_bad_read);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      int32_t ref = 0;
      for (int k = 0; k < K; ++k) ref += int32_t(A[size_t(m) * K + k]) * int32_t(W[size_t(n) * K + k]);
      if (out[size_t(m) * N + n] != ref)
        return fail(late_reads ? "value (late reads)" : "value (late writes)", m, n,
                    out[size_t(m) * N + n], ref);
    }
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 4) return fail("usage: M N K");
  const int M = std::atoi(argv[1]), N = std::atoi(argv[2]), K = std::atoi(argv[3]);
  if (K % 16) return fail("K must be a multiple of 16", K);
  std::mt19937 rng(M * 7919 + N * 131 + K);
  std::uniform_int_distribution<int> dist(-128, 127);
  std::vector<int8_t> A(size_t(M) * K), W(size_t(N) * K);
  for (auto& v : A) v = int8_t(dist(rng));
  for (auto& v : W) v = int8_t(dist(rng));

  // Each stage's copies write every byte of the stage exactly once.
  {
    std::vector<int> writes(wg::STAGES * wg::TILE_BYTES, 0);
    for (const Copy& c : stage_copies(wg::TILE_BYTES, A, W, M, N, K, 0, 0, 0))
      for (int b = 0; b < 16; ++b) ++writes[c.dst + b];
    for (int i = 0; i < wg::STAGES * wg::TILE_BYTES; ++i)
      if (writes[i] != (i / wg::TILE_BYTES == 1 ? 1 : 0)) return fail("stage copy coverage", i, writes[i]);
  }
  if (run(M, N, K, true, A, W) || run(M, N, K, false, A, W)) return 1;
  std::printf("ok M=%d N=%d K=%d\n", M, N, K);
  return 0;
}
