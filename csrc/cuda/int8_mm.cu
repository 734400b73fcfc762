// int8_mm on tensor cores: out = cast(float(A @ W^T) * a_scale[m] * w_scale[n] + bias[n]).
// A [M, K] and W [N, K] int8, both K-contiguous (the "TN" layout mma.sync's row.col wants).
// Two kernels sharing the loads and the epilogue: int8_mm_kernel, mma.sync.m16n8k32 s8 x s8 ->
// s32 (sm_80+) from a STAGES-deep cp.async pipeline into swizzled shared memory through ldmatrix;
// int8_mm_wgmma_kernel, Hopper's wgmma (sm_90a builds), reading the same swizzled layout by
// descriptor. Scales + bias + cast fused in the epilogue. Index math: int8_mm_layout.h
// (host-tested). No torch headers: the binding is bindings.cpp.
#include <atomic>

#include "int8_mm_layout.h"
#include "launchers.h"
#include "ptx.h"

namespace greenops::cuda {
namespace {

using namespace int8_mm_tile;
using namespace ptx;

// One stage of a TBM x TBN tile pair: the A tile (TBM rows from m0) and the W tile (TBN rows
// from n0), k bytes k0..+TBK, rows of TBK / 16 swizzled 16-byte chunks, A's then W's.
template <int TBM, int TBN, int TBK, int TTHREADS>
__device__ __forceinline__ void load_stage(unsigned stage, const int8_t* A, const int8_t* W,
                                           int M, int N, int K, int m0, int n0, int k0) {
  constexpr int chunks = TBK / 16;
  const int t = threadIdx.x;
#pragma unroll
  for (int p = 0; p < TBM * chunks / TTHREADS; ++p) {
    int row, chunk;
    copy_coord(t + TTHREADS * p, chunks, row, chunk);
    const int k = k0 + chunk * 16, m = m0 + row;
    const bool ok = m < M && k < K;  // K % 16 == 0: a chunk is all in or all out
    cp_async16(stage + smem_offset(row, chunk, chunks), ok ? A + (size_t)m * K + k : A, ok ? 16 : 0);
  }
#pragma unroll
  for (int p = 0; p < TBN * chunks / TTHREADS; ++p) {
    int row, chunk;
    copy_coord(t + TTHREADS * p, chunks, row, chunk);
    const int k = k0 + chunk * 16, n = n0 + row;
    const bool ok = n < N && k < K;
    cp_async16(stage + TBM * TBK + smem_offset(row, chunk, chunks), ok ? W + (size_t)n * K + k : W,
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
    if (s < k_tiles)
      load_stage<BM, BN, BK, THREADS>(base + s * TILE_BYTES, A, W, M, N, K, m0, n0, s * BK);
    cp_async_commit();  // empty groups keep the wait count uniform
  }
  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<STAGES - 2>();  // stage kt has landed (for this thread's copies) ...
    __syncthreads();              // ... and for everyone's; stage kt-1 is free again
    const int next = kt + STAGES - 1;
    if (next < k_tiles)
      load_stage<BM, BN, BK, THREADS>(base + (next % STAGES) * TILE_BYTES, A, W, M, N, K, m0, n0,
                                      next * BK);
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

namespace wg = int8_mm_wg;

// The sm_90a kernel: the same loads, the multiply on wgmma (int8_mm_layout.h's int8_mm_wg).
// Every thread both copies and multiplies (no producer warps, no mbarriers): a k tile is
// waited for with cp.async.wait_group + a barrier, a stage freed by wgmma.wait_group 1.
template <typename Out>
__global__ void __launch_bounds__(wg::THREADS, 1)
    int8_mm_wgmma_kernel(const int8_t* __restrict__ A, const float* __restrict__ a_scale,
                         const int8_t* __restrict__ W, const float* __restrict__ w_scale,
                         const float* __restrict__ bias, Out* __restrict__ out, int M, int N,
                         int K) {
#if defined(GREENOPS_WGMMA)
  extern __shared__ __align__(wg::ALIGN) unsigned char smem_wg[];  // own name: own alignment
  const unsigned base = (smem_addr(smem_wg) + wg::ALIGN - 1) & ~unsigned(wg::ALIGN - 1);
  const int tiles_m = (M + wg::BM - 1) / wg::BM, tiles_n = (N + wg::BN - 1) / wg::BN;
  int tm, tn;
  tile_of(blockIdx.x, tiles_m, tiles_n, tm, tn);
  const int m0 = tm * wg::BM, n0 = tn * wg::BN;
  const int group = threadIdx.x >> 7, t = threadIdx.x & 127;  // warpgroup, thread in it

  int acc[wg::ACC];
#pragma unroll
  for (int r = 0; r < wg::ACC; ++r) acc[r] = 0;

  const int k_tiles = (K + wg::BK - 1) / wg::BK;
#pragma unroll
  for (int s = 0; s < wg::AHEAD; ++s) {
    if (s < k_tiles)
      load_stage<wg::BM, wg::BN, wg::BK, wg::THREADS>(base + s * wg::TILE_BYTES, A, W, M, N, K,
                                                      m0, n0, s * wg::BK);
    cp_async_commit();
  }
  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<wg::AHEAD - 1>();  // tile kt has landed (this thread's copies) ...
    fence_proxy_async();             // ... where wgmma's proxy sees it ...
    __syncthreads();  // ... for everyone's; and both warpgroups' wgmma(kt - 2) are done
    const int next = kt + wg::AHEAD;
    if (next < k_tiles)  // into the stage wgmma(kt - 2) read: free
      load_stage<wg::BM, wg::BN, wg::BK, wg::THREADS>(base + (next % wg::STAGES) * wg::TILE_BYTES,
                                                      A, W, M, N, K, m0, n0, next * wg::BK);
    cp_async_commit();
    const unsigned a_tile = base + (kt % wg::STAGES) * wg::TILE_BYTES + group * 64 * wg::BK;
    const unsigned w_tile = base + (kt % wg::STAGES) * wg::TILE_BYTES + wg::A_BYTES;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < wg::K_STEPS; ++kk)
      wgmma_s8_m64n256k32(acc, wg::smem_desc(a_tile + 32 * kk), wg::smem_desc(w_tile + 32 * kk));
    wgmma_commit();
    wgmma_wait<1>();  // wgmma(kt - 1) done: its stage is free after the next barrier
  }
  wgmma_wait<0>();
#pragma unroll
  for (int r = 0; r < wg::ACC; ++r) fence_operand(acc[r]);
  cp_async_wait<0>();

  // Epilogue: scales, bias and the cast, straight from the accumulators.
#pragma unroll
  for (int r = 0; r < wg::ACC; ++r) {
    int row, col;
    wg::acc_coord(t, r, row, col);
    const int m = m0 + group * 64 + row, n = n0 + col;
    if (m < M && n < N) {
      float v = static_cast<float>(acc[r]) * a_scale[m] * w_scale[n];
      if (bias != nullptr) v += bias[n];
      out[(size_t)m * N + n] = cast_out(v, out);
    }
  }
#else
  __trap();  // built for another target: int8_mm_wgmma_ready() keeps launches away
#endif
}

// 1 where this device runs the sm_90a build of these kernels (a Hopper GPU and a build for
// compute_90a), read once per device by int8_mm_wgmma_ready().
__device__ int wgmma_built;
__global__ void wgmma_probe() {
#if defined(GREENOPS_WGMMA)
  wgmma_built = 1;
#else
  wgmma_built = 0;
#endif
}

template <typename Out>
cudaError_t launch(Int8Kernel kernel, const int8_t* a_q, const float* a_scale, const int8_t* w_q,
                   const float* w_scale, const float* bias, void* out, int M, int N, int K,
                   cudaStream_t stream) {
  const bool on_wgmma = kernel == Int8Kernel::wgmma;
  auto fn = on_wgmma ? int8_mm_wgmma_kernel<Out> : int8_mm_kernel<Out>;
  const int smem = on_wgmma ? wg::SMEM_BYTES : SMEM_BYTES;
  cudaError_t e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  const int bm = on_wgmma ? wg::BM : BM, bn = on_wgmma ? wg::BN : BN;
  const int tiles = ((M + bm - 1) / bm) * ((N + bn - 1) / bn);
  fn<<<tiles, on_wgmma ? wg::THREADS : THREADS, smem, stream>>>(a_q, a_scale, w_q, w_scale, bias,
                                                               static_cast<Out*>(out), M, N, K);
  return cudaGetLastError();
}

}  // namespace

bool int8_mm_wgmma_ready(cudaStream_t stream) {
  static std::atomic<int> ready[kMaxDevices];  // 0 unknown, 1 no, 2 yes
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device >= kMaxDevices) return false;
  const int known = ready[device].load();
  if (known) return known == 2;
  // the probe synchronizes, which a stream being captured into a CUDA graph forbids: say no
  // for now (mma.sync serves) and ask on a later, uncaptured call
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess ||
      capture != cudaStreamCaptureStatusNone)
    return false;
  int built = 0;
  wgmma_probe<<<1, 1, 0, stream>>>();
  if (cudaGetLastError() != cudaSuccess ||  // e.g. no code for this device: not ready
      cudaMemcpyFromSymbolAsync(&built, wgmma_built, sizeof built, 0, cudaMemcpyDeviceToHost,
                                stream) != cudaSuccess ||
      cudaStreamSynchronize(stream) != cudaSuccess)
    built = 0;
  ready[device].store(built ? 2 : 1);
  return built;
}

cudaError_t int8_mm(const int8_t* a_q, const float* a_scale, const int8_t* w_q,
                    const float* w_scale, const float* bias, void* out, OutKind out_kind,
                    int M, int N, int K, Int8Kernel kernel, cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  switch (out_kind) {
    case OutKind::f32:
      return launch<float>(kernel, a_q, a_scale, w_q, w_scale, bias, out, M, N, K, stream);
    case OutKind::f16:
      return launch<__half>(kernel, a_q, a_scale, w_q, w_scale, bias, out, M, N, K, stream);
    case OutKind::bf16:
      return launch<__nv_bfloat16>(kernel, a_q, a_scale, w_q, w_scale, bias, out, M, N, K, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace greenops::cuda
