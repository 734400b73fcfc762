// Portable instantiation of the block-sparse kernels (bsr_tile.h).
#include "bsr_kernels.h"
#include "float_bits.h"

namespace greenops::cpu::bsr {
namespace {
void widen16(const uint16_t* src, FloatKind kind, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load(src, kind, i);
}
#include "bsr_tile.h"
}  // namespace

int64_t strip_width(int64_t left) { return left >= 64 ? 64 : left >= 32 ? 32 : 16; }

void forward_scalar(const ForwardArgs& a, int64_t r_begin, int64_t r_end) { forward_impl(a, r_begin, r_end); }
void forward_bn_scalar(const ForwardArgs& a, int64_t r_begin, int64_t r_end) {
  forward_bn_impl(a, r_begin, r_end);
}
void forward_dot_scalar(const ForwardArgs& a, int64_t r_begin, int64_t r_end) {
  forward_dot_impl(a, r_begin, r_end);
}
void backward_x_scalar(const BackwardXArgs& a, int64_t c_begin, int64_t c_end) {
  backward_x_impl(a, c_begin, c_end);
}
void sddmm_scalar(const SddmmArgs& a, int64_t b_begin, int64_t b_end) { sddmm_impl(a, b_begin, b_end); }

void transpose16_scalar(const float* src, int64_t lds, float* dst, int64_t ldd) {
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) dst[i * ldd + j] = src[j * lds + i];
}

}  // namespace greenops::cpu::bsr

