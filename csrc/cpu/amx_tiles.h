// The AMX tile configuration (ldtilecfg's 64-byte operand, palette 1), shared by the AMX
// translation units (bsr_amx.cpp, amx_gemm.cpp, peaks.cpp). Data only: no code to merge across
// their targets.
#pragma once
#include <cstdint>

namespace greenops::cpu {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

}  // namespace greenops::cpu
