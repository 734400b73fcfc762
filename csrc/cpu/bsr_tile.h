// The block-sparse micro-kernels, as templates: included inside an anonymous namespace by each
// ISA translation unit (bsr_avx512.cpp, bsr_scalar.cpp), so every instantiation stays in its
// own file and is compiled for that file's target. The includer first includes float_bits.h and
// defines widen16(src, kind, dst, n): n fp16/bf16 values to fp32. Fixed widths let the compiler keep the
// accumulators in vector registers.
//
// tile<W, MR>: for r < MR,
//   O[r*ldo + 0:W] = init[r] + sum over segments s, j < J of A_s[r*ar + j*aj] * B_s[j*ldb + 0:W]
// The accumulators stay in registers across all the segments (the blocks of one block row or
// column), so the output is written once.

struct Segment {
  const float* a;
  const float* b;
};

// A block as the packed kernels see it: its A operand, and the first row of its B operand.
struct BlockRef {
  const float* a;
  int64_t row0;
};


// kAhead: prefetch the next segment's operands, a step of it per step of this one, so a segment
// (~J * 12 cycles) ahead: its B is not next to this one's, so the hardware streamers miss it, and
// at 32x32 blocks each row tile paid an L2 miss at every segment's start (+14-18% speed, forward
// at 50% and 90% sparsity, M = 256). The last segment prefetches itself (lines it has: a few
// wasted loads), so that the loop stays one loop: with a second copy for the last segment, GCC
// kept the accumulators on the stack. Off for the single-segment callers (SDDMM).
template <int W, int MR, bool kAhead>
inline void tile(const Segment* segs, int64_t nseg, int64_t ar, int64_t aj, int64_t ldb, int64_t J,
                 float* O, int64_t ldo, const float* init, bool accumulate) {
  float acc[MR][W];
  for (int r = 0; r < MR; ++r) {
    const float v = init ? init[r] : 0.f;
#pragma GCC unroll 8
    for (int w = 0; w < W; ++w) acc[r][w] = accumulate ? O[r * ldo + w] : v;
  }
  for (int64_t s = 0; s < nseg; ++s) {
    const float* A = segs[s].a;
    const float* B = segs[s].b;
    const float* nA = segs[s + 1 < nseg ? s + 1 : s].a;
    const float* nB = segs[s + 1 < nseg ? s + 1 : s].b;
    for (int64_t j = 0; j < J; ++j) {
      const float* b = B + j * ldb;
      if (kAhead) {
#pragma GCC unroll 8
        for (int w = 0; w < W; w += 16) __builtin_prefetch(nB + j * ldb + w, 0, 3);
        if (aj != 1)
          __builtin_prefetch(nA + j * aj, 0, 3);  // row j of A: its MR values
        else if (j < MR)
          for (int64_t l = 0; l < J; l += 16) __builtin_prefetch(nA + j * ar + l, 0, 3);
      }
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const float a = A[r * ar + j * aj];
#pragma GCC unroll 8
        for (int w = 0; w < W; ++w) acc[r][w] += a * b[w];
      }
    }
  }
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int w = 0; w < W; ++w) O[r * ldo + w] = acc[r][w];
  }
}

// All R rows in register tiles of 6 (up to 24 accumulators of 16 floats at W = 64), then 4, 2, 1;
// 8 rows left go as 4 + 4, not 6 + 2 (a 2-row tile loads 4 vectors of B for 8 FMAs: at bn = 32 it
// took 12% of the time for 1/16 of the work).
// `shift` holds the segments with A advanced to the tile's first row.
template <int W, bool kAhead = true>
inline void rows(const Segment* segs, int64_t nseg, std::vector<Segment>& shift, int64_t R,
                 int64_t ar, int64_t aj, int64_t ldb, int64_t J, float* O, int64_t ldo,
                 const float* init, bool accumulate = false) {
  shift.resize(nseg);
  for (int64_t r = 0; r < R;) {
    const int64_t mr = R - r >= 6 && R - r != 8 ? 6 : R - r >= 4 ? 4 : R - r >= 2 ? 2 : 1;
    for (int64_t s = 0; s < nseg; ++s) shift[s] = {segs[s].a + r * ar, segs[s].b};
    float* o = O + r * ldo;
    const float* in = init ? init + r : nullptr;
    switch (mr) {
      case 6: tile<W, 6, kAhead>(shift.data(), nseg, ar, aj, ldb, J, o, ldo, in, accumulate); break;
      case 4: tile<W, 4, kAhead>(shift.data(), nseg, ar, aj, ldb, J, o, ldo, in, accumulate); break;
      case 2: tile<W, 2, kAhead>(shift.data(), nseg, ar, aj, ldb, J, o, ldo, in, accumulate); break;
      default: tile<W, 1, kAhead>(shift.data(), nseg, ar, aj, ldb, J, o, ldo, in, accumulate); break;
    }
    r += mr;
  }
}

// Every output column (a multiple of 16 wide) in strips of 64, then 32, then 16, with B row-major
// (row j at B + j*ldb).
inline void columns(const Segment* segs, int64_t nseg, int64_t R, int64_t ar, int64_t aj,
                    int64_t ldb, int64_t J, float* O, int64_t ldo, const float* init,
                    int64_t width) {
  thread_local std::vector<Segment> at, shift;
  at.resize(nseg);
  for (int64_t m0 = 0; m0 < width;) {
    const int64_t w = strip_width(width - m0);
    for (int64_t s = 0; s < nseg; ++s) at[s] = {segs[s].a, segs[s].b + m0};
    if (w == 64) rows<64, false>(at.data(), nseg, shift, R, ar, aj, ldb, J, O + m0, ldo, init);
    if (w == 32) rows<32, false>(at.data(), nseg, shift, R, ar, aj, ldb, J, O + m0, ldo, init);
    if (w == 16) rows<16, false>(at.data(), nseg, shift, R, ar, aj, ldb, J, O + m0, ldo, init);
    m0 += w;
  }
}

// The same with B packed in strips (pack_strips): strip m0 holds rows of its width w
// contiguously, so a block's rows sit in one short contiguous run (the row-major layout spread
// them a whole row of M apart: a TLB miss every few rows, half the speed at K = 4096).
// Blocks are taken kKc at a time so that their strips stay in L2; later chunks accumulate into
// what the first wrote to O.
constexpr int64_t kKc = 16;

inline void columns_packed(const BlockRef* blocks, int64_t nseg, int64_t R, int64_t ar, int64_t aj,
                           const float* packed, int64_t rows_total, int64_t J, float* O,
                           int64_t ldo, const float* init, int64_t width) {
  thread_local std::vector<Segment> at, shift;
  for (int64_t m0 = 0; m0 < width;) {
    const int64_t w = strip_width(width - m0);
    const float* strip = packed + m0 * rows_total;
    // At least one pass, so that a row or column without blocks still writes its init.
    for (int64_t s0 = 0; s0 == 0 || s0 < nseg; s0 += kKc) {
      const int64_t n = std::min(kKc, nseg - s0);
      at.resize(n);
      for (int64_t s = 0; s < n; ++s) at[s] = {blocks[s0 + s].a, strip + blocks[s0 + s].row0 * w};
      const bool first = s0 == 0;
      float* o = O + m0;
      const float* in = first ? init : nullptr;
      if (w == 64) rows<64>(at.data(), n, shift, R, ar, aj, w, J, o, ldo, in, !first);
      if (w == 32) rows<32>(at.data(), n, shift, R, ar, aj, w, J, o, ldo, in, !first);
      if (w == 16) rows<16>(at.data(), n, shift, R, ar, aj, w, J, o, ldo, in, !first);
    }
    m0 += w;
  }
}

// Block row R_'s blocks as the float kernels read them: float blocks as stored (no copy) unless
// transposed; otherwise (int8 blocks: times their rows' scales; fp16/bf16: widened; transposed:
// [bk, bn] each) written into a per-thread buffer that the kernels then read while it is in
// cache. Returns where block b of the row sits, minus b0 * bn * bk (block b at the result +
// b * bn * bk, as in `values`).
inline const float* row_blocks(const ForwardArgs& a, int64_t R_, bool transposed) {
  if (!a.qvalues && !a.hvalues && !transposed) return a.values;
  thread_local std::vector<float> buf, row;
  const Dims& d = a.d;
  const int64_t b0 = a.crow[R_], nb = a.crow[R_ + 1] - b0, bs = d.bn * d.bk;
  buf.resize(std::max<int64_t>(nb * bs, 1));
  if (a.hvalues && !transposed) {  // the row's blocks are contiguous: one run
    widen16(a.hvalues + b0 * bs, a.hkind, buf.data(), nb * bs);
    return buf.data() - b0 * bs;
  }
  row.resize(d.bk);
  for (int64_t b = 0; b < nb; ++b) {
    float* o = buf.data() + b * bs;
    for (int64_t i = 0; i < d.bn; ++i) {
      const int64_t ldo = transposed ? 1 : d.bk, step = transposed ? d.bn : 1;
      float* oi = o + i * ldo;
      const int64_t at = (b0 + b) * bs + i * d.bk;
      if (a.qvalues) {
        const float s = a.scales[R_ * d.bn + i];
        for (int64_t k = 0; k < d.bk; ++k) oi[k * step] = s * static_cast<float>(a.qvalues[at + k]);
      } else {
        if (a.hvalues) widen16(a.hvalues + at, a.hkind, row.data(), d.bk);
        const float* v = a.hvalues ? row.data() : a.values + at;
        for (int64_t k = 0; k < d.bk; ++k) oi[k * step] = v[k];
      }
    }
  }
  return buf.data() - b0 * bs;
}

// Forward, M along the vector lanes, for block rows [r_begin, r_end): each block row's outT
// [bn, mp] in a per-thread buffer, then into out while in cache (a separate pass over the
// whole outT [N, mp] afterwards cost ~0.5 ms at M = 256, N = 4096: a tenth of a 90%-sparse call).
inline void forward_impl(const ForwardArgs& a, int64_t r_begin, int64_t r_end) {
  const Dims& d = a.d;
  thread_local std::vector<BlockRef> blocks;
  thread_local std::vector<float> ot;
  ot.resize(d.bn * a.mp);
  for (int64_t R_ = r_begin; R_ < r_end; ++R_) {
    const float* values = row_blocks(a, R_, false);
    blocks.clear();
    for (int64_t b = a.crow[R_]; b < a.crow[R_ + 1]; ++b)
      blocks.push_back({values + b * d.bn * d.bk, a.col[b] * d.bk});
    columns_packed(blocks.data(), int64_t(blocks.size()), d.bn, d.bk, 1, a.xt, d.K, d.bk, ot.data(),
                   a.mp, a.bias ? a.bias + R_ * d.bn : nullptr, a.mp);
    store_transposed(ot.data(), d.bn, a.mp, d.M, a.out + R_ * d.bn, d.N, a.transpose16);
  }
}

// Forward for many rows of x, the output channels (bn) along the lanes: x and out are used as
// they are (no transposes), each block row's blocks transposed ([bk, bn]) into cache by
// row_blocks; out rows start at the bias.
inline void forward_bn_impl(const ForwardArgs& a, int64_t r_begin, int64_t r_end) {
  const Dims& d = a.d;
  thread_local std::vector<Segment> segs, shift;
  for (int64_t R_ = r_begin; R_ < r_end; ++R_) {
    const float* vt = row_blocks(a, R_, true);
    float* out = a.out + R_ * d.bn;
    for (int64_t m = 0; m < d.M; ++m)
      for (int64_t i = 0; i < d.bn; ++i) out[m * d.N + i] = a.bias ? a.bias[R_ * d.bn + i] : 0.f;
    for (int64_t h = 0; h < d.bn; h += 64) {  // 64 lanes at a time (bn = 128: two halves)
      const int64_t w = std::min<int64_t>(d.bn - h, 64);
      for (int64_t s0 = a.crow[R_]; s0 < a.crow[R_ + 1]; s0 += kKc) {
        const int64_t n = std::min(kKc, a.crow[R_ + 1] - s0);
        segs.resize(n);
        for (int64_t s = 0; s < n; ++s)
          segs[s] = {a.x + a.col[s0 + s] * d.bk, vt + (s0 + s) * d.bk * d.bn + h};
        if (w == 64) rows<64>(segs.data(), n, shift, d.M, d.K, 1, d.bn, d.bk, out + h, d.N, nullptr, true);
        if (w == 32) rows<32>(segs.data(), n, shift, d.M, d.K, 1, d.bn, d.bk, out + h, d.N, nullptr, true);
        if (w == 16) rows<16>(segs.data(), n, shift, d.M, d.K, 1, d.bn, d.bk, out + h, d.N, nullptr, true);
      }
    }
  }
}

// dX, M along the lanes, for column blocks [c_begin, c_end): each one's dxT [bk, mp] in a
// per-thread buffer, then into dx[:, c*bk : (c+1)*bk] while in cache.
inline void backward_x_impl(const BackwardXArgs& a, int64_t c_begin, int64_t c_end) {
  const Dims& d = a.d;
  thread_local std::vector<BlockRef> blocks;
  thread_local std::vector<float> ot;
  ot.resize(d.bk * a.mp);
  thread_local std::vector<float> wide;  // fp16/bf16 blocks: this column block's, widened
  const int64_t bs = d.bn * d.bk;
  for (int64_t c = c_begin; c < c_end; ++c) {
    blocks.clear();
    if (a.hvalues) wide.resize(std::max<int64_t>((a.t_crow[c + 1] - a.t_crow[c]) * bs, 1));
    for (int64_t j = a.t_crow[c]; j < a.t_crow[c + 1]; ++j) {
      float* w = a.hvalues ? wide.data() + (j - a.t_crow[c]) * bs : nullptr;
      if (w) widen16(a.hvalues + a.t_block[j] * bs, a.hkind, w, bs);
      blocks.push_back({w ? w : a.values + a.t_block[j] * bs, a.t_row[j] * d.bn});
    }
    columns_packed(blocks.data(), int64_t(blocks.size()), d.bk, 1, d.bk, a.dyt, d.N, d.bn, ot.data(),
                   a.mp, nullptr, a.mp);
    store_transposed(ot.data(), d.bk, a.mp, d.M, a.dx + c * d.bk, d.K, a.transpose16);
  }
}

// dV_b[i, 0:bk] = sum_m dy[m, r_b*bn + i] * x[m, c_b*bk + 0:bk], blocks [b_begin, b_end), from
// the packed dy and x (SddmmArgs).
inline void sddmm_impl(const SddmmArgs& a, int64_t b_begin, int64_t b_end) {
  const Dims& d = a.d;
  for (int64_t b = b_begin; b < b_end; ++b) {
    const Segment s{a.dy + a.row[b] * d.M * d.bn, a.x + a.col[b] * d.M * d.bk};
    // A: row i is column i of the block row's [M, bn] (stride 1 between rows, bn between j = m);
    // B: the block column's [M, bk]
    columns(&s, 1, d.bn, 1, d.bn, d.bk, d.M, a.dv + b * d.bn * d.bk, d.bk, nullptr, d.bk);
  }
}

// A bf16 weight as the dot kernel reads it: its bits moved up are the fp32 value (the compiler
// turns a row of them into vpmovzxwd + vpslld). fp16 has no such trick and goes through
// row_blocks.
struct Bf16 {
  uint16_t bits;
  operator float() const {
    const uint32_t b = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
};

// Forward for a few rows of x, K along the lanes: out[m, R_*bn + i] = sum over the row's blocks
// of dot(V_b[i, :], x[m, c_b*bk : +bk]); no transposes at all. MM rows of x share each weight
// vector, so a block is read (and, int8, converted) once for all of them: V is float (the
// blocks as stored), Bf16 or int8 (converted in registers; int8's sum scaled per output channel).
template <int BK, int MR, int MM, typename V>
inline void dot_tile(const ForwardArgs& a, const V* values, const float* scales, int64_t R_,
                     int64_t i0, int64_t m0, float* out) {
  const Dims& d = a.d;
  float acc[MM][MR][BK] = {};
  for (int64_t b = a.crow[R_]; b < a.crow[R_ + 1]; ++b) {
    const V* v = values + b * d.bn * BK + i0 * BK;
    const float* x = a.x + m0 * d.K + a.col[b] * BK;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
      for (int mm = 0; mm < MM; ++mm) {
        // the conversion is the same for every mm: after unrolling, the compiler does it once
#pragma GCC unroll 8
        for (int k = 0; k < BK; ++k)
          acc[mm][r][k] += static_cast<float>(v[r * BK + k]) * x[mm * d.K + k];
      }
    }
  }
  for (int mm = 0; mm < MM; ++mm)
    for (int r = 0; r < MR; ++r) {
      const int64_t n = R_ * d.bn + i0 + r;
      float s = 0.f;
      for (int k = 0; k < BK; ++k) s += acc[mm][r][k];
      if (scales) s *= scales[n];
      out[(m0 + mm) * d.N + n] = (a.bias ? a.bias[n] : 0.f) + s;
    }
}

// MR rows of W per tile: the largest power of two (it must divide bn) up to 8 with MR x MM x BK
// <= 256 floats (16 accumulators of 16), at least 1.
template <int BK, int MM>
constexpr int dot_rows() {
  int mr = 8;
  while (mr > 1 && mr * MM * BK > 256) mr /= 2;
  return mr;
}

template <int BK, int MM, typename V>
inline void dot_rows_of_x(const ForwardArgs& a, const V* values, const float* scales, int64_t R_,
                          int64_t m0) {
  constexpr int MR = dot_rows<BK, MM>();
  static_assert(16 % MR == 0, "MR must divide every block size");
  for (int64_t i0 = 0; i0 < a.d.bn; i0 += MR)
    dot_tile<BK, MR, MM>(a, values, scales, R_, i0, m0, a.out);
}

template <int BK, typename V>
inline void forward_dot_rows(const ForwardArgs& a, const V* values, const float* scales,
                             int64_t R_) {
  constexpr int64_t kMaxMM = BK == 128 ? 2 : 4;  // 4 x 128 lanes would not fit the registers
  for (int64_t m0 = 0; m0 < a.d.M;) {
    const int64_t mm = std::min(kMaxMM, a.d.M - m0);
    switch (mm) {
      case 1: dot_rows_of_x<BK, 1>(a, values, scales, R_, m0); break;
      case 2: dot_rows_of_x<BK, 2>(a, values, scales, R_, m0); break;
      case 3: dot_rows_of_x<BK, 3>(a, values, scales, R_, m0); break;
      default: dot_rows_of_x<BK, (kMaxMM > 2 ? 4 : 2)>(a, values, scales, R_, m0); break;
    }
    m0 += mm;
  }
}

template <int BK>
inline void forward_dot(const ForwardArgs& a, int64_t r_begin, int64_t r_end) {
  for (int64_t R_ = r_begin; R_ < r_end; ++R_) {
    if (a.qvalues)
      forward_dot_rows<BK>(a, a.qvalues, a.scales, R_);
    else if (a.hvalues && a.hkind == FloatKind::BF16)
      forward_dot_rows<BK>(a, reinterpret_cast<const Bf16*>(a.hvalues), nullptr, R_);
    else  // fp32 blocks as stored; fp16: the row widened in cache first (row_blocks)
      forward_dot_rows<BK>(a, row_blocks(a, R_, false), nullptr, R_);
  }
}

inline void forward_dot_impl(const ForwardArgs& a, int64_t r_begin, int64_t r_end) {
  switch (a.d.bk) {
    case 16: return forward_dot<16>(a, r_begin, r_end);
    case 32: return forward_dot<32>(a, r_begin, r_end);
    case 64: return forward_dot<64>(a, r_begin, r_end);
    default: return forward_dot<128>(a, r_begin, r_end);
  }
}
