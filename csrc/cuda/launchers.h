// Launchers of the CUDA C++ kernels: raw pointers, sizes and a stream, no torch. The torch
// binding (bindings.cpp) checks the tensors and calls these on the current stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace greenops::cuda {

enum class OutKind : int { f32 = 0, f16 = 1, bf16 = 2 };

// out[M, N] = cast(float(a_q[M, K] @ w_q[N, K]^T) * a_scale[m] * w_scale[n] + bias[n]).
// Row-major, contiguous; K % 16 == 0 and a_q, w_q 16-byte aligned (cp.async reads 16 bytes);
// bias fp32 or null. Returns the launch's error (cudaSuccess when M, N or K is 0: out is
// then zeros + bias, written by the kernel, except M or N == 0: nothing to write).
cudaError_t int8_mm(const int8_t* a_q, const float* a_scale, const int8_t* w_q,
                    const float* w_scale, const float* bias, void* out, OutKind out_kind,
                    int M, int N, int K, cudaStream_t stream);

}  // namespace greenops::cuda
