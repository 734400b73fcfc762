// The torch side of the CUDA C++ kernels: argument checks (the ops' own, csrc/include), output
// allocation, and a launch on the current stream. Built only into a CUDA build of greenops._C
// (setup.py); the kernels themselves (*.cu) include no torch header.
//
// Each function is bound into greenops._C (registration.cpp calls bind_cuda) and reached from
// Python as the op's "cuda" backend. The op's registered CUDA impl stays the one "auto" picks
// (greenops/ops/_backend.py), so one dispatcher entry per op serves both backends.
// c10/cuda only (not ATen/cuda/CUDAContext.h, which needs the cuBLAS/cuSPARSE headers that a
// toolkit with just nvcc lacks)
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <cstdlib>
#include <string>

#include "bsr_checks.h"
#include "int4_checks.h"
#include "int8_checks.h"
#include "launchers.h"

namespace greenops::cuda {
namespace {

// x [..., K] as M rows (multiply_integers: reshape({-1, K}) is ambiguous for K = 0), sizes
// checked to fit the kernels' int32, and the output's shape [..., N].
int64_t flat_rows(const char* op, const at::Tensor& x, int64_t N, std::vector<int64_t>& shape) {
  const int64_t M = c10::multiply_integers(x.sizes().slice(0, x.dim() - 1));
  TORCH_CHECK_VALUE(M < INT32_MAX && N < INT32_MAX && x.size(-1) < INT32_MAX, "greenops.", op,
                    ": sizes must fit in int32");
  shape.assign(x.sizes().begin(), x.sizes().end() - 1);
  shape.push_back(N);
  return M;
}

// The int8_mm kernel for `name` on the current device: "mma" (mma.sync, sm_80+), "wgmma"
// (sm_90a builds on Hopper), or "auto": wgmma where it runs, unless GREENOPS_CUDA_WGMMA=0.
Int8Kernel int8_kernel(const std::string& name, cudaStream_t stream) {
  TORCH_CHECK_VALUE(name == "auto" || name == "mma" || name == "wgmma",
                    "greenops.int8_mm (cuda backend): kernel must be 'auto', 'mma' or 'wgmma', "
                    "got '", name, "'");
  if (name == "mma") return Int8Kernel::mma;
  const bool ready = int8_mm_wgmma_ready(stream);
  if (name == "wgmma") {
    TORCH_CHECK_VALUE(ready, "greenops.int8_mm (cuda backend): the wgmma kernel needs a Hopper "
                      "GPU and a build for sm_90a (TORCH_CUDA_ARCH_LIST=9.0a), and its first use "
                      "on a device outside CUDA graph capture");
    return Int8Kernel::wgmma;
  }
  const char* env = std::getenv("GREENOPS_CUDA_WGMMA");
  return ready && !(env != nullptr && std::string(env) == "0") ? Int8Kernel::wgmma
                                                               : Int8Kernel::mma;
}

std::string int8_mm_cuda_kernel() {
  return int8_kernel("auto", c10::cuda::getCurrentCUDAStream().stream()) == Int8Kernel::wgmma
             ? "wgmma"
             : "mma";
}

at::Tensor int8_mm_cuda(const at::Tensor& a_q, const at::Tensor& a_scale, const at::Tensor& w_q,
                        const at::Tensor& w_scale, const std::optional<at::Tensor>& bias,
                        std::optional<at::ScalarType> out_dtype, const std::string& kernel) {
  check_int8_mm(a_q, a_scale, w_q, w_scale, bias, out_dtype);
  TORCH_CHECK_VALUE(a_q.is_cuda(), "greenops.int8_mm (cuda backend): tensors must be on a CUDA device");
  const c10::cuda::CUDAGuard guard(a_q.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const Int8Kernel which = int8_kernel(kernel, stream);
  const int64_t K = a_q.size(-1), N = w_q.size(0);
  TORCH_CHECK_VALUE(K % 16 == 0, "greenops.int8_mm (cuda backend): K must be a multiple of 16 "
                    "(16-byte cp.async rows), got K=", K, "; use backend='triton'");
  std::vector<int64_t> shape;
  const int64_t M = flat_rows("int8_mm (cuda backend)", a_q, N, shape);
  const at::Tensor a = a_q.reshape({M, K}).contiguous();
  const at::ScalarType dtype = out_dtype.value_or(at::kFloat);
  at::Tensor out = at::empty({M, N}, a_q.options().dtype(dtype));
  if (M == 0 || N == 0) return out.view(shape);
  const at::Tensor w = w_q.contiguous();
  const at::Tensor as = a_scale.reshape({M}).contiguous();
  const at::Tensor ws = w_scale.contiguous();
  const at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  // contiguous rows of K % 16 bytes from a fresh or caching-allocator base: 16-byte aligned
  // unless the caller passed a view with an odd storage offset
  TORCH_CHECK_VALUE(reinterpret_cast<uintptr_t>(a.data_ptr()) % 16 == 0 &&
                        reinterpret_cast<uintptr_t>(w.data_ptr()) % 16 == 0,
                    "greenops.int8_mm (cuda backend): a_q and w_q must be 16-byte aligned");
  const OutKind kind = dtype == at::kFloat ? OutKind::f32
                       : dtype == at::kHalf ? OutKind::f16
                                            : OutKind::bf16;
  C10_CUDA_CHECK(greenops::cuda::int8_mm(
      a.data_ptr<int8_t>(), as.data_ptr<float>(), w.data_ptr<int8_t>(), ws.data_ptr<float>(),
      b.defined() ? b.data_ptr<float>() : nullptr, out.data_ptr(), kind, static_cast<int>(M),
      static_cast<int>(N), static_cast<int>(K), which, stream));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out.view(shape);
}

// x [..., K] fp16/bf16 @ dequant(W)^T + bias, W int4 in int4_layout.h's prepacked layout:
// prepacked int32 [N/8, K/128, 32, 4] (greenops.ops.int4.prepack_cuda). The layout is made
// once; this per-call path never repacks.
at::Tensor int4_weight_mm_cuda(const at::Tensor& x, const at::Tensor& prepacked,
                               const at::Tensor& scales, const std::optional<at::Tensor>& zeros,
                               int64_t group_size, const std::optional<at::Tensor>& bias) {
  const char* op = "int4_weight_mm (cuda backend)";
  check_dtype(op, "x", x, {at::kHalf, at::kBFloat16});
  TORCH_CHECK_VALUE(x.dim() >= 1, "greenops.", op, ": x must have at least 1 dim [..., K]");
  const at::Tensor no_tensor;
  check_same_device(op, {{"x", &x}, {"prepacked", &prepacked}, {"scales", &scales},
                         {"zeros", zeros ? &*zeros : &no_tensor}, {"bias", bias ? &*bias : &no_tensor}});
  TORCH_CHECK_VALUE(x.is_cuda(), "greenops.", op, ": tensors must be on a CUDA device");
  check_dtype(op, "prepacked", prepacked, {at::kInt});
  TORCH_CHECK_VALUE(prepacked.dim() == 4 && prepacked.size(2) == 32 && prepacked.size(3) == 4 &&
                        prepacked.is_contiguous(),
                    "greenops.", op, ": prepacked must be contiguous int32 [N/8, K/128, 32, 4] "
                    "(greenops.ops.int4.prepack_cuda), got shape ", prepacked.sizes());
  const int64_t K = x.size(-1), N = prepacked.size(0) * 8;
  TORCH_CHECK_VALUE(prepacked.size(1) * 128 == K, "greenops.", op, ": x has K=", K,
                    " but the prepacked weight holds K=", prepacked.size(1) * 128);
  check_int4_group(op, K, group_size);
  TORCH_CHECK_VALUE(group_size % 32 == 0, "greenops.", op, ": group_size must be a multiple of 32");
  check_int4_scales(op, scales, zeros, N, K / group_size);
  check_bias(op, bias, N);
  const c10::cuda::CUDAGuard guard(x.device());
  std::vector<int64_t> shape;
  const int64_t M = flat_rows(op, x, N, shape);
  const at::Tensor xc = x.reshape({M, K}).contiguous();
  at::Tensor out = at::empty({M, N}, x.options());
  if (M == 0 || N == 0) return out.view(shape);
  const at::Tensor sc = scales.contiguous();
  const at::Tensor zc = zeros.has_value() ? zeros->contiguous() : at::Tensor();
  const at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, x.get_device()));
  const int split = int4_weight_mm_split(static_cast<int>(M), static_cast<int>(N),
                                         static_cast<int>(K), sms);
  const at::Tensor partial =
      split > 1 ? at::empty({split, M, N}, x.options().dtype(at::kFloat)) : at::Tensor();
  C10_CUDA_CHECK(greenops::cuda::int4_weight_mm(
      xc.data_ptr(), prepacked.data_ptr(), sc.data_ptr<float>(),
      zc.defined() ? zc.data_ptr<float>() : nullptr, b.defined() ? b.data_ptr<float>() : nullptr,
      out.data_ptr(), partial.defined() ? partial.data_ptr<float>() : nullptr,
      x.scalar_type() == at::kHalf ? HalfKind::f16 : HalfKind::bf16, static_cast<int>(M),
      static_cast<int>(N), static_cast<int>(K), static_cast<int>(group_size), split,
      c10::cuda::getCurrentCUDAStream().stream()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out.view(shape);
}

// x [..., K] fp16/bf16 @ W^T + bias, W block-sparse with (bn, bk) in {32, 64}^2. Shapes are
// checked here; the indices are trusted as the Triton path trusts them (greenops.sparse
// validates them when the weight is built; a device-to-host copy per call would stall).
at::Tensor bsr_mm_cuda(const at::Tensor& x, const at::Tensor& values, const at::Tensor& crow,
                       const at::Tensor& col, const std::optional<at::Tensor>& bias) {
  const char* op = "bsr_mm (cuda backend)";
  check_dtype(op, "x", x, {at::kHalf, at::kBFloat16});
  TORCH_CHECK_TYPE(values.scalar_type() == x.scalar_type(), "greenops.", op,
                   ": x and values must have one dtype, got ", dtype_name(x.scalar_type()), " and ",
                   dtype_name(values.scalar_type()));
  TORCH_CHECK_VALUE(x.dim() >= 1, "greenops.", op, ": x must have at least 1 dim [..., K]");
  const at::Tensor no_tensor;
  check_same_device(op, {{"x", &x}, {"values", &values}, {"crow_indices", &crow},
                         {"col_indices", &col}, {"bias", bias ? &*bias : &no_tensor}});
  TORCH_CHECK_VALUE(x.is_cuda(), "greenops.", op, ": tensors must be on a CUDA device");
  const int64_t K = x.size(-1);
  const int64_t R = check_bsr_shapes(op, values, crow, col, K);
  const int64_t bn = values.size(1), bk = values.size(2), N = R * bn;
  TORCH_CHECK_VALUE((bn == 32 || bn == 64) && (bk == 32 || bk == 64), "greenops.", op,
                    ": the CUDA C++ kernel takes blocks of 32 or 64 on each side, got (", bn, ", ",
                    bk, "); use backend='triton'");
  check_bias(op, bias, N);
  const c10::cuda::CUDAGuard guard(x.device());
  std::vector<int64_t> shape;
  const int64_t M = flat_rows(op, x, N, shape);
  at::Tensor out = at::empty({M, N}, x.options());
  if (M == 0 || N == 0) return out.view(shape);
  const at::Tensor xc = x.reshape({M, K}).contiguous(), v = values.contiguous();
  const at::Tensor cr = crow.contiguous(), cc = col.contiguous();
  const at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  C10_CUDA_CHECK(greenops::cuda::bsr_mm(
      xc.data_ptr(), v.data_ptr(), cr.data_ptr<int64_t>(), cc.data_ptr<int64_t>(),
      b.defined() ? b.data_ptr<float>() : nullptr, out.data_ptr(),
      x.scalar_type() == at::kHalf ? HalfKind::f16 : HalfKind::bf16, static_cast<int>(M),
      static_cast<int>(N), static_cast<int>(K), static_cast<int>(bn), static_cast<int>(bk),
      c10::cuda::getCurrentCUDAStream().stream()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out.view(shape);
}

}  // namespace

void bind(pybind11::module& m) {
  m.def("int8_mm_cuda", &int8_mm_cuda, "int8_mm on the CUDA C++ kernel (csrc/cuda/int8_mm.cu)",
        pybind11::arg("a_q"), pybind11::arg("a_scale"), pybind11::arg("w_q"),
        pybind11::arg("w_scale"), pybind11::arg("bias") = pybind11::none(),
        pybind11::arg("out_dtype") = pybind11::none(), pybind11::arg("kernel") = "auto");
  m.def("int8_mm_cuda_kernel", &int8_mm_cuda_kernel,
        "the kernel int8_mm_cuda's 'auto' runs on the current device: 'wgmma' or 'mma'");
  m.def("int4_weight_mm_cuda", &int4_weight_mm_cuda,
        "int4_weight_mm on the CUDA C++ kernel (csrc/cuda/int4_weight_mm.cu), prepacked weight",
        pybind11::arg("x"), pybind11::arg("prepacked"), pybind11::arg("scales"),
        pybind11::arg("zeros"), pybind11::arg("group_size"),
        pybind11::arg("bias") = pybind11::none());
  m.def("bsr_mm_cuda", &bsr_mm_cuda, "bsr_mm forward on the CUDA C++ kernel (csrc/cuda/bsr_mm.cu)",
        pybind11::arg("x"), pybind11::arg("values"), pybind11::arg("crow_indices"),
        pybind11::arg("col_indices"), pybind11::arg("bias"));
  m.attr("cuda_kernels") = pybind11::make_tuple("int8_mm", "int4_weight_mm", "bsr_mm");
}

}  // namespace greenops::cuda
