// bsr_mm forward on tensor cores (fp16/bf16, fp32 accumulation): out = x @ W^T + bias, W
// block-sparse. One CTA per (128-row tile of x, block row of W): it walks the row's nonzero
// blocks, each a K step of bk whose x tile is gathered at the block's column; a 3-stage cp.async
// ring into swizzled shared memory, ldmatrix, mma.m16n8k16; bias and the cast in the epilogue.
// Index math: bsr_layout.h (host-tested). No torch headers: the binding is bindings.cpp.
#include "bsr_layout.h"
#include "launchers.h"
#include "ptx.h"

namespace greenops::cuda {
namespace {

using namespace bsr_tile;
using namespace ptx;

// Stage: x rows m0.. at columns c*bk.., and block b of the values.
template <typename S, typename T>
__device__ __forceinline__ void load_stage(unsigned stage, const T* x, const T* values,
                                           int64_t b, int64_t c, int M, int K, int m0) {
  const int t = threadIdx.x;
#pragma unroll
  for (int p = 0; p < BM * S::CHUNKS / THREADS; ++p) {
    int row, chunk;
    copy_coord(t + THREADS * p, S::CHUNKS, row, chunk);
    const int m = m0 + row;
    const T* src = x + static_cast<size_t>(m < M ? m : 0) * K + c * S::bk + chunk * 8;
    cp_async16(stage + smem_offset(row, chunk, S::CHUNKS), src, m < M ? 16 : 0);
  }
  const T* blk = values + b * S::bn * S::bk;
  constexpr int kBlockCopies = S::bn * S::CHUNKS;  // fewer than THREADS for 32 x 32 blocks
#pragma unroll
  for (int i = t; i < kBlockCopies; i += THREADS) {
    int row, chunk;
    copy_coord(i, S::CHUNKS, row, chunk);
    cp_async16(stage + S::A_BYTES + smem_offset(row, chunk, S::CHUNKS),
               blk + row * S::bk + chunk * 8, 16);
  }
}

template <typename S, typename T>
__global__ void __launch_bounds__(THREADS)
    bsr_mm_kernel(const T* __restrict__ x, const T* __restrict__ values,
                  const int64_t* __restrict__ crow, const int64_t* __restrict__ col,
                  const float* __restrict__ bias, T* __restrict__ out, int M, int N, int K) {
  extern __shared__ __align__(128) unsigned char smem[];
  const unsigned base = smem_addr(smem);
  const int m0 = blockIdx.x * BM, r = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  const int64_t b0 = crow[r], nblocks = crow[r + 1] - b0;

  float acc[MI][S::NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < S::NI; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < nblocks) load_stage<S>(base + s * S::STAGE_BYTES, x, values, b0 + s, col[b0 + s], M, K, m0);
    cp_async_commit();
  }
  for (int64_t kt = 0; kt < nblocks; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    const int64_t next = kt + STAGES - 1;
    if (next < nblocks)
      load_stage<S>(base + (next % STAGES) * S::STAGE_BYTES, x, values, b0 + next, col[b0 + next],
                    M, K, m0);
    cp_async_commit();
    const unsigned a_tile = base + (kt % STAGES) * S::STAGE_BYTES, b_tile = a_tile + S::A_BYTES;
#pragma unroll
    for (int kk = 0; kk < S::bk / 16; ++kk) {
      unsigned a[MI][4], b[S::NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        int row, chunk;
        ldmatrix_a(lane, kk, row, chunk);
        ldmatrix_x4(a[i], a_tile + smem_offset(wm * WM + i * 16 + row, chunk, S::CHUNKS));
      }
#pragma unroll
      for (int j = 0; j < S::NI; j += 2) {
        int row, chunk;
        ldmatrix_b(lane, kk, row, chunk);
        unsigned q[4];
        ldmatrix_x4(q, b_tile + smem_offset(wn * S::WN + j * 8 + row, chunk, S::CHUNKS));
        b[j][0] = q[0], b[j][1] = q[1], b[j + 1][0] = q[2], b[j + 1][1] = q[3];
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < S::NI; ++j) mma_16<T>(acc[i][j], a[i], b[j][0], b[j][1]);
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < S::NI; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        int rr, cc;
        acc_coord(lane, c, rr, cc);
        const int m = m0 + wm * WM + i * 16 + rr, n = r * S::bn + wn * S::WN + j * 8 + cc;
        if (m < M) {
          const float v = acc[i][j][c] + (bias != nullptr ? bias[n] : 0.f);
          out[static_cast<size_t>(m) * N + n] = cast_out(v, out);
        }
      }
}

template <int BN_, int BK_, typename T>
cudaError_t launch(const void* x, const void* values, const int64_t* crow, const int64_t* col,
                   const float* bias, void* out, int M, int N, int K, cudaStream_t stream) {
  using S = Shape<BN_, BK_>;
  auto kernel = bsr_mm_kernel<S, T>;
  cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::SMEM_BYTES);
  if (e != cudaSuccess) return e;
  const dim3 grid((M + BM - 1) / BM, N / BN_);
  kernel<<<grid, THREADS, S::SMEM_BYTES, stream>>>(static_cast<const T*>(x),
                                                   static_cast<const T*>(values), crow, col, bias,
                                                   static_cast<T*>(out), M, N, K);
  return cudaGetLastError();
}

template <typename T>
cudaError_t by_shape(int bn, int bk, const void* x, const void* values, const int64_t* crow,
                     const int64_t* col, const float* bias, void* out, int M, int N, int K,
                     cudaStream_t s) {
  if (bn == 32 && bk == 32) return launch<32, 32, T>(x, values, crow, col, bias, out, M, N, K, s);
  if (bn == 32 && bk == 64) return launch<32, 64, T>(x, values, crow, col, bias, out, M, N, K, s);
  if (bn == 64 && bk == 32) return launch<64, 32, T>(x, values, crow, col, bias, out, M, N, K, s);
  if (bn == 64 && bk == 64) return launch<64, 64, T>(x, values, crow, col, bias, out, M, N, K, s);
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t bsr_mm(const void* x, const void* values, const int64_t* crow, const int64_t* col,
                   const float* bias, void* out, HalfKind kind, int M, int N, int K, int bn, int bk,
                   cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  return kind == HalfKind::f16
             ? by_shape<__half>(bn, bk, x, values, crow, col, bias, out, M, N, K, stream)
             : by_shape<__nv_bfloat16>(bn, bk, x, values, crow, col, bias, out, M, N, K, stream);
}

}  // namespace greenops::cuda
