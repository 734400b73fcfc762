// Input checks shared by every op's C++ impls: one helper per kind of mistake, messages that
// name the op, the argument and what was expected. Python-side twins (for fake impls and the
// Triton path) live in greenops/ops/_checks.py and produce the same messages.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <utility>

namespace greenops {

// Python's spelling ("torch.int8"), so messages read the same from every backend.
inline std::string dtype_name(c10::ScalarType t) {
  switch (t) {
    case c10::kChar: return "torch.int8";
    case c10::kByte: return "torch.uint8";
    case c10::kInt: return "torch.int32";
    case c10::kLong: return "torch.int64";
    case c10::kHalf: return "torch.float16";
    case c10::kBFloat16: return "torch.bfloat16";
    case c10::kFloat: return "torch.float32";
    case c10::kDouble: return "torch.float64";
    case c10::kBool: return "torch.bool";
    default: return std::string("torch.") + c10::toString(t);
  }
}

inline std::string dtype_list(std::initializer_list<c10::ScalarType> ok) {
  std::string s;
  for (auto t : ok) s += (s.empty() ? "" : " or ") + dtype_name(t);
  return s;
}

inline void check_dtype(const char* op, const char* name, const at::Tensor& t,
                        std::initializer_list<c10::ScalarType> ok) {
  for (auto d : ok) {
    if (t.scalar_type() == d) return;
  }
  TORCH_CHECK_TYPE(false, "greenops.", op, ": ", name, " must be ", dtype_list(ok), ", got ",
                   dtype_name(t.scalar_type()));
}

inline void check_shape(const char* op, const char* name, const at::Tensor& t,
                        c10::IntArrayRef expected, const char* why) {
  TORCH_CHECK_VALUE(t.sizes() == expected, "greenops.", op, ": ", name, " must have shape ", expected,
              " (", why, "), got ", t.sizes());
}

// bias [N] in a float dtype (also float64 where the op takes it: the CPU gradcheck path), or absent.
inline void check_bias(const char* op, const std::optional<at::Tensor>& bias, int64_t N,
                       bool allow_double = false) {
  if (!bias.has_value()) return;
  if (allow_double)
    check_dtype(op, "bias", *bias, {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble});
  else
    check_dtype(op, "bias", *bias, {at::kFloat, at::kHalf, at::kBFloat16});
  check_shape(op, "bias", *bias, {N}, "one value per output channel");
}

using NamedTensor = std::pair<const char*, const at::Tensor*>;

// Undefined tensors (absent optional arguments) are skipped.
inline void check_same_device(const char* op, std::initializer_list<NamedTensor> ts) {
  const NamedTensor& first = *ts.begin();
  for (const NamedTensor& t : ts) {
    if (!t.second->defined()) continue;
    TORCH_CHECK_VALUE(t.second->device() == first.second->device(), "greenops.", op,
                ": all tensors must be on one device; got ", first.first, " on ",
                first.second->device(), " and ", t.first, " on ", t.second->device());
  }
}

}  // namespace greenops
