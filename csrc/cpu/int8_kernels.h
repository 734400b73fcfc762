// int8 CPU micro-kernels, one set per ISA path (int8_avx512.cpp, int8_avx2.cpp, int8_scalar.cpp).
// Torch-free: each ISA file is compiled for its own target (#pragma GCC target) and must not
// share inline code with the rest of the library. Threading is the caller's (at::parallel_for):
// every kernel takes the row range [begin, end) it owns.
#pragma once
#include <cstdint>

#include "float_kind.h"

namespace greenops::cpu::int8 {

using cpu::FloatKind;

// Symmetric per-row quantization of rows [begin, end) of x (row-major, K per row):
//   scale = max(amax, kEps) / 127, q = clamp(round_half_even(x / scale), -127, 127).
// A row holding NaN or +-Inf gets scale = NaN and q = 0, so NaN reaches every output that uses
// it (documented in docs/kernels.md).
constexpr float kEps = 1e-12f;

// out[m, n] = sum_k a[m, k] * w[n, k] as int32 for n in [n_begin, n_end), all M rows.
// a [M, K], w [N, K] row-major; out [M, N] row-major.
struct DotArgs {
  const int8_t* a;
  const int8_t* w;
  int32_t* out;
  int64_t M, N, K;
};

// W8A16 kernels take at most this many rows; int8.cpp sends larger M to a tiled library GEMM.
// Measured (2-core Xeon, 4096x4096, fp32 x): M=32 6.1 ms vs 6.9 ms for fp32 matmul alone;
// M=64 12.2 ms vs 10.0 ms, where this FMA kernel runs at ~180 GFLOP/s, near the core's peak.
constexpr int64_t kWeightDotMaxRows = 32;

// out[m, n] = w_scale[n] * sum_k x[m, k] * w[n, k] + (bias ? bias[n] : 0), fp32 throughout.
struct WeightDotArgs {
  const float* x;
  const int8_t* w;
  const float* w_scale;
  const float* bias;  // may be null
  float* out;
  int64_t M, N, K;
};

// dequantize_rows: out[r, k] = float(w[r, k]) * scale[r], rounded to `kind` (nearest-even),
// for rows [begin, end) of row-major [rows, K] w and out (the large-M W8A16 path's tile).
#define GREENOPS_INT8_KERNELS(isa)                                                           \
  void quantize_rows_##isa(const void* x, FloatKind kind, int64_t K, int64_t begin,          \
                           int64_t end, int8_t* q, float* scale);                             \
  void dot_##isa(const DotArgs& args, int64_t n_begin, int64_t n_end);                       \
  void weight_dot_##isa(const WeightDotArgs& args, int64_t n_begin, int64_t n_end);          \
  void dequantize_rows_##isa(const int8_t* w, const float* scale, int64_t K, int64_t begin,  \
                             int64_t end, void* out, FloatKind kind);

GREENOPS_INT8_KERNELS(scalar)
#if defined(__x86_64__)
GREENOPS_INT8_KERNELS(avx2)
GREENOPS_INT8_KERNELS(avx512)
#endif
#undef GREENOPS_INT8_KERNELS

}  // namespace greenops::cpu::int8
