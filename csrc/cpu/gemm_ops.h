// ATen side of the panel GEMMs (panels.h: AMX tiles, or AVX-512 dot products without AMX) and
// of the packed copies of x that the CPU kernels take (bsr.cpp, int8.cpp, int4.cpp).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

#include "panels.h"

namespace greenops {

// Per-thread scratch of at least n floats (below), valid until the thread's next call.
float* scratch(int64_t n);

// bf16 or int8 x [M, K] (contiguous, K * esz a multiple of 4) -> the AMX tiles' B layout, in
// the calling thread's scratch.
const uint8_t* pack_amx(const at::Tensor& x, int64_t mp, cpu::Transpose16Fn tr);

// Whether a panel GEMM can take K elements of `esz` bytes (2: bf16, 1: int8) on this ISA path:
// AMX tiles, else vdpbf16ps (Avx512Bf16) or vpdpbusd (Avx512Vnni); K in whole 64-byte rows.
bool panel_gemm_fits(int64_t K, int64_t esz);

// Whether panel_matmul runs on AMX tiles (else on the dot-product GEMM).
bool amx_active();

// Whether fp32 activations may be rounded to bf16 for the weight-only matmuls: the user's opt-in
// for torch's own fp32 matmuls on CPU (torch.set_float32_matmul_precision("medium") or
// torch.backends.mkldnn.matmul.fp32_precision = "bf16"); docs/kernels.md.
bool fp32_matmul_as_bf16();

// The activation a weight-only matmul gives the panel GEMM, or an undefined tensor where it stays
// on the other kernels: bf16 x (fp32 x where fp32_matmul_as_bf16()) of more than min_rows rows
// with K a whole number of 64-byte rows. x2 [M, K].
at::Tensor bf16_activation(const at::Tensor& x2, int64_t min_rows);

// x2 [M, K] bf16 or int8 (contiguous) against an [N, K] weight: in place (`w`, int8) or from
// `fill` (panels.h), scaled and biased by the epilogue; out [M, N] in out_dtype (fp32 or bf16
// straight from the kernel, fp16 through fp32). Where panel_gemm_fits.
at::Tensor panel_matmul(const at::Tensor& x2, int64_t N, const int8_t* w, cpu::FillFn fill, const void* ctx,
                        const float* xs, const float* ws, const float* bias, at::ScalarType out_dtype);

}  // namespace greenops
