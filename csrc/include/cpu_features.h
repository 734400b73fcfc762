// Run-time CPU feature detection: one build runs on any x86-64 (and takes the portable path
// on other architectures). Torch-free so kernel translation units can include it.
#pragma once
#include <string>

namespace greenops::cpu {

// Ordered: a higher value may use every instruction of a lower one.
// Avx512Bf16: Avx512Vnni plus AVX512-BF16 (vdpbf16ps; AMD Zen 4/5 and Xeons without AMX).
// Avx512Amx: Avx512Bf16 plus AMX tiles (int8, bf16), the OS's permission for them granted.
enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512Vnni = 2, Avx512Bf16 = 3, Avx512Amx = 4 };

Isa detected_isa();                 // best path this CPU supports (probed once)
Isa active_isa();                   // what kernels use now: detected unless capped by set_isa
void set_isa(Isa isa);              // caps the path (tests run every path); throws if unsupported
void reset_isa();                   // back to detected
const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);  // "auto" means detected

// GOP/s of one instruction's register-resident loop on all threads (cpu/peaks.cpp): "fma",
// "vnni" (vpdpbusd), "bf16dot" (vdpbf16ps), "amx_bf16", "amx_int8"; negative where the CPU
// lacks it. The benchmarks' hardware ceilings.
double peak_gops(const std::string& kind, double seconds);

}  // namespace greenops::cpu
