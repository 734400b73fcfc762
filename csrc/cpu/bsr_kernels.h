// Block-sparse (BSR) CPU micro-kernels, fp32. Torch-free; one instantiation per ISA path
// (bsr_avx512.cpp compiled for AVX-512, bsr_scalar.cpp portable) of the same templates
// (bsr_tile.h). Threading is the caller's.
//
// W [N, K] in blocks (bn, bk): crow [N/bn + 1], col [nnz], values [nnz, bn, bk] row-major.
// Transposed metadata (for dX = dY @ W): t_crow [K/bk + 1] over column blocks, t_block[j] and
// t_row[j] the block index and block row of the j-th block in column order.
#pragma once
#include <cstdint>

namespace greenops::cpu::bsr {

struct Dims {
  int64_t M, N, K, bn, bk;
};

// out[m, r*bn + i] = bias + sum over blocks b of row r: sum_k x[m, c_b*bk + k] * V_b[i, k],
// for block rows [r_begin, r_end). vt: values transposed per block ([nnz, bk, bn]).
struct ForwardArgs {
  const float* x;  // [M, K]
  const float* vt;  // [nnz, bk, bn]
  const int64_t* crow;
  const int64_t* col;
  const float* bias;  // [N] or null
  float* out;  // [M, N]
  Dims d;
};

// dx[m, c*bk + k] = sum over blocks b of column c: sum_i dy[m, r_b*bn + i] * V_b[i, k],
// for column blocks [c_begin, c_end).
struct BackwardXArgs {
  const float* dy;  // [M, N]
  const float* values;  // [nnz, bn, bk]
  const int64_t* t_crow;
  const int64_t* t_block;
  const int64_t* t_row;
  float* dx;  // [M, K]
  Dims d;
};

// dv[b, i, k] = sum_m dy[m, r_b*bn + i] * x[m, c_b*bk + k] for blocks [b_begin, b_end).
struct SddmmArgs {
  const float* dyt;  // dy transposed: [N, M]
  const float* x;  // [M, K]
  const int64_t* row;  // block row of each block
  const int64_t* col;
  float* dv;  // [nnz, bn, bk]
  Dims d;
};

#define GREENOPS_BSR_KERNELS(isa)                                              \
  void forward_##isa(const ForwardArgs& a, int64_t r_begin, int64_t r_end);    \
  void backward_x_##isa(const BackwardXArgs& a, int64_t c_begin, int64_t c_end); \
  void sddmm_##isa(const SddmmArgs& a, int64_t b_begin, int64_t b_end);

GREENOPS_BSR_KERNELS(scalar)
#if defined(__x86_64__)
GREENOPS_BSR_KERNELS(avx512)
#endif
#undef GREENOPS_BSR_KERNELS

}  // namespace greenops::cpu::bsr
