// Argument checks of the int4 ops, shared by their C++ impls. Python twins: greenops/ops/int4.py.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>

#include "checks.h"

namespace greenops {

// group_size: 32, 64, 128, 256, or K (per channel); K even and a multiple of the group.
inline void check_int4_group(const char* op, int64_t K, int64_t group_size) {
  TORCH_CHECK_VALUE(K % 2 == 0, "greenops.", op, ": K must be even (two int4 values per byte), got K=", K);
  TORCH_CHECK_VALUE(group_size == 32 || group_size == 64 || group_size == 128 || group_size == 256 ||
                        (group_size == K && K > 0),
                    "greenops.", op, ": group_size must be 32, 64, 128, 256 or K (=", K,
                    ", per channel), got ", group_size);
  TORCH_CHECK_VALUE(K % group_size == 0, "greenops.", op, ": K=", K,
                    " is not a multiple of group_size=", group_size);
}

// scales [N, G] float32, zeros like scales or absent.
inline void check_int4_scales(const char* op, const at::Tensor& scales,
                              const std::optional<at::Tensor>& zeros, int64_t N, int64_t G) {
  check_dtype(op, "scales", scales, {at::kFloat});
  check_shape(op, "scales", scales, {N, G}, "[N, K/group_size]: one scale per group");
  if (zeros.has_value()) {
    check_dtype(op, "zeros", *zeros, {at::kFloat});
    check_shape(op, "zeros", *zeros, {N, G}, "[N, K/group_size]: one zero point per group");
  }
}

// packed [N, K/2] uint8, scales [N, K/group] float32, zeros like scales or absent; returns N.
inline int64_t check_int4_weight(const char* op, const at::Tensor& packed, const at::Tensor& scales,
                                 const std::optional<at::Tensor>& zeros, int64_t group_size,
                                 int64_t K) {
  check_dtype(op, "packed", packed, {at::kByte});
  TORCH_CHECK_VALUE(packed.dim() == 2, "greenops.", op, ": packed must be 2-D [N, K/2], got shape ",
                    packed.sizes());
  check_int4_group(op, K, group_size);
  const int64_t N = packed.size(0);
  TORCH_CHECK_VALUE(packed.size(1) * 2 == K, "greenops.", op, ": the activation has K=", K,
                    " but packed holds K=", packed.size(1) * 2, " (packed is [N, K/2] = ",
                    packed.sizes(), ")");
  check_int4_scales(op, scales, zeros, N, K / group_size);
  return N;
}

}  // namespace greenops
