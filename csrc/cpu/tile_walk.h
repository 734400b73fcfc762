// Register-tile walkers shared by the ISA translation units. Included inside an anonymous
// namespace by each of them, so every copy is compiled for its own target and never shared
// across targets by the linker.
#pragma once

// A compile-time int carried by value into generic lambdas (std::integral_constant's job; no
// std header may be included inside the namespace this file lands in).
template <int V>
struct Int {
  static constexpr int value = V;
};

// Calls f(Int<MB>{}, m0) over [0, M) in tiles of 4 rows, then one
// narrower tile for the remainder, so MB is a compile-time constant inside f.
template <class F>
void walk_m(int64_t M, F&& f) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) f(Int<4>{}, m);
  switch (M - m) {
    case 3: f(Int<3>{}, m); break;
    case 2: f(Int<2>{}, m); break;
    case 1: f(Int<1>{}, m); break;
    default: break;
  }
}

// Tile<NB>::run(args, n0) over [n_begin, n_end) in tiles of 4 weight rows (narrower at the end).
template <template <int> class Tile, class Args>
void walk_n(const Args& p, int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  for (; n + 4 <= n_end; n += 4) Tile<4>::run(p, n);
  switch (n_end - n) {
    case 3: Tile<3>::run(p, n); break;
    case 2: Tile<2>::run(p, n); break;
    case 1: Tile<1>::run(p, n); break;
    default: break;
  }
}

// The common case: every m-tile of an n-tile is independent, Tile2<MB, NB>::run(p, m0, n0).
template <template <int, int> class Tile2>
struct EachM {
  template <int NB>
  struct Tile {
    template <class Args>
    static void run(const Args& p, int64_t n0) {
      walk_m(p.M, [&](auto mb, int64_t m0) { Tile2<decltype(mb)::value, NB>::run(p, m0, n0); });
    }
  };
};
