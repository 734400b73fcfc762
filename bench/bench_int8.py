"""int8 ops against their baselines on CPU, timed side by side (pytest-benchmark, medians).

    pytest bench/bench_int8.py --benchmark-only [--benchmark-json out.json]
    python bench/bench_int8.py [--quick]     # the same, as one ratio table

Shapes: M in {1, 16, 256, 2048} x (N, K) in {(4096, 4096), (11008, 4096)} (Llama-7B q/o and
up/gate projections). Baselines: fp32 / bf16 torch.matmul, torch._int_mm + a separate scaling
pass, torch's W8A16 op aten._weight_int8pack_mm. The same weight is reused across calls, so on
a CPU with a large L3 these are cache-resident figures (see docs/kernels.md).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time

import pytest
import torch

import greenops


@dataclasses.dataclass(frozen=True)
class Shape:
    M: int
    N: int
    K: int

    def __str__(self) -> str:
        return f"M{self.M}-N{self.N}-K{self.K}"


SHAPES = [Shape(M, N, K) for N, K in [(4096, 4096), (11008, 4096)] for M in (1, 16, 256, 2048)]
QUICK_SHAPES = [Shape(1, 1024, 1024), Shape(64, 1024, 1024)]


def make_cases(s: Shape) -> dict:
    """name -> zero-arg callable; all share one set of inputs."""
    torch.manual_seed(0)
    x = torch.randn(s.M, s.K)
    w = torch.randn(s.N, s.K)
    a_q, a_s = greenops.quantize_int8(x)
    w_q, w_s = greenops.quantize_int8(w)
    xb, wb = x.bfloat16(), w.bfloat16()
    cases = {
        "fp32_matmul": lambda: x @ w.T,
        "bf16_matmul": lambda: xb @ wb.T,
        "int_mm+scale": lambda: torch._int_mm(a_q, w_q.T).float() * a_s[:, None] * w_s,
        "greenops.int8_mm": lambda: greenops.int8_mm(a_q, a_s, w_q, w_s),
        "greenops.quantize+int8_mm": lambda: greenops.int8_mm(*greenops.quantize_int8(x), w_q, w_s),
        "greenops.int8_weight_mm": lambda: greenops.int8_weight_mm(x, w_q, w_s),
        "greenops.int8_weight_mm_bf16": lambda: greenops.int8_weight_mm(xb, w_q, w_s),
    }
    if s.M <= 16:  # torch's W8A16 CPU op: ~60x slower than fp32 at M=16, hours for the big shapes
        cases["weight_int8pack_mm"] = lambda: torch.ops.aten._weight_int8pack_mm(x, w_q, w_s)
    return cases


def _rounds(seconds_per_call: float) -> int:
    return max(3, min(50, int(2.0 / max(seconds_per_call, 1e-6))))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("impl", list(make_cases(Shape(1, 8, 8))) + ["weight_int8pack_mm"])
def test_int8(benchmark, shape, impl):
    cases = make_cases(shape)
    if impl not in cases:
        pytest.skip(f"{impl} is not timed at M={shape.M}")
    fn = cases[impl]
    t0 = time.perf_counter()
    fn()
    benchmark.group = str(shape)
    benchmark.pedantic(fn, rounds=_rounds(time.perf_counter() - t0), warmup_rounds=1)


def _median_s(fn) -> float:
    fn()
    t0 = time.perf_counter()
    fn()
    n = _rounds(time.perf_counter() - t0)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(argv: list[str]) -> None:
    shapes = QUICK_SHAPES if "--quick" in argv else SHAPES
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"greenops CPU path {greenops.info()['extension'].get('cpu_isa')}"
    )
    for s in shapes:
        times = {name: _median_s(fn) for name, fn in make_cases(s).items()}
        flops = 2 * s.M * s.N * s.K
        print(f"\n{s}")
        for name, t in times.items():
            print(
                f"  {name:<30} {t * 1e3:10.3f} ms  {flops / t / 1e9:8.1f} GFLOP/s  "
                f"x fp32 {times['fp32_matmul'] / t:6.2f}  x int_mm+scale "
                f"{times['int_mm+scale'] / t:6.2f}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
