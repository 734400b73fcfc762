// int8_mm on tensor cores: out = cast(float(A @ W^T) * a_scale[m] * w_scale[n] + bias[n]).
// A [M, K] and W [N, K] int8, both K-contiguous (the "TN" layout mma.sync's row.col wants).
// mma.sync.m16n8k32 s8 x s8 -> s32 (sm_80+), a STAGES-deep cp.async pipeline into swizzled
// shared memory, ldmatrix to fragments, scales + bias + cast fused in the epilogue. Index math:
// int8_mm_layout.h (host-tested). No torch headers: the binding is bindings.cpp.
#include "int8_mm_layout.h"
#include "launchers.h"
#include "ptx.h"

namespace greenops::cuda {
namespace {

using namespace int8_mm_tile;
using namespace ptx;

// One stage: the A tile (BM rows from m0) and the W tile (BN rows from n0), k bytes k0..+BK.
__device__ __forceinline__ void load_stage(unsigned stage, const int8_t* A, const int8_t* W,
                                           int M, int N, int K, int m0, int n0, int k0) {
  const int t = threadIdx.x;
#pragma unroll
  for (int p = 0; p < BM * CHUNKS / THREADS; ++p) {
    int row, chunk;
    copy_coord(t + THREADS * p, CHUNKS, row, chunk);
    const int k = k0 + chunk * 16, m = m0 + row;
    const bool ok = m < M && k < K;  // K % 16 == 0: a chunk is all in or all out
    cp_async16(stage + smem_offset(row, chunk, CHUNKS), ok ? A + (size_t)m * K + k : A, ok ? 16 : 0);
  }
#pragma unroll
  for (int p = 0; p < BN * CHUNKS / THREADS; ++p) {
    int row, chunk;
    copy_coord(t + THREADS * p, CHUNKS, row, chunk);
    const int k = k0 + chunk * 16, n = n0 + row;
    const bool ok = n < N && k < K;
    cp_async16(stage + BM * BK + smem_offset(row, chunk, CHUNKS), ok ? W + (size_t)n * K + k : W,
               ok ? 16 : 0);
  }
}

template <typename Out>
__global__ void __launch_bounds__(THREADS)
    int8_mm_kernel(const int8_t* __restrict__ A, const float* __restrict__ a_scale,
                   const int8_t* __restrict__ W, const float* __restrict__ w_scale,
                   const float* __restrict__ bias, Out* __restrict__ out, int M, int N, int K) {
  extern __shared__ __align__(128) unsigned char smem[];
  const unsigned base = smem_addr(smem);
  const int tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
  int tm, tn;
  tile_of(blockIdx.x, tiles_m, tiles_n, tm, tn);
  const int m0 = tm * BM, n0 = tn * BN;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;  // this warp's 64 x 32 sub-tile

  int acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][j][c] = 0;

  const int k_tiles = (K + BK - 1) / BK;
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < k_tiles) load_stage(base + s * TILE_BYTES, A, W, M, N, K, m0, n0, s * BK);
    cp_async_commit();  // empty groups keep the wait count uniform
  }
  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<STAGES - 2>();  // stage kt has landed (for this thread's copies) ...
    __syncthreads();              // ... and for everyone's; stage kt-1 is free again
    const int next = kt + STAGES - 1;
    if (next < k_tiles)
      load_stage(base + (next % STAGES) * TILE_BYTES, A, W, M, N, K, m0, n0, next * BK);
    cp_async_commit();
    const unsigned a_tile = base + (kt % STAGES) * TILE_BYTES, w_tile = a_tile + BM * BK;
#pragma unroll
    for (int kk = 0; kk < BK / 32; ++kk) {
      unsigned a[MI][4], b[NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        int row, chunk;
        ldmatrix_a(lane, kk, row, chunk);
        ldmatrix_x4(a[i], a_tile + smem_offset(wm * WM + i * 16 + row, chunk, CHUNKS));
      }
#pragma unroll
      for (int j = 0; j < NI; j += 2) {
        int row, chunk;
        ldmatrix_b(lane, kk, row, chunk);
        unsigned r[4];
        ldmatrix_x4(r, w_tile + smem_offset(wn * WN + j * 8 + row, chunk, CHUNKS));
        b[j][0] = r[0], b[j][1] = r[1], b[j + 1][0] = r[2], b[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) mma_s8(acc[i][j], a[i], b[j][0], b[j][1]);
    }
  }
  cp_async_wait<0>();

  // Epilogue: scales, bias and the cast, straight from the accumulators.
#pragma unroll
  for (int i = 0; i < MI; ++i) {
#pragma unroll
    for (int j = 0; j < NI; ++j) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        int r, col;
        acc_coord(lane, c, r, col);
        const int m = m0 + wm * WM + i * 16 + r, n = n0 + wn * WN + j * 8 + col;
        if (m < M && n < N) {
          float v = static_cast<float>(acc[i][j][c]) * a_scale[m] * w_scale[n];
          if (bias != nullptr) v += bias[n];
          out[(size_t)m * N + n] = cast_out(v, out);
        }
      }
    }
  }
}

template <typename Out>
cudaError_t launch(const int8_t* a_q, const float* a_scale, const int8_t* w_q,
                   const float* w_scale, const float* bias, void* out, int M, int N, int K,
                   cudaStream_t stream) {
  auto kernel = int8_mm_kernel<Out>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       SMEM_BYTES);
  if (e != cudaSuccess) return e;
  const int tiles = ((M + BM - 1) / BM) * ((N + BN - 1) / BN);
  kernel<<<tiles, THREADS, SMEM_BYTES, stream>>>(a_q, a_scale, w_q, w_scale, bias,
                                                 static_cast<Out*>(out), M, N, K);
  return cudaGetLastError();
}

}  // namespace

cudaError_t int8_mm(const int8_t* a_q, const float* a_scale, const int8_t* w_q,
                    const float* w_scale, const float* bias, void* out, OutKind out_kind,
                    int M, int N, int K, cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  switch (out_kind) {
    case OutKind::f32:
      return launch<float>(a_q, a_scale, w_q, w_scale, bias, out, M, N, K, stream);
    case OutKind::f16:
      return launch<__half>(a_q, a_scale, w_q, w_scale, bias, out, M, N, K, stream);
    case OutKind::bf16:
      return launch<__nv_bfloat16>(a_q, a_scale, w_q, w_scale, bias, out, M, N, K, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace greenops::cuda
