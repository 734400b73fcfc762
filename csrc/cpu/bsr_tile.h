// The one block-sparse micro-kernel, as templates: included inside an anonymous namespace by
// each ISA translation unit (bsr_avx512.cpp, bsr_scalar.cpp), so every instantiation stays in
// its own file and is compiled for that file's target. Fixed widths let the compiler keep the
// accumulators in vector registers.
//
// tile<W, MR>: O[r, 0:W] (+)= sum_{j < J} A[r*lda + j] * B[j*ldb + 0:W] for r < MR.

template <int W, int MR>
inline void tile(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t J, float* O,
                 int64_t ldo, bool accumulate) {
  float acc[MR][W];
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int w = 0; w < W; ++w) acc[r][w] = accumulate ? O[r * ldo + w] : 0.f;
  }
  for (int64_t j = 0; j < J; ++j) {
    const float* b = B + j * ldb;
    for (int r = 0; r < MR; ++r) {
      const float a = A[r * lda + j];
#pragma GCC unroll 8
      for (int w = 0; w < W; ++w) acc[r][w] += a * b[w];
    }
  }
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int w = 0; w < W; ++w) O[r * ldo + w] = acc[r][w];
  }
}

// Rows per register tile for a width: about 16 accumulators of 16 floats.
template <int W>
constexpr int rows_for() {
  return W <= 16 ? 8 : W <= 32 ? 6 : W <= 64 ? 3 : 1;
}

// All R rows (any count) in tiles of rows_for<W>() rows, the tail one row at a time.
template <int W>
inline void rows(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t J, float* O,
                 int64_t ldo, int64_t R, bool accumulate) {
  constexpr int MR = rows_for<W>();
  int64_t r = 0;
  for (; r + MR <= R; r += MR) tile<W, MR>(A + r * lda, lda, B, ldb, J, O + r * ldo, ldo, accumulate);
  for (; r < R; ++r) tile<W, 1>(A + r * lda, lda, B, ldb, J, O + r * ldo, ldo, accumulate);
}

// Dispatch on the run-time width (a block size: 16, 32, 64 or 128).
inline void rows_any(int64_t W, const float* A, int64_t lda, const float* B, int64_t ldb,
                     int64_t J, float* O, int64_t ldo, int64_t R, bool accumulate) {
  switch (W) {
    case 16: return rows<16>(A, lda, B, ldb, J, O, ldo, R, accumulate);
    case 32: return rows<32>(A, lda, B, ldb, J, O, ldo, R, accumulate);
    case 64: return rows<64>(A, lda, B, ldb, J, O, ldo, R, accumulate);
    default: return rows<128>(A, lda, B, ldb, J, O, ldo, R, accumulate);
  }
}

// The three kernels over that micro-kernel.
inline void forward_impl(const ForwardArgs& a, int64_t r_begin, int64_t r_end) {
  const Dims& d = a.d;
  for (int64_t r = r_begin; r < r_end; ++r) {
    float* out = a.out + r * d.bn;
    if (a.bias) {
      for (int64_t m = 0; m < d.M; ++m)
        for (int64_t i = 0; i < d.bn; ++i) out[m * d.N + i] = a.bias[r * d.bn + i];
    } else {
      for (int64_t m = 0; m < d.M; ++m)
        for (int64_t i = 0; i < d.bn; ++i) out[m * d.N + i] = 0.f;
    }
    for (int64_t b = a.crow[r]; b < a.crow[r + 1]; ++b) {
      rows_any(d.bn, a.x + a.col[b] * d.bk, d.K, a.vt + b * d.bk * d.bn, d.bn, d.bk, out, d.N, d.M,
               true);
    }
  }
}

inline void backward_x_impl(const BackwardXArgs& a, int64_t c_begin, int64_t c_end) {
  const Dims& d = a.d;
  for (int64_t c = c_begin; c < c_end; ++c) {
    float* dx = a.dx + c * d.bk;
    for (int64_t m = 0; m < d.M; ++m)
      for (int64_t k = 0; k < d.bk; ++k) dx[m * d.K + k] = 0.f;
    for (int64_t j = a.t_crow[c]; j < a.t_crow[c + 1]; ++j) {
      rows_any(d.bk, a.dy + a.t_row[j] * d.bn, d.N, a.values + a.t_block[j] * d.bn * d.bk, d.bk,
               d.bn, dx, d.K, d.M, true);
    }
  }
}

inline void sddmm_impl(const SddmmArgs& a, int64_t b_begin, int64_t b_end) {
  const Dims& d = a.d;
  for (int64_t b = b_begin; b < b_end; ++b) {
    rows_any(d.bk, a.dyt + a.row[b] * d.bn * d.M, d.M, a.x + a.col[b] * d.bk, d.K, d.M,
             a.dv + b * d.bn * d.bk, d.bk, d.bn, false);
  }
}
