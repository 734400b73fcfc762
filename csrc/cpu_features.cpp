#include "cpu_features.h"

#include <atomic>
#include <stdexcept>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace greenops::cpu {
namespace {

// AMX tiles (int8 and bf16) need the CPU's support and, on Linux, the process's permission to
// use their state (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA: granted once, process-wide).
bool amx_permitted() {
#if defined(__linux__) && defined(__x86_64__)
  if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-int8") ||
      !__builtin_cpu_supports("amx-bf16")) {
    return false;
  }
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

Isa probe() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // AVX-512 path needs F + BW (byte ops) + VL + VNNI (vpdpbusd); AVX2 path needs FMA and F16C.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")) {
    if (!__builtin_cpu_supports("avx512bf16")) return Isa::Avx512Vnni;
    return amx_permitted() ? Isa::Avx512Amx : Isa::Avx512Bf16;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    return Isa::Avx2;
  }
#endif
  return Isa::Scalar;
}

std::atomic<int> g_active{-1};

}  // namespace

Isa detected_isa() {
  static const Isa isa = probe();
  return isa;
}

Isa active_isa() {
  int v = g_active.load(std::memory_order_relaxed);
  return v < 0 ? detected_isa() : static_cast<Isa>(v);
}

void set_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(detected_isa())) {
    throw std::invalid_argument(std::string("greenops: this CPU does not support the ") +
                                isa_name(isa) + " path (best: " + isa_name(detected_isa()) + ")");
  }
  g_active.store(static_cast<int>(isa), std::memory_order_relaxed);
}

void reset_isa() { g_active.store(-1, std::memory_order_relaxed); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512Amx: return "avx512_amx";
    case Isa::Avx512Bf16: return "avx512_bf16";
    case Isa::Avx512Vnni: return "avx512_vnni";
    case Isa::Avx2: return "avx2";
    case Isa::Scalar: return "scalar";
  }
  return "?";
}

Isa isa_from_name(const std::string& name) {
  if (name == "auto") return detected_isa();
  for (Isa isa : {Isa::Avx512Amx, Isa::Avx512Bf16, Isa::Avx512Vnni, Isa::Avx2, Isa::Scalar}) {
    if (name == isa_name(isa)) return isa;
  }
  throw std::invalid_argument("greenops: unknown CPU ISA path '" + name +
                              "' (expected avx512_amx, avx512_bf16, avx512_vnni, avx2, scalar or "
                              "auto)");
}

}  // namespace greenops::cpu
