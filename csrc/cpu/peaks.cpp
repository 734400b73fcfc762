// The CPU's arithmetic ceilings for the benchmarks (greenops.bench.core.ceilings): register-resident
// loops of one instruction per path, with enough independent accumulators to hide its latency,
// on every thread at once. Each loop is compiled for its own target and run only where the CPU
// (and, for AMX tiles, the OS) allows it.
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu_features.h"
#include "amx_tiles.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace greenops::cpu {
namespace {

#if defined(__x86_64__)
// 12 independent chains of one instruction (its latency is at most ~6 cycles at 2 a cycle) in
// named registers: an array of accumulators went through the stack every iteration (a third of
// the FMA rate). The empty asm makes every result "used" each iteration. Returns the operations
// (multiply-adds x 2) done.
#define GREENOPS_PEAK_LOOP(T, zero, step, c, ops_per_instr)                                               \
  T a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero, a6 = zero, a7 = zero, a8 = zero,   \
    a9 = zero, a10 = zero, a11 = zero;                                                                    \
  for (int64_t i = 0; i < iters; ++i) {                                                                   \
    a0 = step(a0), a1 = step(a1), a2 = step(a2), a3 = step(a3), a4 = step(a4), a5 = step(a5);             \
    a6 = step(a6), a7 = step(a7), a8 = step(a8), a9 = step(a9), a10 = step(a10), a11 = step(a11);         \
    asm volatile("" : "+" c(a0), "+" c(a1), "+" c(a2), "+" c(a3), "+" c(a4), "+" c(a5), "+" c(a6),        \
                 "+" c(a7), "+" c(a8), "+" c(a9), "+" c(a10), "+" c(a11));                                \
  }                                                                                                       \
  return 12.0 * double(iters) * (ops_per_instr)

__attribute__((target("avx2,fma"))) double fma_avx2(int64_t iters) {
  const __m256 x = _mm256_set1_ps(1e-9f);
#define GREENOPS_STEP(v) _mm256_fmadd_ps(x, x, v)
  GREENOPS_PEAK_LOOP(__m256, _mm256_setzero_ps(), GREENOPS_STEP, "x", 16);
#undef GREENOPS_STEP
}

__attribute__((target("avx512f"))) double fma_avx512(int64_t iters) {
  const __m512 x = _mm512_set1_ps(1e-9f);
#define GREENOPS_STEP(v) _mm512_fmadd_ps(x, x, v)
  GREENOPS_PEAK_LOOP(__m512, _mm512_setzero_ps(), GREENOPS_STEP, "v", 32);
#undef GREENOPS_STEP
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) double vnni_avx512(int64_t iters) {
  const __m512i x = _mm512_set1_epi8(1);
#define GREENOPS_STEP(v) _mm512_dpbusd_epi32(v, x, x)
  GREENOPS_PEAK_LOOP(__m512i, _mm512_setzero_si512(), GREENOPS_STEP, "v", 128);
#undef GREENOPS_STEP
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) double bf16dot_avx512(int64_t iters) {
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3c00);
#define GREENOPS_STEP(v) _mm512_dpbf16_ps(v, x, x)
  GREENOPS_PEAK_LOOP(__m512, _mm512_setzero_ps(), GREENOPS_STEP, "v", 64);
#undef GREENOPS_STEP
}
#undef GREENOPS_PEAK_LOOP

// 2 x 2 tiles, as the GEMM (amx_gemm.cpp) runs them.
template <bool kInt8>
__attribute__((target("amx-tile,amx-int8,amx-bf16"))) double amx(int64_t iters) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  // GCC does not see ldtilecfg read the struct and dropped these stores (an all-zero config,
  // #GP): the empty asm "reads" it.
  asm volatile("" ::"m"(cfg));
  _tile_loadconfig(&cfg);
  alignas(64) static const uint8_t zeros[1024] = {};
  _tile_loadd(4, zeros, 64);
  _tile_loadd(5, zeros, 64);
  _tile_loadd(6, zeros, 64);
  _tile_loadd(7, zeros, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t i = 0; i < iters; ++i) {
    if constexpr (kInt8) {
      _tile_dpbssd(0, 4, 6);
      _tile_dpbssd(1, 4, 7);
      _tile_dpbssd(2, 5, 6);
      _tile_dpbssd(3, 5, 7);
    } else {
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_release();
  return 4.0 * iters * 16 * 16 * (kInt8 ? 64 : 32) * 2;
}
#endif

using Loop = double (*)(int64_t);

Loop loop_for(const std::string& kind) {
#if defined(__x86_64__)
  const Isa isa = detected_isa();
  __builtin_cpu_init();
  if (kind == "fma") {
    if (__builtin_cpu_supports("avx512f")) return fma_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return fma_avx2;
  } else if (kind == "vnni") {
    if (isa >= Isa::Avx512Vnni) return vnni_avx512;
  } else if (kind == "bf16dot") {
    if (__builtin_cpu_supports("avx512bf16")) return bf16dot_avx512;
  } else if (kind == "amx_bf16") {
    if (isa == Isa::Avx512Amx) return amx<false>;
  } else if (kind == "amx_int8") {
    if (isa == Isa::Avx512Amx) return amx<true>;
  } else {
    throw std::invalid_argument("greenops: unknown peak '" + kind +
                                "' (expected fma, vnni, bf16dot, amx_bf16 or amx_int8)");
  }
#else
  (void)kind;
#endif
  return nullptr;
}

}  // namespace

// GOP/s of `kind` on all threads together over about `seconds`, or a negative number where this
// CPU has no such instruction.
double peak_gops(const std::string& kind, double seconds) {
  const Loop loop = loop_for(kind);
  if (!loop) return -1.0;
  const int64_t threads = at::get_num_threads();
  // Calibrate the iterations on one thread, then run all threads at once.
  int64_t iters = 1 << 14;
  double ops = 0, dt = 0;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    ops = loop(iters);
    dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt > seconds / 8 || iters > (int64_t(1) << 40)) break;
    iters *= 4;
  }
  iters = std::max<int64_t>(1, int64_t(iters * (seconds / std::max(dt, 1e-9))));
  std::vector<double> done(threads, 0.0);
  const auto t0 = std::chrono::steady_clock::now();
  at::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) done[t] = loop(iters);
  });
  dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0;
  for (double d : done) total += d;
  return total / dt / 1e9;
}

}  // namespace greenops::cpu
