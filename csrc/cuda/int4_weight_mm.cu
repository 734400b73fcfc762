// int4_weight_mm (W4A16) for small M on tensor cores: weights streamed once from the prepacked
// layout (int4_layout.h: one coalesced 16-byte load per lane per 8 x 128 tile), nibbles turned
// into fp16/bf16 in registers by bit tricks (OR an exponent, subtract: q exactly), group
// scales and zero points applied with one fma per pair, mma.sync.m16n8k16 with fp32
// accumulation; four warps split a block's K range and reduce in shared memory, and a split-K
// grid (fp32 partials + a reduce kernel) keeps every SM streaming at M = 1. No torch headers.
#include "int4_layout.h"
#include "launchers.h"
#include "ptx.h"

namespace greenops::cuda {
namespace {

using namespace int4_tile;
using namespace ptx;

template <typename T>
struct Half2Of;
template <>
struct Half2Of<__half> {
  using type = __half2;
  static constexpr uint32_t kMagic = 0x64006400u;  // fp16 1024 in each half: 1024 + q exact
  static __device__ __forceinline__ type offset() { return __float2half2_rn(1024.f); }
  static __device__ __forceinline__ type pair(float v) { return __float2half2_rn(v); }
};
template <>
struct Half2Of<__nv_bfloat16> {
  using type = __nv_bfloat162;
  static constexpr uint32_t kMagic = 0x43004300u;  // bf16 128 in each half: 128 + q exact
  static __device__ __forceinline__ type offset() { return __float2bfloat162_rn(128.f); }
  static __device__ __forceinline__ type pair(float v) { return __float2bfloat162_rn(v); }
};

// (q - z) * s for the q pair of one extraction: q exact by the exponent trick, then one fma
// with zs = -z * s.
template <typename T>
__device__ __forceinline__ uint32_t dequant(uint32_t q_pair, typename Half2Of<T>::type s,
                                            typename Half2Of<T>::type zs) {
  using H = Half2Of<T>;
  uint32_t bits = q_pair | H::kMagic;
  typename H::type v = *reinterpret_cast<typename H::type*>(&bits);
  v = __hfma2(__hsub2(v, H::offset()), s, zs);
  return *reinterpret_cast<uint32_t*>(&v);
}

// Weights are read once: skip L1 (no reuse) and keep the loads in flight.
__device__ __forceinline__ uint4 load_stream(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ uint32_t word_of(const uint4& v, int j) {
  return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;  // j is a constant after unrolling
}

template <typename T>
__global__ void __launch_bounds__(WARPS * 32)
    int4_weight_mm_kernel(const T* __restrict__ x, const uint4* __restrict__ w,
                   const float* __restrict__ scales, const float* __restrict__ zeros,
                   const float* __restrict__ bias, T* __restrict__ out,
                   float* __restrict__ partial, int M, int N, int K, int group_size, int split) {
  using H = Half2Of<T>;
  __shared__ float red[WARPS][BLOCK_M][BLOCK_N];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int k_tiles = K / TILE_K, n_tiles = N / TILE_N, groups = K / group_size;
  const int nt0 = blockIdx.x * NT, m0 = blockIdx.z * BLOCK_M;
  int kb0, kb1;
  split_range(blockIdx.y, split, k_tiles, kb0, kb1);

  // This lane's A fragment elements: register r is the pair at a_coord(lane, r, 0) of each
  // 16 x 16 step (rows past M read as zeros).
  const T* xa[4];
  bool live[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    int row, k;
    a_coord(lane, r, 0, row, k);
    live[r] = m0 + row < M;
    xa[r] = x + static_cast<size_t>(live[r] ? m0 + row : 0) * K + k;
  }

  float acc[NT][4];
#pragma unroll
  for (int i = 0; i < NT; ++i)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[i][c] = 0.f;

  uint4 cur[NT], nxt[NT];
  auto load_tiles = [&](int kb, uint4 (&dst)[NT]) {
#pragma unroll
    for (int i = 0; i < NT; ++i)
      dst[i] = nt0 + i < n_tiles
                   ? load_stream(w + word_offset(nt0 + i, kb, k_tiles, lane, 0) / 4)
                   : make_uint4(0, 0, 0, 0);
  };
  int kb = kb0 + warp;
  if (kb < kb1) load_tiles(kb, cur);
  for (; kb < kb1; kb += WARPS) {
    if (kb + WARPS < kb1) load_tiles(kb + WARPS, nxt);  // next tiles in flight during the math
#pragma unroll
    for (int j = 0; j < WORDS; ++j) {
      // steps 2j and 2j+1 share a group (group_size % 32 == 0): one scale per n-tile row
      const int k32 = kb * TILE_K + 32 * j;
      typename H::type s2[NT], zs2[NT];
#pragma unroll
      for (int i = 0; i < NT; ++i) {
        const int n = (nt0 + i) * TILE_N + g;
        const size_t gi = static_cast<size_t>(n < N ? n : 0) * groups + k32 / group_size;
        const float s = scales[gi], z = zeros != nullptr ? zeros[gi] : 8.f;
        s2[i] = H::pair(s);
        zs2[i] = H::pair(-z * s);
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int k0 = k32 + 16 * h;
        uint32_t a[4];
#pragma unroll
        for (int r = 0; r < 4; ++r)
          a[r] = live[r] ? *reinterpret_cast<const uint32_t*>(xa[r] + k0) : 0u;
#pragma unroll
        for (int i = 0; i < NT; ++i) {
          const uint32_t word = word_of(cur[i], j);
          // extractions 2h, 2h+1 of word j: step 2j + h, B registers 0 and 1 (extraction_of)
          const uint32_t b0 = dequant<T>(nibble_pair(word, 2 * h), s2[i], zs2[i]);
          const uint32_t b1 = dequant<T>(nibble_pair(word, 2 * h + 1), s2[i], zs2[i]);
          mma_16<T>(acc[i], a, b0, b1);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < NT; ++i) cur[i] = nxt[i];
  }

  // The four warps' partial sums (each a different k range) meet in shared memory.
#pragma unroll
  for (int i = 0; i < NT; ++i)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      int r, col;
      acc_coord(lane, c, r, col);
      red[warp][r][i * TILE_N + col] = acc[i][c];
    }
  __syncthreads();
  for (int idx = threadIdx.x; idx < BLOCK_M * BLOCK_N; idx += WARPS * 32) {
    const int r = idx / BLOCK_N, c = idx % BLOCK_N;
    const int m = m0 + r, n = nt0 * TILE_N + c;
    if (m >= M || n >= N) continue;
    float v = 0.f;
#pragma unroll
    for (int wi = 0; wi < WARPS; ++wi) v += red[wi][r][c];
    if (split == 1) {
      if (bias != nullptr) v += bias[n];
      out[static_cast<size_t>(m) * N + n] = cast_out(v, out);
    } else {
      partial[(static_cast<size_t>(blockIdx.y) * M + m) * N + n] = v;
    }
  }
}

template <typename T>
__global__ void reduce_split(const float* __restrict__ partial, const float* __restrict__ bias,
                             T* __restrict__ out, int M, int N, int split) {
  const size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t total = static_cast<size_t>(M) * N;
  if (idx >= total) return;
  float v = bias != nullptr ? bias[idx % N] : 0.f;
  for (int s = 0; s < split; ++s) v += partial[s * total + idx];
  out[idx] = cast_out(v, out);
}

template <typename T>
cudaError_t launch(const void* x, const void* w, const float* scales, const float* zeros,
                   const float* bias, void* out, float* partial, int M, int N, int K,
                   int group_size, int split, cudaStream_t stream) {
  const dim3 grid((N / TILE_N + NT - 1) / NT, split, (M + BLOCK_M - 1) / BLOCK_M);
  int4_weight_mm_kernel<T><<<grid, WARPS * 32, 0, stream>>>(
      static_cast<const T*>(x), static_cast<const uint4*>(w), scales, zeros, bias,
      static_cast<T*>(out), partial, M, N, K, group_size, split);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess || split == 1) return e;
  const size_t total = static_cast<size_t>(M) * N;
  reduce_split<T><<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(
      partial, bias, static_cast<T*>(out), M, N, split);
  return cudaGetLastError();
}

}  // namespace

int int4_weight_mm_split(int M, int N, int K, int sms) {
  const int n_blocks = (N / TILE_N + NT - 1) / NT, m_blocks = (M + BLOCK_M - 1) / BLOCK_M;
  return choose_split(n_blocks, m_blocks, K / TILE_K, sms);
}

cudaError_t int4_weight_mm(const void* x, const void* w, const float* scales, const float* zeros,
                           const float* bias, void* out, float* partial, HalfKind x_kind, int M,
                           int N, int K, int group_size, int split, cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  if (N % TILE_N || K % TILE_K || K == 0 || group_size % 32 || split < 1 ||
      (split > 1 && partial == nullptr))
    return cudaErrorInvalidValue;
  return x_kind == HalfKind::f16
             ? launch<__half>(x, w, scales, zeros, bias, out, partial, M, N, K, group_size, split,
                              stream)
             : launch<__nv_bfloat16>(x, w, scales, zeros, bias, out, partial, M, N, K,
                                     group_size, split, stream);
}

}  // namespace greenops::cuda
