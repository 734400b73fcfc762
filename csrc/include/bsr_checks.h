// Argument checks of the block-sparse ops (C++ impls). They include the bounds of every index
// (O(nnz), always on: an index out of range would read out of bounds); sortedness and
// uniqueness of col_indices are checked on the Python side (BlockSparseWeight, bsr_mm's
// `validate`). Python twins: greenops/ops/bsr.py.
#pragma once
#include <ATen/ATen.h>

#include "checks.h"

namespace greenops {

inline bool is_block_size(int64_t b) { return b == 16 || b == 32 || b == 64 || b == 128; }

// Shapes and dtypes only (no device-to-host copy): values [nnz, bn, bk]; crow [R + 1], col
// [nnz] int64; K a multiple of bk. Returns R (block rows).
inline int64_t check_bsr_shapes(const char* op, const at::Tensor& values, const at::Tensor& crow,
                                const at::Tensor& col, int64_t K) {
  TORCH_CHECK_VALUE(values.dim() == 3, "greenops.", op, ": values must be 3-D [nnz, bn, bk], got shape ",
                    values.sizes());
  const int64_t nnz = values.size(0), bn = values.size(1), bk = values.size(2);
  TORCH_CHECK_VALUE(is_block_size(bn) && is_block_size(bk), "greenops.", op,
                    ": blocks must be 16, 32, 64 or 128 on each side, got (", bn, ", ", bk, ")");
  check_dtype(op, "crow_indices", crow, {at::kLong});
  check_dtype(op, "col_indices", col, {at::kLong});
  TORCH_CHECK_VALUE(crow.dim() == 1 && crow.numel() >= 1, "greenops.", op,
                    ": crow_indices must be 1-D [N/bn + 1], got shape ", crow.sizes());
  check_shape(op, "col_indices", col, {nnz}, "one block column per block of values");
  TORCH_CHECK_VALUE(K % bk == 0, "greenops.", op, ": K=", K, " is not a multiple of the block's bk=", bk);
  return crow.numel() - 1;
}

// The weight's K, where known from the transpose's metadata t_crow [K_w/bk + 1], against x's K:
// the forward alone cannot see a mismatch (column indices of a narrower weight are all in range).
inline void check_weight_k(const char* op, const std::optional<at::Tensor>& t_crow, int64_t K, int64_t bk) {
  if (!t_crow.has_value()) return;
  const int64_t C = t_crow->numel() - 1;
  TORCH_CHECK_VALUE(C * bk == K, "greenops.", op, ": x has K=", K, " but the weight has K=", C * bk, " (",
                    C, " block columns of bk=", bk, ", from t_crow's length ", t_crow->numel(), ")");
}

// check_bsr_shapes, and every index: crow monotone from 0 to nnz, col in [0, K / bk).
// Returns R (block rows).
inline int64_t check_bsr(const char* op, const at::Tensor& values, const at::Tensor& crow,
                         const at::Tensor& col, int64_t K) {
  const int64_t R = check_bsr_shapes(op, values, crow, col, K);
  const int64_t nnz = values.size(0), C = K / values.size(2);
  const at::Tensor cr = crow.cpu().contiguous(), cc = col.cpu().contiguous();
  const int64_t* p = cr.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(p[0] == 0 && p[R] == nnz, "greenops.", op, ": crow_indices must run from 0 to nnz=",
                    nnz, ", got ", p[0], " .. ", p[R]);
  for (int64_t r = 0; r < R; ++r) {
    TORCH_CHECK_VALUE(p[r] <= p[r + 1], "greenops.", op, ": crow_indices must not decrease (row ", r,
                      ": ", p[r], " > ", p[r + 1], ")");
  }
  const int64_t* c = cc.data_ptr<int64_t>();
  for (int64_t b = 0; b < nnz; ++b) {
    TORCH_CHECK_VALUE(c[b] >= 0 && c[b] < C, "greenops.", op, ": col_indices[", b, "] = ", c[b],
                      " is out of range for K/bk = ", C, " block columns");
  }
  return R;
}

}  // namespace greenops
