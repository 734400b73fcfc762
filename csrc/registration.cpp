// The one TORCH_LIBRARY block: every greenops op schema, written once.
// Implementations register elsewhere: CPU in csrc/cpu/*.cpp, CUDA in Python (Triton; the
// CUDA C++ kernels of csrc/cuda are bound below as the ops' "cuda" backend), fake (meta)
// impls in greenops/ops/*.py.
#include <torch/extension.h>

#include "cpu_features.h"

TORCH_LIBRARY(greenops, m) {
  // int8 (numerics: docs/kernels.md)
  m.def("quantize_int8(Tensor x, int dim=-1) -> (Tensor q, Tensor scale)");
  m.def(
      "int8_mm(Tensor a_q, Tensor a_scale, Tensor w_q, Tensor w_scale, Tensor? bias=None, "
      "ScalarType? out_dtype=None) -> Tensor");
  m.def("int8_weight_mm(Tensor x, Tensor w_q, Tensor w_scale, Tensor? bias=None) -> Tensor");
  // int4, group-wise W4A16 (layout and numerics: docs/kernels.md). Symmetric quantization
  // returns an empty `zeros` (8 is implied); the Python API turns it into None.
  m.def(
      "quantize_int4(Tensor w, int group_size=128, bool symmetric=False) -> "
      "(Tensor packed, Tensor scales, Tensor zeros)");
  m.def("dequantize_int4(Tensor packed, Tensor scales, Tensor? zeros, int group_size) -> Tensor");
  m.def(
      "int4_weight_mm(Tensor x, Tensor packed, Tensor scales, Tensor? zeros, int group_size, "
      "Tensor? bias=None) -> Tensor");
  // block-sparse (BSR weight [N, K] x dense; format: docs/kernels.md). bsr_mm's t_crow/t_blocks
  // (the transpose's metadata) are for its backward only; bsr_mm_t is dY @ W through them and
  // bsr_sddmm the gradient of the values (dY^T @ X sampled at the nonzero blocks).
  // int8 values carry per-output-channel scales (W[n, :] = values * scales[n]); float ones none.
  // int8 x (W8A8, with int8 values) carries per-row x_scales (x's shape less its last dim, as
  // quantize_int8 gives them); the output is then fp32.
  m.def(
      "bsr_mm(Tensor x, Tensor values, Tensor crow_indices, Tensor col_indices, Tensor? bias=None, "
      "Tensor? t_crow=None, Tensor? t_blocks=None, Tensor? scales=None, Tensor? x_scales=None) -> "
      "Tensor");
  m.def("bsr_mm_t(Tensor dy, Tensor values, Tensor t_crow, Tensor t_blocks) -> Tensor");
  m.def(
      "bsr_sddmm(Tensor dy, Tensor x, Tensor crow_indices, Tensor col_indices, int bn, int bk) -> "
      "Tensor");
}

#ifndef GREENOPS_VERSION
#error "GREENOPS_VERSION must be defined by setup.py"
#endif
#ifndef GREENOPS_CUDA_ARCHS
#define GREENOPS_CUDA_ARCHS ""
#endif

#ifdef GREENOPS_WITH_CUDA
namespace greenops::cuda {
void bind(pybind11::module& m);  // csrc/cuda/bindings.cpp
}
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "greenops C++/CUDA extension: op impls are reached through torch.ops.greenops";
  m.attr("__version__") = GREENOPS_VERSION;
  m.attr("torch_version") = TORCH_VERSION;
  m.attr("cuda_archs") = GREENOPS_CUDA_ARCHS;
#ifdef GREENOPS_WITH_CUDA
  m.attr("with_cuda") = true;
  greenops::cuda::bind(m);  // the CUDA C++ kernels, as the ops' "cuda" backend
#else
  m.attr("with_cuda") = false;
  m.attr("cuda_kernels") = pybind11::make_tuple();
#endif
  m.def("cpu_isa", [] { return greenops::cpu::isa_name(greenops::cpu::active_isa()); },
        "CPU ISA path the kernels take now");
  m.def("cpu_isa_detected", [] { return greenops::cpu::isa_name(greenops::cpu::detected_isa()); },
        "best CPU ISA path this CPU supports");
  m.def("set_cpu_isa", [](const std::string& name) {
          greenops::cpu::set_isa(greenops::cpu::isa_from_name(name));
        }, "cap the ISA path ('avx512_amx', 'avx512_bf16', 'avx512_vnni', 'avx2', 'scalar', or 'auto' "
           "for the detected one)");
  m.def("cpu_peak_gops", &greenops::cpu::peak_gops, pybind11::arg("kind"), pybind11::arg("seconds") = 0.5,
        "GOP/s of one instruction's register-resident loop on all threads ('fma', 'vnni', "
        "'bf16dot', 'amx_bf16', 'amx_int8'); negative where this CPU lacks it");
}
