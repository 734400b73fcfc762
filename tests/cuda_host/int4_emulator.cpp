// Host emulation of csrc/cuda/int4_weight_mm.cu, built with g++ by tests/test_cuda_host.py:
// the kernel's grid (n-blocks x splits x m-blocks), warps, k-tile loop, word extraction and
// shared-memory reduction run with the kernel's own index functions (int4_layout.h,
// mma_layout.h), while mma.m16n8k16 behaves as the PTX ISA documents it (ptx_model.h). Weights,
// scales, zero points and x are small integers and powers of two, so the result is exact and
// compared for equality with a plain matmul of the dequantized weight.
//
//   int4_emulator run M N K group_size split symmetric  -> "ok ..." (exit 0) or the mismatch
//   int4_emulator prepack N K FILE                      -> FILE: the prepacked int32 words of
//                                                          q(n, k) = (7n + 3k + nk % 5) % 16
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "int4_layout.h"
#include "ptx_model.h"

using namespace greenops::cuda::int4_tile;
using namespace ptx_model;

static std::vector<uint32_t> prepack(const std::vector<uint8_t>& q, int N, int K) {
  const int k_tiles = K / TILE_K;
  std::vector<uint32_t> w(size_t(N) * K / 8, 0);
  std::vector<int> seen(size_t(N) * K, 0);
  for (int nt = 0; nt < N / TILE_N; ++nt)
    for (int kb = 0; kb < k_tiles; ++kb)
      for (int lane = 0; lane < LANES; ++lane)
        for (int j = 0; j < WORDS; ++j)
          for (int i = 0; i < 8; ++i) {
            int row, k;
            nibble_coord(lane, j, i, row, k);
            const size_t src = size_t(nt * TILE_N + row) * K + kb * TILE_K + k;
            ++seen[src];
            w[word_offset(nt, kb, k_tiles, lane, j)] |= uint32_t(q[src]) << (4 * i);
          }
  for (int v : seen)
    if (v != 1) {
      std::printf("FAIL prepack is not a bijection\n");
      std::exit(1);
    }
  return w;
}

int main(int argc, char** argv) {
  if (argc == 5 && std::string_view(argv[1]) == "prepack") {
    const int N = std::atoi(argv[2]), K = std::atoi(argv[3]);
    std::vector<uint8_t> q(size_t(N) * K);
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) q[size_t(n) * K + k] = (7 * n + 3 * k + (n * k) % 5) % 16;
    const auto w = prepack(q, N, K);
    FILE* f = std::fopen(argv[4], "wb");
    std::fwrite(w.data(), 4, w.size(), f);
    std::fclose(f);
    std::printf("ok %zu words\n", w.size());
    return 0;
  }
  if (argc != 8 || std::string_view(argv[1]) != "run") return fail("usage");
  const int M = std::atoi(argv[2]), N = std::atoi(argv[3]), K = std::atoi(argv[4]);
  const int gs = std::atoi(argv[5]), split = std::atoi(argv[6]), symmetric = std::atoi(argv[7]);
  if (N % TILE_N || K % TILE_K || gs % 32 || K % gs) return fail("shape", N, K);
  const int G = K / gs, k_tiles = K / TILE_K;
  std::mt19937 rng(M * 31 + N * 7 + K + gs);
  std::vector<uint8_t> q(size_t(N) * K);
  std::vector<double> s(size_t(N) * G), z(size_t(N) * G), x(size_t(M) * K), bias(N);
  for (auto& v : q) v = rng() % 16;
  for (auto& v : s) v = std::ldexp(1.0, -int(rng() % 4));
  for (auto& v : z) v = symmetric ? 8.0 : double(rng() % 16);
  for (auto& v : x) v = double(int(rng() % 7) - 3);
  for (auto& v : bias) v = double(int(rng() % 9) - 4);
  const auto w = prepack(q, N, K);

  std::vector<double> out(size_t(M) * N, NAN), partial(size_t(split) * M * N, NAN);
  const int n_blocks = (N / TILE_N + NT - 1) / NT, m_blocks = (M + BLOCK_M - 1) / BLOCK_M;
  for (int bx = 0; bx < n_blocks; ++bx)
    for (int by = 0; by < split; ++by)
      for (int bz = 0; bz < m_blocks; ++bz) {
        const int nt0 = bx * NT, m0 = bz * BLOCK_M;
        int kb0, kb1;
        split_range(by, split, k_tiles, kb0, kb1);
        static double red[WARPS][BLOCK_M][BLOCK_N];
        for (int warp = 0; warp < WARPS; ++warp) {
          static double acc[NT][LANES][4];
          std::memset(acc, 0, sizeof(acc));
          for (int kb = kb0 + warp; kb < kb1; kb += WARPS)
            for (int j = 0; j < WORDS; ++j)
              for (int h = 0; h < 2; ++h) {
                const int k0 = kb * TILE_K + 32 * j + 16 * h;
                // A fragments as the kernel loads them (a_coord; rows past M are zeros)
                double a[LANES][4][2];
                for (int lane = 0; lane < LANES; ++lane)
                  for (int r = 0; r < 4; ++r)
                    for (int hh = 0; hh < 2; ++hh) {
                      int row, k;
                      a_coord(lane, r, hh, row, k);
                      a[lane][r][hh] = m0 + row < M ? x[size_t(m0 + row) * K + k0 + k] : 0.0;
                    }
                for (int i = 0; i < NT; ++i) {
                  const int nt = nt0 + i;
                  double b[LANES][2][2];
                  for (int lane = 0; lane < LANES; ++lane) {
                    const int n = nt * TILE_N + (lane >> 2);
                    const uint32_t word = nt < N / TILE_N ? w[word_offset(nt, kb, k_tiles, lane, j)] : 0;
                    const size_t gi = size_t(n < N ? n : 0) * G + (kb * TILE_K + 32 * j) / gs;
                    for (int reg = 0; reg < 2; ++reg) {
                      int step, breg;
                      extraction_of(j, 2 * h + reg, step, breg);
                      if (step != 2 * j + h || breg != reg) return fail("extraction order", j, h);
                      const uint32_t pair = nibble_pair(word, 2 * h + reg);
                      b[lane][reg][0] = (double(pair & 0xf) - z[gi]) * s[gi];
                      b[lane][reg][1] = (double((pair >> 16) & 0xf) - z[gi]) * s[gi];
                    }
                  }
                  mma16(acc[i], a, b);  // ptx_model.h
                }
              }
          for (int i = 0; i < NT; ++i)
            for (int lane = 0; lane < LANES; ++lane)
              for (int c = 0; c < 4; ++c) {
                int r, col;
                acc_coord(lane, c, r, col);
                red[warp][r][i * TILE_N + col] = acc[i][lane][c];
              }
        }
        for (int idx = 0; idx < BLOCK_M * BLOCK_N; ++idx) {
          const int r = idx / BLOCK_N, c = idx % BLOCK_N, m = m0 + r, n = nt0 * TILE_N + c;
          if (m >= M || n >= N) continue;
          double v = 0;
          for (int wi = 0; wi < WARPS; ++wi) v += red[wi][r][c];
          if (split == 1) {
            if (!std::isnan(out[size_t(m) * N + n])) return fail("written twice", m, n);
            out[size_t(m) * N + n] = v + bias[n];
          } else {
            partial[(size_t(by) * M + m) * N + n] = v;
          }
        }
      }
  if (split > 1)  // reduce_split
    for (size_t idx = 0; idx < size_t(M) * N; ++idx) {
      double v = bias[idx % N];
      for (int sp = 0; sp < split; ++sp) v += partial[sp * size_t(M) * N + idx];
      out[idx] = v;
    }
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double ref = bias[n];
      for (int k = 0; k < K; ++k) {
        const size_t gi = size_t(n) * G + k / gs;
        ref += x[size_t(m) * K + k] * (double(q[size_t(n) * K + k]) - z[gi]) * s[gi];
      }
      if (out[size_t(m) * N + n] != ref) return fail("value", m, n, out[size_t(m) * N + n], ref);
    }
  std::printf("ok M=%d N=%d K=%d g=%d split=%d\n", M, N, K, gs, split);
  return 0;
}
