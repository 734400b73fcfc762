// ATen side of the panel GEMMs and the packed copies of x (gemm_ops.h).
#include "gemm_ops.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "amx_gemm.h"
#include "bsr_kernels.h"
#include "cpu_features.h"
#include "dot_gemm.h"

namespace greenops {

// Scratch for the per-call packed copy of x / dy (floats, or bytes for the packed-int8 and AMX
// layouts: one call uses one packed copy): kept per thread and reused while large enough, so
// that each call does not fault in fresh pages (an mmap'ed 4 MB buffer per call).
// 2 MiB-aligned and, on Linux, backed by huge pages where the kernel allows (THP "madvise"
// here): the kernels jump between blocks' strips all over it, and with 4 KiB pages the TLB
// misses cost 5-6% (M = 256, 4096^2, 32x32 blocks, 50% and 90% sparsity, single-threaded A/B).
float* scratch(int64_t n) {
  struct Buffer {
    float* p = nullptr;
    int64_t n = 0;
    ~Buffer() { std::free(p); }
  };
  thread_local Buffer buf;
  if (buf.n < n) {
    constexpr size_t kHuge = size_t(1) << 21;
    const size_t bytes = (size_t(n) * sizeof(float) + kHuge - 1) / kHuge * kHuge;
    std::free(buf.p);
    buf.p = static_cast<float*>(std::aligned_alloc(kHuge, bytes));
    TORCH_CHECK(buf.p, "greenops: out of memory for a ", bytes, "-byte scratch buffer");
    buf.n = int64_t(bytes / sizeof(float));
#if defined(__linux__)
    madvise(buf.p, bytes, MADV_HUGEPAGE);  // advice only: ignored where THP is off
#endif
  }
  return buf.p;
}

// bf16 or int8 x [M, K] -> the AMX tiles' B layout (amx_gemm.h, bsr's PackedArgs), mp (a
// multiple of 16) rows, those past M zero. A group of 16 rows is a transpose of 4-byte words
// (lane r of row i -> word i of packed row r): 16 x 16 words at a time in registers, the bits
// moved as they are.
const uint8_t* pack_amx(const at::Tensor& x, int64_t mp, cpu::Transpose16Fn tr) {
  const int64_t M = x.size(0), row_bytes = x.size(1) * x.element_size(), lanes = row_bytes / 4;
  const uint8_t* src = static_cast<const uint8_t*>(x.data_ptr());
  uint8_t* dst = reinterpret_cast<uint8_t*>(scratch(mp * lanes));
  at::parallel_for(0, mp / 16, 1, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      uint8_t* d = dst + g * lanes * 64;
      int64_t r0 = 0;
      if (g * 16 + 16 <= M)
        for (; r0 + 16 <= lanes; r0 += 16)
          tr(reinterpret_cast<const float*>(src + g * 16 * row_bytes) + r0, lanes,
             reinterpret_cast<float*>(d + r0 * 64), 16);
      for (int64_t i = 0; i < 16; ++i) {  // lanes left, and the rows of a group past M
        const int64_t m = g * 16 + i;
        for (int64_t r = r0; r < lanes; ++r) {
          uint32_t v = 0;
          if (m < M) std::memcpy(&v, src + m * row_bytes + r * 4, 4);
          std::memcpy(d + r * 64 + i * 4, &v, 4);
        }
      }
    }
  });
  return dst;
}

bool amx_active() {
#if defined(__x86_64__)
  return cpu::active_isa() == cpu::Isa::Avx512Amx;
#else
  return false;
#endif
}

bool panel_gemm_fits(int64_t K, int64_t esz) {
#if defined(__x86_64__)
  const cpu::Isa need = esz == 1 ? cpu::Isa::Avx512Vnni : cpu::Isa::Avx512Bf16;
  return cpu::active_isa() >= need && K > 0 && (K * esz) % 64 == 0;
#else
  (void)K, (void)esz;
  return false;
#endif
}

bool fp32_matmul_as_bf16() {
  return at::globalContext().float32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL) ==
         at::Float32Precision::BF16;
}

at::Tensor bf16_activation(const at::Tensor& x2, int64_t min_rows) {
  const at::ScalarType t = x2.scalar_type();
  if (x2.size(0) <= min_rows || !panel_gemm_fits(x2.size(1), 2)) return {};
  if (t == at::kBFloat16) return x2.contiguous();
  if (t == at::kFloat && fp32_matmul_as_bf16()) return x2.to(at::kBFloat16).contiguous();
  return {};
}

at::Tensor panel_matmul(const at::Tensor& x2, int64_t N, const int8_t* w, cpu::FillFn fill, const void* ctx,
                        const float* xs, const float* ws, const float* bias, at::ScalarType out_dtype) {
  const int64_t M = x2.size(0), K = x2.size(1), esz = x2.element_size(), Kb = K * esz;
  const bool bf16_out = out_dtype == at::kBFloat16;
  at::Tensor out = at::empty({M, N}, x2.options().dtype(bf16_out ? at::kBFloat16 : at::kFloat));
#if defined(__x86_64__)
  namespace dot = cpu::dot;
  const bool amx = amx_active();
  const int64_t mp = amx ? (M + 15) / 16 * 16 : dot::packed_rows(M);
  const uint8_t* xp;
  if (amx) {
    xp = pack_amx(x2, mp, cpu::bsr::transpose16_avx512);
  } else {
    uint8_t* dst = reinterpret_cast<uint8_t*>(scratch((mp * Kb + 3) / 4));
    const uint8_t* src = static_cast<const uint8_t*>(x2.data_ptr());
    at::parallel_for(0, mp / dot::kRows, 1,
                     [&](int64_t g0, int64_t g1) { dot::pack(src, M, Kb, esz == 1, dst, g0, g1); });
    xp = dst;
  }
  const cpu::GemmArgs args{xp, M, mp, N, K, esz == 1, reinterpret_cast<const uint8_t*>(w), fill, ctx, xs, ws, bias,
                           bf16_out ? nullptr : out.data_ptr<float>(),
                           bf16_out ? static_cast<uint16_t*>(out.data_ptr()) : nullptr, cpu::bsr::transpose16_avx512};
  // Per-thread scratch for the panels (a weight-only panel is filled there; amx_gemm.h).
  const int64_t per_thread = ((amx ? cpu::kPanelRows * (Kb + 64) : dot::scratch_bytes(K, esz)) + 63) / 64 * 64;
  const int64_t threads = at::get_num_threads();
  at::Tensor panels = at::empty({threads * per_thread + 64}, x2.options().dtype(at::kByte));
  uint8_t* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(panels.data_ptr()) + 63) / 64 * 64);
  const int64_t P = (N + cpu::kPanelRows - 1) / cpu::kPanelRows;
  at::parallel_for(0, P, 1, [&](int64_t p0, int64_t p1) {
    uint8_t* mine = base + std::min<int64_t>(at::get_thread_num(), threads - 1) * per_thread;
    if (amx) {
      cpu::amx::gemm(args, p0, p1, mine);
    } else {
      dot::gemm(args, p0, p1, mine);
    }
  });
#else
  TORCH_CHECK(false, "greenops: the panel GEMMs need x86-64");
#endif
  return out_dtype == at::kBFloat16 || out_dtype == at::kFloat ? out : out.to(out_dtype);
}

}  // namespace greenops
