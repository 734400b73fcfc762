// The PTX ISA's ldmatrix and mma fragment layouts, written from the ISA manual for the host
// emulators of the CUDA kernels (independently of the kernels' own index math, which is what
// the emulators check), plus the checks they share.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <set>
#include <vector>

namespace ptx_model {

inline int fail(const char* what, long a = 0, long b = 0, double c = 0, double d = 0) {
  std::printf("FAIL %s (%ld, %ld, %g, %g)\n", what, a, b, c, d);
  return 1;
}

struct Regs4 {
  uint32_t r[4];
};

// ldmatrix.sync.aligned.m8n8.x4.b16: lanes 8j..8j+7 give the row addresses of matrix j; lane t
// receives, in register j, row t/4 of matrix j, 16-bit columns 2(t%4) and 2(t%4)+1 (bytes
// 4(t%4) .. 4(t%4)+3 of the 16-byte row).
inline void ldmatrix_x4(const std::vector<uint8_t>& smem, const int (&addr)[32], Regs4 (&out)[32]) {
  for (int t = 0; t < 32; ++t)
    for (int j = 0; j < 4; ++j) std::memcpy(&out[t].r[j], &smem[addr[8 * j + t / 4] + 4 * (t % 4)], 4);
}

// Each ldmatrix matrix is 8 rows of 16 bytes, one shared-memory wavefront when the 8 rows fall
// in 8 different 16-byte bank groups.
inline bool conflict_free(const int (&addr)[32]) {
  for (int j = 0; j < 4; ++j) {
    std::set<int> groups;
    for (int r = 0; r < 8; ++r) groups.insert((addr[8 * j + r] % 128) / 16);
    if (groups.size() != 8) return false;
  }
  return true;
}

// Fragments ("Matrix Fragments for mma.m16n8k16 / mma.m16n8k32"); g = lane / 4, q = lane % 4.
// m16n8k16 (16-bit elements, h = half of a 32-bit register):
//   A reg r: row g + 8 (r % 2), k 2q + h + 8 (r / 2);   B reg r: k 2q + h + 8 r, n g
inline void a16(int lane, int r, int h, int& row, int& k) {
  row = lane / 4 + 8 * (r % 2);
  k = 2 * (lane % 4) + h + 8 * (r / 2);
}
inline void b16(int lane, int r, int h, int& k, int& n) {
  k = 2 * (lane % 4) + h + 8 * r;
  n = lane / 4;
}
// m16n8k32 (8-bit elements, i = byte 0..15 of the 4 A registers, 0..7 of the 2 B registers):
//   A: row g + 8 ((i / 4) % 2), k 4q + i % 4 + 16 (i / 8);   B: k 4q + i % 4 + 16 (i / 4), n g
inline void a8(int lane, int i, int& row, int& k) {
  row = lane / 4 + 8 * ((i / 4) % 2);
  k = 4 * (lane % 4) + i % 4 + 16 * (i / 8);
}
inline void b8(int lane, int i, int& k, int& n) {
  k = 4 * (lane % 4) + i % 4 + 16 * (i / 4);
  n = lane / 4;
}
// C (both shapes): c[i] at row g + 8 (i / 2), col 2q + i % 2.
inline void c_at(int lane, int i, int& row, int& col) {
  row = lane / 4 + 8 * (i / 2);
  col = 2 * (lane % 4) + i % 2;
}

// c += A @ B for one m16n8k16 tile, elements given per lane as values (any arithmetic type).
template <typename T, typename Acc>
void mma16(Acc (&c)[32][4], const T (&a)[32][4][2], const T (&b)[32][2][2]) {
  T A[16][16], B[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    for (int r = 0; r < 4; ++r)
      for (int h = 0; h < 2; ++h) {
        int row, k;
        a16(lane, r, h, row, k);
        A[row][k] = a[lane][r][h];
      }
    for (int r = 0; r < 2; ++r)
      for (int h = 0; h < 2; ++h) {
        int k, n;
        b16(lane, r, h, k, n);
        B[k][n] = b[lane][r][h];
      }
  }
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) {
      int row, col;
      c_at(lane, i, row, col);
      Acc s = 0;
      for (int k = 0; k < 16; ++k) s += Acc(A[row][k]) * Acc(B[k][col]);
      c[lane][i] += s;
    }
}

// wgmma ("Asynchronous Warpgroup Level Matrix Shared Memory Layout", "Matrix Descriptor"):
// a 64-bit descriptor holds the start address >> 4 (bits 0-13), the leading dimension byte
// offset >> 4 (16-29), the stride dimension byte offset >> 4 (32-45) and the swizzle mode
// (62-63: 0 none, 1 128-byte, 2 64-byte, 3 32-byte).
struct Desc {
  int start, lbo, sbo, mode;
};
inline Desc decode(uint64_t d) {
  return {int(d & 0x3FFF) << 4, int((d >> 16) & 0x3FFF) << 4, int((d >> 32) & 0x3FFF) << 4,
          int(d >> 62)};
}
// Shared address of byte `kb` of row `row` of a K-major operand. Unswizzled: 8 x 16-byte core
// matrices, rows 16 bytes apart, LBO to the next core matrix along K, SBO to the next 8 rows.
// Swizzled (width 128/64/32 bytes): 8-row atoms whose rows are `width` bytes apart, SBO to the
// next atom, K within the row (kb < width); the address's 16-byte chunk bits (4..) are then
// XOR-ed with its bits 7.. (as many bits as the width has chunks), which is why atoms sit on
// multiples of 8 * width.
inline int kmajor_addr(const Desc& d, int row, int kb) {
  if (d.mode == 0) return d.start + (row / 8) * d.sbo + (kb / 16) * d.lbo + (row % 8) * 16 + kb % 16;
  const int width = d.mode == 1 ? 128 : d.mode == 2 ? 64 : 32;
  const int a = d.start + (row / 8) * d.sbo + (row % 8) * width + kb;
  return a ^ (((a >> 7) & (width / 16 - 1)) << 4);
}
// wgmma D fragment (m64nN, 32-bit accumulators): thread t of the warpgroup holds N / 2 values;
// value r sits at row 16 (t / 32) + (t % 32) / 4 + 8 ((r % 4) / 2), column 8 (r / 4) +
// 2 (t % 4) + r % 2.
inline void wgmma_d(int t, int r, int& row, int& col) {
  row = 16 * (t / 32) + (t % 32) / 4 + 8 * ((r % 4) / 2);
  col = 8 * (r / 4) + 2 * (t % 4) + r % 2;
}

}  // namespace ptx_model
