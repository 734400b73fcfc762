// Argument checks of the int8 ops, shared by their C++ impls (CPU here, CUDA C++ later).
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>

#include "checks.h"

namespace greenops {

inline void check_float_input(const char* op, const char* name, const at::Tensor& t) {
  check_dtype(op, name, t, {at::kFloat, at::kHalf, at::kBFloat16});
}

// w_q [N, K] int8, w_scale [N] float32, bias [N] float or absent; returns N.
inline int64_t check_int8_weight(const char* op, const at::Tensor& w_q, const at::Tensor& w_scale,
                                 const std::optional<at::Tensor>& bias, int64_t K) {
  check_dtype(op, "w_q", w_q, {at::kChar});
  TORCH_CHECK_VALUE(w_q.dim() == 2, "greenops.", op, ": w_q must be 2-D [N, K], got shape ", w_q.sizes());
  const int64_t N = w_q.size(0);
  TORCH_CHECK_VALUE(w_q.size(1) == K, "greenops.", op, ": the activation has K=", K, " but w_q has K=",
              w_q.size(1), " (w_q is [N, K] = ", w_q.sizes(), ")");
  check_dtype(op, "w_scale", w_scale, {at::kFloat});
  check_shape(op, "w_scale", w_scale, {N}, "one scale per output channel of w_q");
  check_bias(op, bias, N);
  return N;
}

inline void check_int8_mm(const at::Tensor& a_q, const at::Tensor& a_scale, const at::Tensor& w_q,
                          const at::Tensor& w_scale, const std::optional<at::Tensor>& bias,
                          std::optional<at::ScalarType> out_dtype) {
  const char* op = "int8_mm";
  check_dtype(op, "a_q", a_q, {at::kChar});
  TORCH_CHECK_VALUE(a_q.dim() >= 1, "greenops.int8_mm: a_q must have at least 1 dim [..., K]");
  const at::Tensor no_bias;
  check_same_device(op, {{"a_q", &a_q}, {"a_scale", &a_scale}, {"w_q", &w_q},
                         {"w_scale", &w_scale}, {"bias", bias ? &*bias : &no_bias}});
  check_int8_weight(op, w_q, w_scale, bias, a_q.size(-1));
  check_dtype(op, "a_scale", a_scale, {at::kFloat});
  check_shape(op, "a_scale", a_scale, a_q.sizes().slice(0, a_q.dim() - 1),
              "a_q's shape without its last dim: one scale per row");
  if (out_dtype.has_value()) {
    const auto d = *out_dtype;
    TORCH_CHECK_TYPE(d == at::kFloat || d == at::kHalf || d == at::kBFloat16,
                     "greenops.int8_mm: out_dtype must be torch.float32 or torch.float16 or "
                     "torch.bfloat16, got ", dtype_name(d));
  }
}

inline void check_int8_weight_mm(const at::Tensor& x, const at::Tensor& w_q,
                                 const at::Tensor& w_scale, const std::optional<at::Tensor>& bias) {
  const char* op = "int8_weight_mm";
  check_float_input(op, "x", x);
  TORCH_CHECK_VALUE(x.dim() >= 1, "greenops.int8_weight_mm: x must have at least 1 dim [..., K]");
  const at::Tensor no_bias;
  check_same_device(op, {{"x", &x}, {"w_q", &w_q}, {"w_scale", &w_scale},
                         {"bias", bias ? &*bias : &no_bias}});
  check_int8_weight(op, w_q, w_scale, bias, x.size(-1));
}

}  // namespace greenops
