// Launchers of the CUDA C++ kernels: raw pointers, sizes and a stream, no torch. The torch
// binding (bindings.cpp) checks the tensors and calls these on the current stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace greenops::cuda {

enum class OutKind : int { f32 = 0, f16 = 1, bf16 = 2 };
// int8_mm's two kernels: mma.sync (sm_80+) and wgmma (sm_90a builds on Hopper only)
enum class Int8Kernel : int { mma = 0, wgmma = 1 };
constexpr int kMaxDevices = 64;

// out[M, N] = cast(float(a_q[M, K] @ w_q[N, K]^T) * a_scale[m] * w_scale[n] + bias[n]).
// Row-major, contiguous; K % 16 == 0 and a_q, w_q 16-byte aligned (cp.async reads 16 bytes);
// bias fp32 or null. Returns the launch's error (cudaSuccess when M, N or K is 0: out is
// then zeros + bias, written by the kernel, except M or N == 0: nothing to write).
cudaError_t int8_mm(const int8_t* a_q, const float* a_scale, const int8_t* w_q,
                    const float* w_scale, const float* bias, void* out, OutKind out_kind,
                    int M, int N, int K, Int8Kernel kernel, cudaStream_t stream);

// Whether the current device runs the wgmma kernel: a Hopper GPU and a build with sm_90a code.
// Asks the device once (a one-thread probe kernel on `stream`, then a sync), then remembers;
// false without asking while `stream` is being captured into a CUDA graph.
bool int8_mm_wgmma_ready(cudaStream_t stream);

}  // namespace greenops::cuda

namespace greenops::cuda {

enum class HalfKind : int { f16 = 1, bf16 = 2 };

// out[M, N] = x[M, K] @ dequant(W)^T + bias, W int4 group-wise in the prepacked layout of
// int4_layout.h (greenops.ops.int4.prepack_cuda): w[n, k] = (q - zeros[n, k/g]) * scales[n,
// k/g], zeros null = symmetric (8). x, out fp16 or bf16 (x_kind); scales, zeros, bias fp32.
// N % 8 == 0, K % 128 == 0, group_size % 32 == 0. partial: fp32 [split, M, N] workspace when
// split > 1 (else unused). Returns the launch's error.
cudaError_t int4_weight_mm(const void* x, const void* w, const float* scales, const float* zeros,
                           const float* bias, void* out, float* partial, HalfKind x_kind, int M,
                           int N, int K, int group_size, int split, cudaStream_t stream);

// The split int4_weight_mm picks for this shape on a device with `sms` multiprocessors.
int int4_weight_mm_split(int M, int N, int K, int sms);

}  // namespace greenops::cuda

namespace greenops::cuda {

// out[M, N] = x[M, K] @ W^T + bias with W block-sparse (BSR: crow [N/bn + 1], col [nnz]
// int64, values [nnz, bn, bk]); x, values, out fp16 or bf16 (kind), bias fp32 or null.
// (bn, bk) in {32, 64}^2; x rows and values 16-byte aligned (K % 8 == 0). Returns the launch's
// error, cudaErrorInvalidValue for a block shape it is not built for.
cudaError_t bsr_mm(const void* x, const void* values, const int64_t* crow, const int64_t* col,
                   const float* bias, void* out, HalfKind kind, int M, int N, int K, int bn, int bk,
                   cudaStream_t stream);

}  // namespace greenops::cuda
