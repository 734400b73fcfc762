// The fixed-point int4 gemv's loop order (int4_kernels.h, FixedArgs), shared by the ISA files:
// included inside their anonymous namespace, after their row kernel fixed_rows<P, SPG, MB>(a,
// m0, n, c0, c1) (rows m0 .. m0 + MB - 1 of x times weight row n over chunks [c0, c1); the first
// slice writes out with the bias and zero-point terms, later ones add to it). P: digits of x;
// SPG: weight groups per 128-element chunk (1: group >= 128 or a single group; 2: 64; 4: 32).

template <int P, int SPG>
void fixed_loops(const FixedArgs& a, int64_t n_begin, int64_t n_end) {
  // x's digits and scales (P * 128 + 64 bytes a chunk) are re-read for every weight row and must
  // stay in L1 beside the weight stream: K is cut into slices whose x (one block of rows) takes
  // ~24 KiB (AVX-512, P = 3 at K = 14336: 12 GB/s unsliced, 19 sliced), and blocks of x rows go
  // innermost over a tile of weight rows that stays in L2 (~256 KiB), so the weight comes from
  // memory once.
  const int64_t chunks = fixed_chunks(a.K);
  const int64_t slice = std::max<int64_t>(1, (24 << 10) / (std::min<int64_t>(a.M, 2) * (P * kFixedChunk + 64)));
  const int64_t tile = std::max<int64_t>(1, (256 << 10) / std::max<int64_t>(1, a.K / 2));
  for (int64_t n0 = n_begin; n0 < n_end; n0 += tile) {
    const int64_t n1 = std::min(n_end, n0 + tile);
    for (int64_t c0 = 0; c0 < chunks; c0 += slice) {
      const int64_t c1 = std::min(chunks, c0 + slice);
      int64_t m0 = 0;
      for (; m0 + 2 <= a.M; m0 += 2)
        for (int64_t n = n0; n < n1; ++n) fixed_rows<P, SPG, 2>(a, m0, n, c0, c1);
      if (m0 < a.M)
        for (int64_t n = n0; n < n1; ++n) fixed_rows<P, SPG, 1>(a, m0, n, c0, c1);
    }
  }
}

template <int P>
void fixed_loops_p(const FixedArgs& a, int64_t n_begin, int64_t n_end) {
  const int64_t G = a.K / a.group;
  if (G == 1 || a.group >= kFixedChunk) return fixed_loops<P, 1>(a, n_begin, n_end);
  if (a.group == 64) return fixed_loops<P, 2>(a, n_begin, n_end);
  return fixed_loops<P, 4>(a, n_begin, n_end);  // group 32
}

void fixed_gemv(const FixedArgs& a, int64_t n_begin, int64_t n_end) {
  if (a.P == 3) return fixed_loops_p<3>(a, n_begin, n_end);
  return fixed_loops_p<2>(a, n_begin, n_end);
}
