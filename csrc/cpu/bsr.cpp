// CPU impls of the block-sparse ops: checks, dtype handling (computed in fp32: fp16/bf16 x converted
// per call, fp16/bf16 blocks widened by the kernels per block row in cache), the
// split of work over threads balanced by nonzeros, and the choice of kernel (bsr_*.cpp).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "bsr_checks.h"
#include "bsr_kernels.h"
#include "cpu_features.h"
#include "gemm_ops.h"
#include "op_utils.h"

namespace greenops {
namespace {

namespace kb = cpu::bsr;

bool avx512() {
#if defined(__x86_64__)
  return cpu::active_isa() >= cpu::Isa::Avx512Vnni;
#else
  return false;
#endif
}

bool amx() {
#if defined(__x86_64__)
  return cpu::active_isa() == cpu::Isa::Avx512Amx;
#else
  return false;
#endif
}

// Splits items [0, n) (block rows or columns) into chunks of about equal nonzeros (ptr: the
// items' CSR pointer) and runs f(begin, end) on each, in parallel.
template <class F>
void parallel_balanced(const int64_t* ptr, int64_t n, int64_t work_per_nnz, const F& f) {
  if (n == 0) return;
  const int64_t nnz = ptr[n];
  const int64_t chunks = std::min<int64_t>(n, std::max<int64_t>(1, at::get_num_threads() * 4));
  std::vector<int64_t> bounds{0};
  for (int64_t t = 1; t < chunks; ++t) {
    const int64_t target = nnz * t / chunks;
    const int64_t i = std::upper_bound(ptr, ptr + n + 1, target) - ptr - 1;
    if (i > bounds.back()) bounds.push_back(i);
  }
  bounds.push_back(n);
  const int64_t parts = int64_t(bounds.size()) - 1;
  const int64_t grain = work_per_nnz * std::max<int64_t>(1, nnz / std::max<int64_t>(parts, 1)) > (1 << 15) ? 1 : parts;
  at::parallel_for(0, parts, grain, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) f(bounds[p], bounds[p + 1]);
  });
}

kb::Transpose16Fn transpose16() { return avx512() ? kb::transpose16_avx512 : kb::transpose16_scalar; }

// a [M, L] fp32 -> a transposed, zero-padded to mp columns and packed in strips (bsr_kernels.h).
// 16 x 16 tiles transposed in registers, threaded over L (a strided at::copy_ of the transposed
// view ran at ~1 GB/s here; scalar 16 x 16 loops were most of a 90%-sparse call's time).
const float* pack_transposed(const at::Tensor& a, int64_t mp) {
  const int64_t M = a.size(0), L = a.size(1);
  const float* src = a.data_ptr<float>();
  float* dst = scratch(mp * L);
  const kb::Transpose16Fn tr = transpose16();
  at::parallel_for(0, (L + 15) / 16, 4, [&](int64_t lb0, int64_t lb1) {
    for (int64_t m0 = 0; m0 < mp;) {
      const int64_t w = kb::strip_width(mp - m0);
      float* strip = dst + m0 * L;
      for (int64_t lb = lb0; lb < lb1; ++lb) {
        const int64_t l0 = lb * 16, l1 = std::min(L, l0 + 16);
        for (int64_t c0 = 0; c0 < w; c0 += 16) {
          if (l1 - l0 == 16 && m0 + c0 + 16 <= M) {
            tr(src + (m0 + c0) * L + l0, L, strip + l0 * w + c0, w);
            continue;
          }
          for (int64_t l = l0; l < l1; ++l) {  // a tail: past L, or rows past M (zeros)
            for (int64_t c = c0; c < c0 + 16; ++c) {
              const int64_t m = m0 + c;
              strip[l * w + c] = m < M ? src[m * L + l] : 0.f;
            }
          }
        }
      }
      m0 += w;
    }
  });
  return dst;
}

// The kernels' view of contiguous values: fp32 blocks as floats, fp16/bf16 blocks as 16-bit words
// and their kind (widened per block row or column block in cache), int8 blocks neither.
const float* float_blocks(const at::Tensor& v) {
  return v.scalar_type() == at::kFloat ? v.data_ptr<float>() : nullptr;
}

std::pair<const uint16_t*, cpu::FloatKind> half_blocks(const at::Tensor& v) {
  const auto t = v.scalar_type();
  if (t != at::kHalf && t != at::kBFloat16) return {nullptr, cpu::FloatKind::F32};
  return {static_cast<const uint16_t*>(v.data_ptr()), t == at::kHalf ? cpu::FloatKind::F16 : cpu::FloatKind::BF16};
}

void check_floats(const char* op, const at::Tensor& a, const char* an, const at::Tensor& b, const char* bn) {
  check_dtype(op, an, a, {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble});
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), "greenops.", op, ": ", an, " and ", bn,
                   " must have one dtype, got ", dtype_name(a.scalar_type()), " and ",
                   dtype_name(b.scalar_type()));
}

// float64 (gradcheck, references): composite ATen ops over the gathered blocks, in double.
at::Tensor block_rows(const at::Tensor& crow, int64_t nnz) {
  return at::repeat_interleave(at::arange(crow.numel() - 1, crow.options()), crow.diff(), 0, nnz);
}

at::Tensor bsr_mm_f64(const at::Tensor& x2, const at::Tensor& values, const at::Tensor& crow,
                      const at::Tensor& col, int64_t R) {
  const int64_t M = x2.size(0), K = x2.size(1), nnz = values.size(0), bn = values.size(1), bk = values.size(2);
  at::Tensor out = at::zeros({M, R, bn}, x2.options());
  if (nnz && M) {
    const at::Tensor xb = x2.view({M, K / bk, bk}).index_select(1, col);  // [M, nnz, bk]
    out.index_add_(1, block_rows(crow, nnz), at::einsum("mzk,znk->mzn", {xb, values}));
  }
  return out.view({M, R * bn});
}

// int8 values: per-output-channel scales [N] fp32, x any float dtype; float values: x's dtype,
// no scales.
void check_values(const char* op, const at::Tensor& x, const at::Tensor& values,
                  const std::optional<at::Tensor>& scales, const std::optional<at::Tensor>& x_scales,
                  int64_t N) {
  if (x.scalar_type() == at::kChar || x_scales.has_value()) {  // W8A8
    check_dtype(op, "x", x, {at::kChar});
    TORCH_CHECK_VALUE(x_scales.has_value(), "greenops.", op,
                      ": int8 x needs x_scales (one per row of x, x's shape without its last dim)");
    check_dtype(op, "x_scales", *x_scales, {at::kFloat});
    TORCH_CHECK_VALUE(x_scales->sizes() == x.sizes().slice(0, x.dim() - 1), "greenops.", op,
                      ": x_scales must have x's shape without its last dim ", x.sizes().slice(0, x.dim() - 1),
                      ", got ", x_scales->sizes());
    TORCH_CHECK_TYPE(values.scalar_type() == at::kChar, "greenops.", op,
                     ": int8 x goes with int8 values, got ", dtype_name(values.scalar_type()), " values");
  }
  if (values.scalar_type() == at::kChar) {
    check_dtype(op, "x", x, {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble, at::kChar});
    TORCH_CHECK_VALUE(scales.has_value(), "greenops.", op,
                      ": int8 values need scales (one per output channel, [N])");
    check_dtype(op, "scales", *scales, {at::kFloat});
    check_shape(op, "scales", *scales, {N}, "one scale per output channel");
  } else {
    check_floats(op, x, "x", values, "values");
    TORCH_CHECK_VALUE(!scales.has_value(), "greenops.", op,
                      ": scales go with int8 values only, got ", dtype_name(values.scalar_type()),
                      " values");
  }
}

// int8 blocks times their rows' scales, as `dtype` (the paths that take float blocks).
at::Tensor dequantize_blocks(const at::Tensor& values, const at::Tensor& scales,
                             const at::Tensor& crow, at::ScalarType dtype) {
  const int64_t nnz = values.size(0), bn = values.size(1);
  const at::Tensor rows = block_rows(crow, nnz);  // [nnz]
  const at::Tensor s = scales.to(dtype).view({-1, bn}).index_select(0, rows);  // [nnz, bn]
  return values.to(dtype) * s.unsqueeze(2);
}

// int8 x [M, K] -> x + 128 as bytes, packed in strips of 4 k's a lane (PackedArgs), rows past M
// 128 (x = 0).
const uint8_t* pack_w8a8(const at::Tensor& xq, int64_t mp) {
  const int64_t M = xq.size(0), K = xq.size(1);
  const int8_t* src = xq.data_ptr<int8_t>();
  uint8_t* dst = reinterpret_cast<uint8_t*>(scratch((mp * K + 3) / 4));
  at::parallel_for(0, mp, 16, [&](int64_t m_begin, int64_t m_end) {
    for (int64_t m0 = 0; m0 < mp;) {  // the strip of each row
      const int64_t w = kb::strip_width(mp - m0);
      for (int64_t m = std::max(m_begin, m0); m < std::min(m_end, m0 + w); ++m) {
        uint8_t* d = dst + m0 * K + (m - m0) * 4;
        for (int64_t q = 0; q < K / 4; ++q) {
          uint32_t v = 0x80808080u;  // 128 + 0
          if (m < M) {
            std::memcpy(&v, src + m * K + q * 4, 4);
            v ^= 0x80808080u;  // each byte + 128 (mod 256): int8 -> its offset unsigned value
          }
          std::memcpy(d + q * w * 4, &v, 4);
        }
      }
      m0 += w;
    }
  });
  return dst;
}

at::Tensor bsr_mm_w8a8(const at::Tensor& x, const at::Tensor& xs, const at::Tensor& values, const at::Tensor& crow,
                       const at::Tensor& col, const std::optional<at::Tensor>& bias, const at::Tensor& scales, int64_t R);

// out [M, N] by a kernel that takes x packed in bytes (PackedArgs): on AMX tiles (bf16 x and
// values, or int8 both) or, int8 only, by AVX-512 VNNI. xs [M]: int8 x's row scales. out fp32, or
// bf16 (bf16 x on AMX: rounded from the fp32 sums by the kernel, as .to(bfloat16) would).
at::Tensor bsr_mm_packed(const at::Tensor& x2, const at::Tensor& xs, const at::Tensor& values, const at::Tensor& crow,
                         const at::Tensor& col, const std::optional<at::Tensor>& bias, const at::Tensor& scales,
                         int64_t N, bool on_amx, at::ScalarType out_dtype = at::kFloat) {
  const int64_t M = x2.size(0), K = x2.size(1), bn = values.size(1), bk = values.size(2);
  const bool int8 = values.scalar_type() == at::kChar;
  const int64_t mp = on_amx ? (M + 31) / 32 * 32 : (M + 15) / 16 * 16;
  const bool bf16_out = out_dtype == at::kBFloat16;
  TORCH_INTERNAL_ASSERT(out_dtype == at::kFloat || (bf16_out && on_amx && !int8));
  at::Tensor out = at::empty({M, N}, x2.options().dtype(out_dtype));
  at::Tensor xsp;
  if (int8) {
    xsp = at::zeros({mp}, xs.options());
    xsp.narrow(0, 0, M).copy_(xs.reshape({M}));
  }
  const at::Tensor v = values.contiguous(), cr = crow.contiguous(), cc = col.contiguous();
  const at::Tensor sc = int8 ? scales.contiguous() : at::Tensor();
  const at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  const kb::PackedArgs args{on_amx ? pack_amx(x2, mp, transpose16()) : pack_w8a8(x2, mp), static_cast<const uint8_t*>(v.data_ptr()),
                            int8 ? sc.data_ptr<float>() : nullptr, int8 ? xsp.data_ptr<float>() : nullptr,
                            cr.data_ptr<int64_t>(), cc.data_ptr<int64_t>(), b.defined() ? b.data_ptr<float>() : nullptr,
                            bf16_out ? nullptr : out.data_ptr<float>(),
                            bf16_out ? static_cast<uint16_t*>(out.data_ptr()) : nullptr, transpose16(), mp,
                            {M, N, K, bn, bk}, int8};
#if defined(__x86_64__)
  const auto fwd = on_amx ? kb::forward_amx : kb::forward_w8a8_avx512;
  parallel_balanced(cr.data_ptr<int64_t>(), N / bn, M * bn * bk / 4, [&](int64_t r0, int64_t r1) { fwd(args, r0, r1); });
#endif
  return out;
}

at::Tensor bsr_mm_cpu(const at::Tensor& x, const at::Tensor& values, const at::Tensor& crow,
                      const at::Tensor& col, const std::optional<at::Tensor>& bias,
                      const std::optional<at::Tensor>& t_crow, const std::optional<at::Tensor>& t_blocks,
                      const std::optional<at::Tensor>& scales, const std::optional<at::Tensor>& x_scales) {
  const char* op = "bsr_mm";
  TORCH_CHECK_VALUE(x.dim() >= 1, "greenops.bsr_mm: x must have at least 1 dim [..., K]");
  const at::Tensor no_tensor;
  check_same_device(op, {{"x", &x}, {"values", &values}, {"crow_indices", &crow}, {"col_indices", &col},
                         {"bias", bias ? &*bias : &no_tensor}, {"scales", scales ? &*scales : &no_tensor}});
  const int64_t K = x.size(-1);
  check_bsr_shapes(op, values, crow, col, K);
  check_weight_k(op, t_crow, K, values.size(2));  // the transposed metadata: otherwise backward's
  const int64_t R = check_bsr(op, values, crow, col, K);
  const int64_t bn = values.size(1), bk = values.size(2), N = R * bn;
  check_values(op, x, values, scales, x_scales, N);
  const bool q8 = values.scalar_type() == at::kChar;
  check_bias(op, bias, N, /*allow_double=*/true);
  (void)t_blocks;
  if (x.scalar_type() == at::kChar) return bsr_mm_w8a8(x, *x_scales, values, crow, col, bias, *scales, R);
  if (x.scalar_type() == at::kDouble) {
    const at::Tensor v = q8 ? dequantize_blocks(values, *scales, crow, at::kDouble) : values;
    at::Tensor out = bsr_mm_f64(x.reshape({rows_of(x), K}), v, crow, col, R);
    if (bias.has_value()) out = out + bias->to(at::kDouble);
    return out.view(out_shape(x, N));
  }
  if (amx() && x.scalar_type() == at::kBFloat16 && values.scalar_type() == at::kBFloat16 &&
      rows_of(x) > kb::kDotMaxRows && N > 0) {  // bf16 tiles, fp32 sums
    const at::Tensor x2 = x.reshape({rows_of(x), K}).contiguous();
    return bsr_mm_packed(x2, at::Tensor(), values, crow, col, bias, at::Tensor(), N, /*on_amx=*/true,
                         at::kBFloat16)
        .view(out_shape(x, N));
  }
  const at::Tensor x2 = x.reshape({rows_of(x), K}).to(at::kFloat).contiguous();
  const int64_t M = x2.size(0);
  if (M == 0 || N == 0) return at::empty(out_shape(x, N), x.options());
  // int8 and fp16/bf16 blocks go to the kernels as they are (bsr_kernels.h: dequantized or
  // widened per block row in cache)
  const at::Tensor v = values.contiguous();
  const at::Tensor sc = q8 ? scales->contiguous() : at::Tensor();
  const at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  const at::Tensor cr = crow.contiguous(), cc = col.contiguous();
  kb::ForwardArgs args{x2.data_ptr<float>(), nullptr,
                       float_blocks(v),
                       q8 ? v.data_ptr<int8_t>() : nullptr,
                       q8 ? sc.data_ptr<float>() : nullptr, cr.data_ptr<int64_t>(),
                       cc.data_ptr<int64_t>(), b.defined() ? b.data_ptr<float>() : nullptr, nullptr,
                       nullptr, 0, {M, N, K, bn, bk}};
  std::tie(args.hvalues, args.hkind) = half_blocks(v);
  at::Tensor out;
  if (M <= kb::kDotMaxRows) {
    out = at::empty({M, N}, x.options().dtype(at::kFloat));
    args.out = out.data_ptr<float>();
    const auto fwd = avx512() ? kb::forward_dot_avx512 : kb::forward_dot_scalar;
    parallel_balanced(cr.data_ptr<int64_t>(), R, M * bn * bk, [&](int64_t r0, int64_t r1) { fwd(args, r0, r1); });
  } else if (M >= kb::kBnMinRows) {
    out = at::empty({M, N}, x.options().dtype(at::kFloat));
    args.out = out.data_ptr<float>();  // the blocks are transposed per block row, in the kernel
    const auto fwd = avx512() ? kb::forward_bn_avx512 : kb::forward_bn_scalar;
    parallel_balanced(cr.data_ptr<int64_t>(), R, M * bn * bk, [&](int64_t r0, int64_t r1) { fwd(args, r0, r1); });
  } else {
    // M along the kernel's vector lanes: x transposed once ([K, Mp], zero-padded to a multiple
    // of 16); each block row's result is made transposed and turned back in the kernel.
    const int64_t mp = (M + 15) / 16 * 16;
    args.xt = pack_transposed(x2, mp);
    out = at::empty({M, N}, x.options().dtype(at::kFloat));
    args.out = out.data_ptr<float>();
    args.transpose16 = transpose16();
    args.mp = mp;
    const auto fwd = avx512() ? kb::forward_avx512 : kb::forward_scalar;
    parallel_balanced(cr.data_ptr<int64_t>(), R, M * bn * bk, [&](int64_t r0, int64_t r1) { fwd(args, r0, r1); });
  }
  return out.to(x.scalar_type()).view(out_shape(x, N));
}

// W8A8 (checked by the caller): out fp32 = (x * x_scales) @ (values * scales)^T + bias. For
// M > kDotMaxRows in int32, on AMX tiles (forward_amx) or AVX-512 VNNI (forward_w8a8);
// otherwise x is dequantized (exact: an int8 times an fp32 scale) and the int8-blocks float
// kernels run, which agree with the int32 sums to fp32 rounding.
at::Tensor bsr_mm_w8a8(const at::Tensor& x, const at::Tensor& xs, const at::Tensor& values, const at::Tensor& crow,
                       const at::Tensor& col, const std::optional<at::Tensor>& bias, const at::Tensor& scales,
                       int64_t R) {
  const int64_t K = x.size(-1), N = R * values.size(1);
  const at::Tensor x2 = x.reshape({rows_of(x), K}).contiguous();
  const int64_t M = x2.size(0);
  const at::Tensor s2 = xs.reshape({M}).contiguous();
  std::vector<int64_t> shape = out_shape(x, N);
  if (M <= kb::kDotMaxRows || !avx512() || K > 65536) {
    const at::Tensor xf = x2.to(at::kFloat) * s2.unsqueeze(1);
    return bsr_mm_cpu(xf, values, crow, col, bias, std::nullopt, std::nullopt, scales, std::nullopt).view(shape);
  }
  if (N == 0) return at::empty({M, N}, x.options().dtype(at::kFloat)).view(shape);
  return bsr_mm_packed(x2, s2, values, crow, col, bias, scales, N, amx()).view(shape);
}

at::Tensor bsr_mm_t_cpu(const at::Tensor& dy, const at::Tensor& values, const at::Tensor& t_crow,
                        const at::Tensor& t_blocks) {
  const char* op = "bsr_mm_t";
  check_floats(op, dy, "dy", values, "values");
  TORCH_CHECK_VALUE(dy.dim() == 2, "greenops.bsr_mm_t: dy must be 2-D [M, N], got shape ", dy.sizes());
  TORCH_CHECK_VALUE(values.dim() == 3, "greenops.bsr_mm_t: values must be 3-D [nnz, bn, bk]");
  const int64_t nnz = values.size(0), bn = values.size(1), bk = values.size(2);
  check_dtype(op, "t_crow", t_crow, {at::kLong});
  check_dtype(op, "t_blocks", t_blocks, {at::kLong});
  check_shape(op, "t_blocks", t_blocks, {2, nnz}, "block index and block row per block, in column order");
  TORCH_CHECK_VALUE(t_crow.dim() == 1 && t_crow.numel() >= 1, "greenops.bsr_mm_t: t_crow must be 1-D");
  const int64_t C = t_crow.numel() - 1, K = C * bk, M = dy.size(0), N = dy.size(1);
  TORCH_CHECK_VALUE(N % bn == 0, "greenops.bsr_mm_t: dy's N=", N, " is not a multiple of bn=", bn);
  // The same bounds as the forward's, on the transposed metadata.
  const at::Tensor tb = t_blocks.contiguous();
  const at::Tensor tc = t_crow.contiguous();
  const int64_t* tcp = tc.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(tcp[0] == 0 && tcp[C] == nnz, "greenops.bsr_mm_t: t_crow must run from 0 to nnz");
  for (int64_t c = 0; c < C; ++c) TORCH_CHECK_VALUE(tcp[c] <= tcp[c + 1], "greenops.bsr_mm_t: t_crow must not decrease");
  const int64_t* blk = tb.data_ptr<int64_t>();
  const int64_t* row = blk + nnz;
  for (int64_t j = 0; j < nnz; ++j) {
    TORCH_CHECK_VALUE(blk[j] >= 0 && blk[j] < nnz && row[j] >= 0 && row[j] < N / bn,
                      "greenops.bsr_mm_t: t_blocks entry ", j, " is out of range");
  }
  if (dy.scalar_type() == at::kDouble) {
    at::Tensor dx = at::zeros({M, C, bk}, dy.options());
    if (nnz && M) {
      const at::Tensor dyb = dy.view({M, N / bn, bn}).index_select(1, tb[1]);  // [M, nnz, bn]
      dx.index_add_(1, block_rows(tc, nnz), at::einsum("mzn,znk->mzk", {dyb, values.index_select(0, tb[0])}));
    }
    return dx.view({M, K});
  }
  const at::Tensor v = values.contiguous();
  if (M == 0 || K == 0) return at::zeros({M, K}, dy.options());
  if (amx() && dy.scalar_type() == at::kBFloat16 && values.scalar_type() == at::kBFloat16 &&
      M >= kb::kAmxGradMinRows && N > 0) {
    // bf16 on AMX tiles: dX = dY @ W is the forward of W^T, a BSR of (bk x bn) blocks whose
    // block rows are W's column blocks (t_crow) — the blocks in column order, each transposed
    // (a pass over the weight per call: what sets kAmxGradMinRows).
    const at::Tensor vt = v.transpose(1, 2).index_select(0, tb[0]);  // [nnz, bk, bn], one pass
    return bsr_mm_packed(dy.contiguous(), at::Tensor(), vt, tc, tb[1].contiguous(), std::nullopt, at::Tensor(), K,
                         /*on_amx=*/true, at::kBFloat16);
  }
  const int64_t mp = (M + 15) / 16 * 16;
  const at::Tensor dyf = dy.to(at::kFloat).contiguous();
  const float* dyt = pack_transposed(dyf, mp);
  at::Tensor dx = at::empty({M, K}, dy.options().dtype(at::kFloat));
  kb::BackwardXArgs args{dyt, float_blocks(v), tcp, blk, row, dx.data_ptr<float>(), transpose16(), mp,
                         {M, N, K, bn, bk}};
  std::tie(args.hvalues, args.hkind) = half_blocks(v);
  const auto bwd = avx512() ? kb::backward_x_avx512 : kb::backward_x_scalar;
  parallel_balanced(tcp, C, M * bn * bk, [&](int64_t c0, int64_t c1) { bwd(args, c0, c1); });
  return dx.to(dy.scalar_type());
}

at::Tensor bsr_sddmm_cpu(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& crow,
                         const at::Tensor& col, int64_t bn, int64_t bk) {
  const char* op = "bsr_sddmm";
  check_floats(op, dy, "dy", x, "x");
  TORCH_CHECK_VALUE(dy.dim() == 2 && x.dim() == 2 && dy.size(0) == x.size(0), "greenops.bsr_sddmm: dy [M, N] and x [M, K] must be 2-D with one M, got ",
                    dy.sizes(), " and ", x.sizes());
  TORCH_CHECK_VALUE(is_block_size(bn) && is_block_size(bk), "greenops.bsr_sddmm: blocks must be 16, 32, 64 or 128");
  const int64_t nnz = col.numel(), M = x.size(0), K = x.size(1), N = dy.size(1);
  const at::Tensor shape_only = at::empty({nnz, bn, bk}, x.options().device(at::kMeta));
  const int64_t R = check_bsr(op, shape_only, crow, col, K);
  TORCH_CHECK_VALUE(R * bn == N, "greenops.bsr_sddmm: dy has N=", N, " but the pattern has ", R, " block rows of ", bn);
  // Block row of every block, from crow.
  at::Tensor rows = at::empty({nnz}, crow.options());
  const at::Tensor cr = crow.contiguous(), cc = col.contiguous();
  const int64_t* cp = cr.data_ptr<int64_t>();
  int64_t* rp = rows.data_ptr<int64_t>();
  for (int64_t r = 0; r < R; ++r)
    for (int64_t b = cp[r]; b < cp[r + 1]; ++b) rp[b] = r;
  if (x.scalar_type() == at::kDouble) {
    const at::Tensor dyb = dy.contiguous().view({M, N / bn, bn}).index_select(1, rows);
    const at::Tensor xb = x.contiguous().view({M, K / bk, bk}).index_select(1, cc);
    return at::einsum("mzn,mzk->znk", {dyb, xb});
  }
  // bf16 on AMX tiles, fp32 sums, at any M (m padded to 32): the float kernel's fp32 dV and its
  // cast alone cost more (4096^2, 50%: 11-12 ms at M = 5 against 1.2-1.6 in all)
  if (amx() && dy.scalar_type() == at::kBFloat16 && x.scalar_type() == at::kBFloat16 && M > 0 && nnz > 0) {
    const at::Tensor dyc = dy.contiguous(), xc = x.contiguous();
    const int64_t mp = (M + 31) / 32 * 32;
    at::Tensor xv = at::empty({K / 16, mp / 2, 32}, x.options());
    at::Tensor dv = at::empty({nnz, bn, bk}, x.options());
    const kb::SddmmAmxArgs args{static_cast<const uint16_t*>(dyc.data_ptr()), static_cast<const uint16_t*>(xc.data_ptr()),
                                static_cast<uint16_t*>(xv.data_ptr()), cp, cc.data_ptr<int64_t>(),
                                static_cast<uint16_t*>(dv.data_ptr()), mp, {M, N, K, bn, bk}};
#if defined(__x86_64__)
    at::parallel_for(0, K / 16, 1, [&](int64_t g0, int64_t g1) { kb::pack_pairs_amx(args, g0, g1); });
    parallel_balanced(cp, R, mp * bn * bk, [&](int64_t r0, int64_t r1) { kb::sddmm_amx(args, r0, r1); });
#endif
    return dv;
  }
  // packed by block column (SddmmArgs), as fp32: one copy each, converting as it goes
  const auto packed = [](const at::Tensor& t, int64_t b) {
    const int64_t rows = t.size(0), cols = t.size(1);
    return at::empty({cols / b, rows, b}, t.options().dtype(at::kFloat))
        .copy_(t.contiguous().view({rows, cols / b, b}).transpose(0, 1));
  };
  const at::Tensor dyf = packed(dy, bn), xf = packed(x, bk);
  at::Tensor dv = at::empty({nnz, bn, bk}, x.options().dtype(at::kFloat));
  if (nnz > 0) {
    const kb::SddmmArgs args{dyf.data_ptr<float>(), xf.data_ptr<float>(), rp, cc.data_ptr<int64_t>(),
                             dv.data_ptr<float>(), {M, N, K, bn, bk}};
    const auto sd = avx512() ? kb::sddmm_avx512 : kb::sddmm_scalar;
    at::parallel_for(0, nnz, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, M * bn * bk)),
                     [&](int64_t b0, int64_t b1) { sd(args, b0, b1); });
  }
  return dv.to(x.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(greenops, CPU, m) {
  m.impl("bsr_mm", &bsr_mm_cpu);
  m.impl("bsr_mm_t", &bsr_mm_t_cpu);
  m.impl("bsr_sddmm", &bsr_sddmm_cpu);
}

}  // namespace greenops
