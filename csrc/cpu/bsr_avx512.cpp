// AVX-512 instantiation of the block-sparse kernels (bsr_tile.h); entered after run-time detection.
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include "bsr_kernels.h"

namespace greenops::cpu::bsr {
namespace {
#include "bsr_tile.h"
}  // namespace

void forward_avx512(const ForwardArgs& a, int64_t r_begin, int64_t r_end) { forward_impl(a, r_begin, r_end); }
void forward_bn_avx512(const ForwardArgs& a, int64_t r_begin, int64_t r_end) {
  forward_bn_impl(a, r_begin, r_end);
}
void forward_dot_avx512(const ForwardArgs& a, int64_t r_begin, int64_t r_end) {
  forward_dot_impl(a, r_begin, r_end);
}
void backward_x_avx512(const BackwardXArgs& a, int64_t c_begin, int64_t c_end) {
  backward_x_impl(a, c_begin, c_end);
}
void sddmm_avx512(const SddmmArgs& a, int64_t b_begin, int64_t b_end) { sddmm_impl(a, b_begin, b_end); }

}  // namespace greenops::cpu::bsr
#endif  // __x86_64__
