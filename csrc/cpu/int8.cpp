// CPU impls of the int8 ops: argument checks, layout, threading (at::parallel_for) and the
// choice of kernel; the SIMD micro-kernels are in int8_{avx512,avx2,scalar}.cpp.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/accumulate.h>
#include <torch/library.h>

#include <algorithm>

#include "gemm_ops.h"
#include "cpu_features.h"
#include "int8_checks.h"
#include "int8_kernels.h"
#include "op_utils.h"

namespace greenops {
namespace {

namespace k8 = cpu::int8;

// Rows up to which our VNNI dot kernel, which streams the weight once, beats the panel GEMMs
// (gemm_ops.h: AMX tiles, else vpdpbusd without AMX) where K fits them; else oneDNN
// (at::_int_mm) with our epilogue takes the larger M. Measured, 4096x4096 weight, ms:
// - 2-core Xeon with AMX (dot / our AMX GEMM): M = 3 0.41 / 0.44, 4 0.57 / 0.43, 5 0.80 / 0.42;
//   _int_mm + scaling took 0.76-0.87 at M = 1..5 and 83 at M = 2048 (ours 21; docs/kernels.md).
// - the same Xeon on its AVX-512 VNNI path (use_cpu_isa, bf16 out; dot / our vpdpbusd GEMM):
//   M = 3 0.64 / 1.19, 4 0.91 / 1.11, 5 1.23 / 1.17, 8 1.74 / 1.42, 16 3.06 / 2.01, 48 8.4 / 3.4.
// - earlier, 2-core AMD EPYC Zen 4 (dot / _int_mm + scaling): M = 4 0.97 / 3.40, 16 2.28 / 3.51,
//   32 4.26 / 4.17, 64 9.8 / 5.7 (the vpdpbusd GEMM not yet measured there).
// AVX2 keeps the AMX machine's bound (not measured on an AVX2-only CPU since the dot kernel's
// reach was raised).
int64_t dot_max_rows() {
  const cpu::Isa isa = cpu::active_isa();
  return isa == cpu::Isa::Avx512Vnni || isa == cpu::Isa::Avx512Bf16 ? 4 : 3;
}
// at::_int_mm (torch 2.13 CPU) returns garbage for K = 1 (a [M, 1] operand's strides are
// ambiguous to oneDNN); tiny K is cheap on our kernel anyway.
constexpr int64_t kIntMmMinK = 16;
// Bytes of weight dequantized per library-GEMM call on the large-M W8A16 path: per-call GEMM
// overhead dominates small tiles (bf16, M=256, 4096x4096: 256-row tiles 8.1 ms, 1024-row tiles
// 6.4 ms, one full GEMM 5.9 ms), while 8 MiB still sits in a server's L2/L3.
constexpr int64_t kTileBytes = 8 << 20;


using QuantizeFn = void (*)(const void*, k8::FloatKind, int64_t, int64_t, int64_t, int8_t*, float*);
using DotFn = void (*)(const k8::DotArgs&, int64_t, int64_t);
using WeightDotFn = void (*)(const k8::WeightDotArgs&, int64_t, int64_t);
using DequantizeFn = void (*)(const int8_t*, const float*, int64_t, int64_t, int64_t, void*,
                              k8::FloatKind);

struct Kernels {
  QuantizeFn quantize;
  DotFn dot;
  WeightDotFn weight_dot;
  DequantizeFn dequantize;
};

Kernels kernels() {
  switch (cpu::active_isa()) {
#if defined(__x86_64__)
    case cpu::Isa::Avx512Amx:  // the panel GEMMs take the larger M (gemm_ops.h); these the rest
    case cpu::Isa::Avx512Bf16:
    case cpu::Isa::Avx512Vnni:
      return {k8::quantize_rows_avx512, k8::dot_avx512, k8::weight_dot_avx512,
              k8::dequantize_rows_avx512};
    case cpu::Isa::Avx2:
      return {k8::quantize_rows_avx2, k8::dot_avx2, k8::weight_dot_avx2, k8::dequantize_rows_avx2};
#endif
    default:
      return {k8::quantize_rows_scalar, k8::dot_scalar, k8::weight_dot_scalar,
              k8::dequantize_rows_scalar};
  }
}

// Rows of bf16 x above which int8_weight_mm runs on the bf16 panel GEMM (gemm_ops.h; fp32 x too
// where the user allows bf16 for fp32 matmuls): AMX tiles, else vdpbf16ps. Measured (2-core
// Xeon with AMX, 4096 x 4096, bf16 x, ms, AMX / FMA kernel): M = 2 0.86 / 1.04, 4 0.85 / 1.27,
// 16 0.86 / 3.08.
constexpr int64_t kAmxWeightMinRows = 1;
// Without AMX (vdpbf16ps, Isa::Avx512Bf16; AMD Zen 4/5) an estimate, not a measurement: on the
// Xeon's forced AVX512-BF16 path the GEMM costs ~3 ms (fill + transpose, 4096^2) + M x 0.28 ms
// and so never beats the FMA kernel there (vdpbf16ps at half its FMA rate: 127 vs 257 GFLOP/s);
// a Zen 4 runs vdpbf16ps at twice its FMA rate (450 vs 217, bench/results/batch-epyc-zen4.json),
// so ~3 + M x 0.08 ms against W8A16's measured 4.97 (M = 16) and 8.1 ms (M = 32) there.
constexpr int64_t kDotWeightMinRows = 16;

std::tuple<at::Tensor, at::Tensor> quantize_int8_cpu(const at::Tensor& x, int64_t dim) {
  check_float_input("quantize_int8", "x", x);
  TORCH_CHECK_VALUE(x.dim() >= 1, "greenops.quantize_int8: x must have at least 1 dim");
  const int64_t d = at::maybe_wrap_dim(dim, x.dim());
  const at::Tensor xt = x.movedim(d, -1).contiguous();
  const int64_t K = xt.size(-1);
  at::Tensor q = at::empty(xt.sizes(), xt.options().dtype(at::kChar));
  at::Tensor scale = at::empty(xt.sizes().slice(0, xt.dim() - 1), xt.options().dtype(at::kFloat));
  const int64_t rows = scale.numel();
  const auto quantize = kernels().quantize;
  const auto kind = float_kind(x.scalar_type());
  const void* src = xt.data_ptr();
  int8_t* qp = q.data_ptr<int8_t>();
  float* sp = scale.data_ptr<float>();
  at::parallel_for(0, rows, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, K)),
                   [&](int64_t b, int64_t e) { quantize(src, kind, K, b, e, qp, sp); });
  return {q.movedim(-1, d).contiguous(), scale};
}

// out = cast(float(acc) * a_scale[m] * w_scale[n] + bias[n]): one pass over the int32 result.
template <class Out>
void epilogue(const at::Tensor& acc, const at::Tensor& a_scale, const at::Tensor& w_scale,
              const at::Tensor& bias, at::Tensor& out) {
  const int64_t M = acc.size(0), N = acc.size(1);
  const int32_t* ap = acc.data_ptr<int32_t>();
  const float* as = a_scale.data_ptr<float>();
  const float* ws = w_scale.data_ptr<float>();
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  Out* op = out.data_ptr<Out>();
  at::parallel_for(0, M, std::max<int64_t>(1, (1 << 14) / N), [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m) {
      const float sa = as[m];
      if (bp) {
        for (int64_t n = 0; n < N; ++n) op[m * N + n] = Out(float(ap[m * N + n]) * sa * ws[n] + bp[n]);
      } else {
        for (int64_t n = 0; n < N; ++n) op[m * N + n] = Out(float(ap[m * N + n]) * sa * ws[n]);
      }
    }
  });
}

at::Tensor int8_mm_cpu(const at::Tensor& a_q, const at::Tensor& a_scale, const at::Tensor& w_q,
                       const at::Tensor& w_scale, const std::optional<at::Tensor>& bias,
                       std::optional<at::ScalarType> out_dtype) {
  check_int8_mm(a_q, a_scale, w_q, w_scale, bias, out_dtype);
  const int64_t K = a_q.size(-1), N = w_q.size(0);
  const at::ScalarType dtype = out_dtype.value_or(at::kFloat);
  const at::Tensor a = a_q.reshape({rows_of(a_q), K}).contiguous();
  const int64_t M = a.size(0);
  at::Tensor out = at::empty({M, N}, a_q.options().dtype(dtype));
  if (M == 0 || N == 0) return out.view(out_shape(a_q, N));
  const at::Tensor w = w_q.contiguous();
  const at::Tensor as = a_scale.reshape({M}).contiguous();
  const at::Tensor ws = w_scale.contiguous();
  const at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  const int64_t dot_rows = dot_max_rows();
  if (M > dot_rows && panel_gemm_fits(K, 1)) {  // int8 panel GEMM, the weight read in place
    return panel_matmul(a, N, w.data_ptr<int8_t>(), nullptr, nullptr, as.data_ptr<float>(), ws.data_ptr<float>(),
                        b.defined() ? b.data_ptr<float>() : nullptr, dtype)
        .view(out_shape(a_q, N));
  }
  at::Tensor acc;
  if (M <= dot_rows || K < kIntMmMinK) {
    acc = at::empty({M, N}, a.options().dtype(at::kInt));
    const k8::DotArgs args{a.data_ptr<int8_t>(), w.data_ptr<int8_t>(), acc.data_ptr<int32_t>(), M, N, K};
    const auto dot = kernels().dot;
    parallel_over_n(N, M * K, [&](int64_t b, int64_t e) { dot(args, b, e); });
  } else {
    acc = at::_int_mm(a, w.t());
  }
  switch (dtype) {
    case at::kFloat: epilogue<float>(acc, as, ws, b, out); break;
    case at::kHalf: epilogue<at::Half>(acc, as, ws, b, out); break;
    default: epilogue<at::BFloat16>(acc, as, ws, b, out); break;
  }
  return out.view(out_shape(a_q, N));
}

at::Tensor int8_weight_mm_cpu(const at::Tensor& x, const at::Tensor& w_q, const at::Tensor& w_scale,
                              const std::optional<at::Tensor>& bias) {
  check_int8_weight_mm(x, w_q, w_scale, bias);
  const int64_t K = x.size(-1), N = w_q.size(0);
  const at::Tensor x2 = x.reshape({rows_of(x), K});
  const int64_t M = x2.size(0);
  if (M == 0 || N == 0) return at::empty(out_shape(x, N), x.options());
  if (K == 0) return empty_k_result(x, N, bias);
  const at::Tensor w = w_q.contiguous();
  const at::Tensor ws = w_scale.contiguous();
#if defined(__x86_64__)
  if (const at::Tensor xb = bf16_activation(x2, amx_active() ? kAmxWeightMinRows : kDotWeightMinRows); xb.defined()) {
    // The bf16 panel GEMM against bf16(q), exact; the scales applied to the fp32 sums.
    const cpu::Int8Panel ctx{w.data_ptr<int8_t>(), K};
    const at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
    return panel_matmul(xb, N, nullptr, cpu::fill_int8_bf16, &ctx, nullptr, ws.data_ptr<float>(),
                        b.defined() ? b.data_ptr<float>() : nullptr, x.scalar_type())
        .view(out_shape(x, N));
  }
#endif
  if (M <= k8::kWeightDotMaxRows) {
    // Activations to fp32 once (M is small); the weight is streamed once, dequantized in
    // registers, never written back.
    const at::Tensor xf = x2.to(at::kFloat).contiguous();
    const at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
    at::Tensor out = at::empty({M, N}, x.options().dtype(at::kFloat));
    const k8::WeightDotArgs args{xf.data_ptr<float>(), w.data_ptr<int8_t>(), ws.data_ptr<float>(),
                                 b.defined() ? b.data_ptr<float>() : nullptr, out.data_ptr<float>(),
                                 M, N, K};
    const auto weight_dot = kernels().weight_dot;
    parallel_over_n(N, M * K, [&](int64_t b0, int64_t e0) { weight_dot(args, b0, e0); });
    return out.to(x.scalar_type()).view(out_shape(x, N));
  }
  // Large M is compute-bound: dequantized tiles + library GEMM (op_utils.h); |w| <= 127 |s|.
  const at::Tensor xc = (beyond_half(x, ws.abs() * 127) ? x2.to(at::kFloat) : x2).contiguous();
  const auto dequantize = kernels().dequantize;
  const auto kind = float_kind(xc.scalar_type());
  const at::Tensor out = tiled_dequant_gemm(xc, N, bias, kTileBytes, [&](int64_t n0, int64_t r0, int64_t r1, void* tile) {
    dequantize(w.data_ptr<int8_t>() + n0 * K, ws.data_ptr<float>() + n0, K, r0, r1, tile, kind);
  });
  return out.to(x.scalar_type()).view(out_shape(x, N));
}

}  // namespace

TORCH_LIBRARY_IMPL(greenops, CPU, m) {
  m.impl("quantize_int8", &quantize_int8_cpu);
  m.impl("int8_mm", &int8_mm_cpu);
  m.impl("int8_weight_mm", &int8_weight_mm_cpu);
}

}  // namespace greenops
