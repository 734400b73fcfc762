// Walks an [M, n_begin:n_end) output block in register tiles of up to 4 x 4, with narrower
// tiles for the remainders. Tile<MB, NB>::run(args, m0, n0) computes one tile.
// Included inside an anonymous namespace by each ISA translation unit, so every copy is
// compiled for its own target and never shared across targets by the linker.
#pragma once

template <template <int, int> class Tile, int NB, class Args>
void walk_m(const Args& p, int64_t n0) {
  int64_t m = 0;
  for (; m + 4 <= p.M; m += 4) Tile<4, NB>::run(p, m, n0);
  switch (p.M - m) {
    case 3: Tile<3, NB>::run(p, m, n0); break;
    case 2: Tile<2, NB>::run(p, m, n0); break;
    case 1: Tile<1, NB>::run(p, m, n0); break;
    default: break;
  }
}

template <template <int, int> class Tile, class Args>
void walk(const Args& p, int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  for (; n + 4 <= n_end; n += 4) walk_m<Tile, 4>(p, n);
  switch (n_end - n) {
    case 3: walk_m<Tile, 3>(p, n); break;
    case 2: walk_m<Tile, 2>(p, n); break;
    case 1: walk_m<Tile, 1>(p, n); break;
    default: break;
  }
}
