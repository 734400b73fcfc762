// CPU impls of the int4 ops: checks, layout, threading and the choice of kernel; the SIMD
// micro-kernels are in int4_{avx512,avx2,scalar}.cpp.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>

#include "gemm_ops.h"
#include "cpu_features.h"
#include "int4_checks.h"
#include "int4_kernels.h"
#include "op_utils.h"

namespace greenops {
namespace {

namespace k4 = cpu::int4;

// Bytes of weight dequantized per library-GEMM call on the large-M path (as for int8).
constexpr int64_t kTileBytes = 8 << 20;

using GemvFn = void (*)(const k4::GemvArgs&, int64_t, int64_t);
using DequantizeFn = void (*)(const uint8_t*, const float*, const float*, int64_t, int64_t, int64_t,
                              int64_t, void*, k4::FloatKind);

struct Kernels {
  GemvFn gemv;
  DequantizeFn dequantize;
};

Kernels kernels() {
  switch (cpu::active_isa()) {
#if defined(__x86_64__)
    case cpu::Isa::Avx512Amx:  // the panel GEMMs take larger M (gemm_ops.h); these the rest
    case cpu::Isa::Avx512Bf16:
    case cpu::Isa::Avx512Vnni: return {k4::gemv_avx512, k4::dequantize_rows_avx512};
    case cpu::Isa::Avx2: return {k4::gemv_avx2, k4::dequantize_rows_avx2};
#endif
    default: return {k4::gemv_scalar, k4::dequantize_rows_scalar};
  }
}

// Rows up to which a streaming kernel beats dequantized tiles + library GEMM. The fixed-point
// gemv does up to 16 in every dtype (AVX-512 VNNI, 4096x4096, 2-core Xeon, ms, fixed / float
// gemv / tiles: M=8 fp32 1.7 / 2.9 / 5.8, bf16 1.4 / 3.0 / 2.9; M=16 bf16 2.5 / 3.5 / 3.5; at
// M=24 bf16 tiles win, 3.3 vs 5.5, AMX behind at::mm). The float gemv (the scalar path, or x the
// fixed point refuses) gives way to bf16's tiles from M ~ 10 (M=5 2.3 vs 4.2; M=16 6.3 vs 3.8).
int64_t gemv_max_rows(at::ScalarType t) { return t == at::kBFloat16 ? 8 : k4::kGemvMaxRows; }

const float* ptr_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

// Rows of bf16 x above which int4_weight_mm runs on the bf16 panel GEMM (gemm_ops.h; fp32 x too
// where the user allows bf16 for fp32 matmuls): AMX tiles, else vdpbf16ps. Measured (2-core
// Xeon with AMX, 4096 x 4096, bf16 x, ms, AMX / fixed-point gemv): M = 2 0.83 / 0.41, 4 0.85 /
// 0.79, 5 0.85 / 0.97, 8 0.81 / 1.40, 16 0.81 / 2.70 (the AMX path is bound by widening the
// nibbles into bf16 panels).
constexpr int64_t kAmxMinRows = 4;
// Without AMX (vdpbf16ps; AMD Zen 4/5): where the fixed-point gemv gives way (M = 16), an
// estimate as int8.cpp's kDotWeightMinRows (never faster on the Xeon's forced AVX512-BF16 path;
// on a Zen 4 ~3.5 + M x 0.08 ms against the measured 6.4 ms of today's path at M = 32).
constexpr int64_t kDotMinRows = 16;

#if defined(__x86_64__)
// x [M, K] @ W.T by the fixed-point gemv (AVX-512 VNNI or AVX2), in x's dtype; nullopt when x
// has a value it cannot hold (not finite, extreme range), for the float kernels to take.
std::optional<at::Tensor> fixed_gemv(const at::Tensor& x2, const at::Tensor& p, const at::Tensor& s,
                                     const at::Tensor& z, int64_t group, const std::optional<at::Tensor>& bias,
                                     int64_t N) {
  const bool vnni = cpu::active_isa() >= cpu::Isa::Avx512Vnni;
  const auto to_fixed = vnni ? k4::to_fixed_avx512 : k4::to_fixed_scalar;
  const auto gemv = vnni ? k4::gemv_fixed_avx512 : k4::gemv_fixed_avx2;
  const int64_t M = x2.size(0), K = x2.size(1), G = K / group, chunks = k4::fixed_chunks(K);
  const int P = x2.scalar_type() == at::kFloat ? 3 : 2;  // digits to hold the dtype's mantissa
  const at::Tensor xf = x2.to(at::kFloat).contiguous();
  at::Tensor bytes = at::empty({M, chunks * P * k4::kFixedChunk}, xf.options().dtype(at::kChar));
  at::Tensor sigma = at::empty({M, chunks * 16}, xf.options());
  at::Tensor gsum = at::empty({M, G}, xf.options());
  for (int64_t m = 0; m < M; ++m) {
    if (!to_fixed(xf.data_ptr<float>() + m * K, K, group, P, bytes.data_ptr<int8_t>() + m * bytes.size(1),
                      sigma.data_ptr<float>() + m * chunks * 16, gsum.data_ptr<float>() + m * G)) {
      return std::nullopt;
    }
  }
  const at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  at::Tensor out = at::empty({M, N}, xf.options());
  const k4::FixedArgs args{bytes.data_ptr<int8_t>(), sigma.data_ptr<float>(), gsum.data_ptr<float>(),
                           p.data_ptr<uint8_t>(), s.data_ptr<float>(), ptr_or_null(z), ptr_or_null(b),
                           out.data_ptr<float>(), M, N, K, group, P};
  parallel_over_n(N, M * K, [&](int64_t b0, int64_t e0) { gemv(args, b0, e0); });
  return out.to(x2.scalar_type());
}
#endif

std::tuple<at::Tensor, at::Tensor, at::Tensor> quantize_int4_cpu(const at::Tensor& w,
                                                                 int64_t group_size,
                                                                 bool symmetric) {
  const char* op = "quantize_int4";
  check_dtype(op, "w", w, {at::kFloat, at::kHalf, at::kBFloat16});
  TORCH_CHECK_VALUE(w.dim() == 2, "greenops.quantize_int4: w must be 2-D [N, K], got shape ", w.sizes());
  const int64_t N = w.size(0), K = w.size(1);
  check_int4_group(op, K, group_size);
  const int64_t G = K / group_size;
  const at::Tensor wc = w.contiguous();
  at::Tensor packed = at::empty({N, K / 2}, w.options().dtype(at::kByte));
  at::Tensor scales = at::empty({N, G}, w.options().dtype(at::kFloat));
  // Symmetric: no zero points (8 is implied); the schema returns an empty tensor for them.
  at::Tensor zeros = at::empty({symmetric ? 0 : N, symmetric ? 0 : G}, w.options().dtype(at::kFloat));
  const void* src = wc.data_ptr();
  const auto kind = float_kind(w.scalar_type());
  uint8_t* pp = packed.data_ptr<uint8_t>();
  float* sp = scales.data_ptr<float>();
  float* zp = symmetric ? nullptr : zeros.data_ptr<float>();
  at::parallel_for(0, N, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, K)), [&](int64_t b, int64_t e) {
    k4::quantize_rows(src, kind, K, group_size, symmetric, b, e, pp, sp, zp);
  });
  return {packed, scales, zeros};
}

at::Tensor dequantize_int4_cpu(const at::Tensor& packed, const at::Tensor& scales,
                               const std::optional<at::Tensor>& zeros, int64_t group_size) {
  const char* op = "dequantize_int4";
  check_dtype(op, "packed", packed, {at::kByte});
  TORCH_CHECK_VALUE(packed.dim() == 2, "greenops.dequantize_int4: packed must be 2-D [N, K/2], got shape ",
                    packed.sizes());
  const int64_t K = packed.size(1) * 2;
  const int64_t N = check_int4_weight(op, packed, scales, zeros, group_size, K);
  at::Tensor out = at::empty({N, K}, scales.options());
  if (N == 0 || K == 0) return out;
  const at::Tensor p = packed.contiguous(), s = scales.contiguous();
  const at::Tensor z = zeros.has_value() ? zeros->contiguous() : at::Tensor();
  const auto dequantize = kernels().dequantize;
  at::parallel_for(0, N, 8, [&](int64_t b, int64_t e) {
    dequantize(p.data_ptr<uint8_t>(), s.data_ptr<float>(), ptr_or_null(z), K, group_size, b, e,
               out.data_ptr(), cpu::FloatKind::F32);
  });
  return out;
}

at::Tensor int4_weight_mm_cpu(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scales,
                              const std::optional<at::Tensor>& zeros, int64_t group_size,
                              const std::optional<at::Tensor>& bias) {
  const char* op = "int4_weight_mm";
  check_dtype(op, "x", x, {at::kFloat, at::kHalf, at::kBFloat16});
  TORCH_CHECK_VALUE(x.dim() >= 1, "greenops.int4_weight_mm: x must have at least 1 dim [..., K]");
  const at::Tensor no_tensor;
  check_same_device(op, {{"x", &x}, {"packed", &packed}, {"scales", &scales},
                         {"zeros", zeros ? &*zeros : &no_tensor}, {"bias", bias ? &*bias : &no_tensor}});
  const int64_t K = x.size(-1);
  const int64_t N = check_int4_weight(op, packed, scales, zeros, group_size, K);
  check_bias(op, bias, N);
  const at::Tensor x2 = x.reshape({rows_of(x), K});
  const int64_t M = x2.size(0);
  if (M == 0 || N == 0) return at::empty(out_shape(x, N), x.options());
  if (K == 0) return empty_k_result(x, N, bias);
  const at::Tensor p = packed.contiguous(), s = scales.contiguous();
  const at::Tensor z = zeros.has_value() ? zeros->contiguous() : at::Tensor();
#if defined(__x86_64__)
  if (const at::Tensor xb = bf16_activation(x2, amx_active() ? kAmxMinRows : kDotMinRows); xb.defined()) {
    // The bf16 panel GEMM against the weight dequantized to bf16 a panel at a time, rounded as
    // the tiles below round it.
    const cpu::Int4Panel ctx{p.data_ptr<uint8_t>(), s.data_ptr<float>(), ptr_or_null(z), K, group_size};
    const at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
    return panel_matmul(xb, N, nullptr, cpu::fill_int4_bf16, &ctx, nullptr, nullptr, ptr_or_null(b),
                        x.scalar_type())
        .view(out_shape(x, N));
  }
  if (M <= k4::kGemvMaxRows && cpu::active_isa() != cpu::Isa::Scalar) {
    if (auto out = fixed_gemv(x2, p, s, z, group_size, bias, N)) return out->view(out_shape(x, N));
  }
#endif
  if (M <= gemv_max_rows(x.scalar_type())) {
    // Memory-bound: activations to fp32 and into the kernels' chunk order once (M is small);
    // the packed weight is streamed once and dequantized only in registers.
    const at::Tensor xf = x2.to(at::kFloat).contiguous();
    at::Tensor xp = at::empty_like(xf);
    for (int64_t m = 0; m < M; ++m) k4::permute_chunks(xf.data_ptr<float>() + m * K, K, xp.data_ptr<float>() + m * K);
    const at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
    at::Tensor out = at::empty({M, N}, x.options().dtype(at::kFloat));
    const k4::GemvArgs args{xp.data_ptr<float>(), p.data_ptr<uint8_t>(), s.data_ptr<float>(), ptr_or_null(z),
                            ptr_or_null(b), out.data_ptr<float>(), M, N, K, group_size};
    const auto gemv = kernels().gemv;
    parallel_over_n(N, M * K, [&](int64_t b0, int64_t e0) { gemv(args, b0, e0); });
    return out.to(x.scalar_type()).view(out_shape(x, N));
  }
  // Compute-bound: dequantized tiles + library GEMM (op_utils.h); |(q - z) s| <= |s| max(|z|,
  // |15 - z|) for q in 0..15.
  const at::Tensor bound = z.defined() ? s.abs() * at::maximum(z.abs(), (15 - z).abs()) : s.abs() * 8;
  const at::Tensor xc = (beyond_half(x, bound) ? x2.to(at::kFloat) : x2).contiguous();
  const auto dequantize = kernels().dequantize;
  const auto kind = float_kind(xc.scalar_type());
  const int64_t G = K / group_size;
  const float* zp = z.defined() ? z.data_ptr<float>() : nullptr;
  const at::Tensor out = tiled_dequant_gemm(xc, N, bias, kTileBytes, [&](int64_t n0, int64_t r0, int64_t r1, void* tile) {
    dequantize(p.data_ptr<uint8_t>() + n0 * (K / 2), s.data_ptr<float>() + n0 * G, zp ? zp + n0 * G : nullptr, K,
               group_size, r0, r1, tile, kind);
  });
  return out.to(x.scalar_type()).view(out_shape(x, N));
}

}  // namespace

TORCH_LIBRARY_IMPL(greenops, CPU, m) {
  m.impl("quantize_int4", &quantize_int4_cpu);
  m.impl("dequantize_int4", &dequantize_int4_cpu);
  m.impl("int4_weight_mm", &int4_weight_mm_cpu);
}

}  // namespace greenops
