// ATen side of the AMX GEMM (amx_gemm.h) and of the packed copies of x that the CPU kernels
// take (bsr.cpp, int8.cpp, int4.cpp).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

#include "amx_gemm.h"

namespace greenops {

// Per-thread scratch of at least n floats (below), valid until the thread's next call.
float* scratch(int64_t n);

// bf16 or int8 x [M, K] (contiguous, K * esz a multiple of 4) -> the AMX tiles' B layout, in
// the calling thread's scratch.
const uint8_t* pack_amx(const at::Tensor& x, int64_t mp, cpu::amx::Transpose16Fn tr);

// Whether the AMX GEMM can take K elements of `esz` bytes (whole 64-byte tile rows) on this path.
bool amx_gemm_fits(int64_t K, int64_t esz);

// Whether fp32 activations may be rounded to bf16 for the weight-only matmuls: the user's opt-in
// for torch's own fp32 matmuls on CPU (torch.set_float32_matmul_precision("medium") or
// torch.backends.mkldnn.matmul.fp32_precision = "bf16"); docs/kernels.md.
bool fp32_matmul_as_bf16();

// The activation a weight-only matmul gives the AMX GEMM, or an undefined tensor where it stays
// on the other kernels: bf16 x (fp32 x where fp32_matmul_as_bf16()) of more than min_rows rows
// with K a whole number of tile rows. x2 [M, K].
at::Tensor amx_activation(const at::Tensor& x2, int64_t min_rows);

// x2 [M, K] bf16 or int8 (contiguous) against an [N, K] weight: in place (`w`, int8) or from
// `fill` (amx_gemm.h), scaled and biased by the epilogue; out [M, N] in out_dtype (fp32 or bf16
// straight from the kernel, fp16 through fp32).
at::Tensor amx_matmul(const at::Tensor& x2, int64_t N, const int8_t* w, cpu::amx::FillFn fill, const void* ctx,
                      const float* xs, const float* ws, const float* bias, at::ScalarType out_dtype);

}  // namespace greenops
