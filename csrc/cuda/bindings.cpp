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

#include "int8_checks.h"
#include "launchers.h"

namespace greenops::cuda {
namespace {

at::Tensor int8_mm_cuda(const at::Tensor& a_q, const at::Tensor& a_scale, const at::Tensor& w_q,
                        const at::Tensor& w_scale, const std::optional<at::Tensor>& bias,
                        std::optional<at::ScalarType> out_dtype) {
  check_int8_mm(a_q, a_scale, w_q, w_scale, bias, out_dtype);
  TORCH_CHECK_VALUE(a_q.is_cuda(), "greenops.int8_mm (cuda backend): tensors must be on a CUDA device");
  const c10::cuda::CUDAGuard guard(a_q.device());
  const int64_t K = a_q.size(-1), N = w_q.size(0);
  TORCH_CHECK_VALUE(K % 16 == 0, "greenops.int8_mm (cuda backend): K must be a multiple of 16 "
                    "(16-byte cp.async rows), got K=", K, "; use backend='triton'");
  const int64_t M = c10::multiply_integers(a_q.sizes().slice(0, a_q.dim() - 1));
  const at::Tensor a = a_q.reshape({M, K}).contiguous();  // ({-1, K}) is ambiguous for K = 0
  TORCH_CHECK_VALUE(M < INT32_MAX && N < INT32_MAX && K < INT32_MAX,
                    "greenops.int8_mm (cuda backend): sizes must fit in int32");
  const at::ScalarType dtype = out_dtype.value_or(at::kFloat);
  std::vector<int64_t> shape(a_q.sizes().begin(), a_q.sizes().end() - 1);
  shape.push_back(N);
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
      static_cast<int>(N), static_cast<int>(K), c10::cuda::getCurrentCUDAStream().stream()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out.view(shape);
}

}  // namespace

void bind(pybind11::module& m) {
  m.def("int8_mm_cuda", &int8_mm_cuda, "int8_mm on the CUDA C++ kernel (csrc/cuda/int8_mm.cu)",
        pybind11::arg("a_q"), pybind11::arg("a_scale"), pybind11::arg("w_q"),
        pybind11::arg("w_scale"), pybind11::arg("bias") = pybind11::none(),
        pybind11::arg("out_dtype") = pybind11::none());
  m.attr("cuda_kernels") = pybind11::make_tuple("int8_mm");
}

}  // namespace greenops::cuda
