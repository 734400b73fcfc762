// ATen-side helpers shared by the CPU op impls (int8.cpp, int4.cpp): dtype mapping, output
// shapes, and the split of output channels over threads.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/accumulate.h>

#include <algorithm>
#include <vector>

#include "float_kind.h"

namespace greenops {

inline cpu::FloatKind float_kind(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return cpu::FloatKind::F32;
    case at::kHalf: return cpu::FloatKind::F16;
    case at::kBFloat16: return cpu::FloatKind::BF16;
    default: TORCH_CHECK(false, "greenops: unsupported float dtype ", t);
  }
}

// Splits N into chunks of whole 4-row tiles, at least ~64K multiply-adds per chunk.
template <class F>
void parallel_over_n(int64_t N, int64_t macs_per_row, const F& f) {
  const int64_t tiles = (N + 3) / 4;
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, 4 * macs_per_row));
  at::parallel_for(0, tiles, grain, [&](int64_t b, int64_t e) { f(b * 4, std::min(e * 4, N)); });
}

// Rows of an activation [..., K] flattened to [M, K]; reshape({-1, K}) is ambiguous for K = 0.
inline int64_t rows_of(const at::Tensor& act) {
  return c10::multiply_integers(act.sizes().slice(0, act.dim() - 1));
}

inline std::vector<int64_t> out_shape(const at::Tensor& act, int64_t N) {
  std::vector<int64_t> s(act.sizes().begin(), act.sizes().end() - 1);
  s.push_back(N);
  return s;
}

}  // namespace greenops
