// The float dtypes the CPU kernels read and write, named without torch.
#pragma once

namespace greenops::cpu {

enum class FloatKind : int { F32 = 0, F16 = 1, BF16 = 2 };

}  // namespace greenops::cpu
