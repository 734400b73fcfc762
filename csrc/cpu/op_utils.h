// ATen-side helpers shared by the CPU op impls (int8.cpp, int4.cpp): dtype mapping, output
// shapes, and the split of output channels over threads.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/accumulate.h>

#include <algorithm>
#include <optional>
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

// A weight-only matmul over K = 0: every sum is empty, so out is the bias (or zeros) in x's
// dtype, as the kernels' epilogue would give it. (The kernels themselves assume K > 0.)
inline at::Tensor empty_k_result(const at::Tensor& x, int64_t N, const std::optional<at::Tensor>& bias) {
  const int64_t M = rows_of(x);
  at::Tensor out = bias.has_value() ? bias->to(x.scalar_type()).expand({M, N}).contiguous()
                                    : at::zeros({M, N}, x.options());
  return out.view(out_shape(x, N));
}

// Whether fp16 x must take fp32 tiles on the large-M path: `bound` holds an upper bound of
// |dequantized weight| per row or group, and a weight beyond fp16's range (65504) would turn
// into inf in an fp16 tile although the fp32 accumulator, and often the result, hold it.
inline bool beyond_half(const at::Tensor& x, const at::Tensor& bound) {
  return x.scalar_type() == at::kHalf && bound.numel() > 0 && bound.max().item<float>() > 65504.f;
}

// Large-M weight-only path shared by int8 and int4: x [M, K] (contiguous) @ W.T + bias in x's
// dtype, with W dequantized `tile_bytes` of rows at a time into a cache-resident tile of x's
// dtype (the rounding torch's own same-dtype matmul would see) and each tile handed to the
// library GEMM (AMX for bf16 here). dequant(n0, r0, r1, tile) fills rows [r0, r1) of the tile
// with weight rows n0 + r0 .. n0 + r1. The full float weight never exists. The callers pass
// fp16 x as fp32 where the weight is beyond fp16's range (beyond_half).
template <class Dequant>
at::Tensor tiled_dequant_gemm(const at::Tensor& xc, int64_t N, const std::optional<at::Tensor>& bias,
                              int64_t tile_bytes, const Dequant& dequant) {
  const int64_t M = xc.size(0), K = xc.size(1);
  at::Tensor out = at::empty({M, N}, xc.options());
  const int64_t tile_rows = std::max<int64_t>(16, tile_bytes / (std::max<int64_t>(K, 1) * xc.element_size()));
  at::Tensor tile = at::empty({std::min(N, tile_rows), K}, xc.options());
  const at::Tensor b = bias.has_value() ? bias->to(xc.scalar_type()) : at::Tensor();
  for (int64_t n0 = 0; n0 < N; n0 += tile_rows) {
    const int64_t rows = std::min(N - n0, tile_rows);
    at::Tensor t = tile.narrow(0, 0, rows);
    void* tp = t.data_ptr();
    at::parallel_for(0, rows, 8, [&](int64_t r0, int64_t r1) { dequant(n0, r0, r1, tp); });
    at::Tensor dst = out.narrow(1, n0, rows);
    if (b.defined()) {
      at::addmm_out(dst, b.narrow(0, n0, rows), xc, t.t());
    } else {
      at::mm_out(dst, xc, t.t());
    }
  }
  return out;
}

}  // namespace greenops
