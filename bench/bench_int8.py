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
@pytest.mark.parametrize("impl", list(make_cases(Shape(1, 8, 8))))
def test_int8(benchmark, shape, impl):
    cases = make_cases(shape)
    if impl not in cases:
        pytest.skip(f"{impl} is not timed at M={shape.M}")
    fn = cases[impl]
    t0 = time.perf_counter()
    fn()
    benchmark.group = str(shape)
    benchmark.pedantic(fn, rounds=_rounds(time.perf_counter() - t0), warmup_rounds=1)


def _interleaved_medians(cases: dict, budget_s: float) -> dict:
    """Median seconds per case, timing the cases round-robin so that drift in a shared
    machine's speed (seen here: +-30% over minutes) hits ours and the baselines alike."""
    for fn in cases.values():
        fn()  # warm-up
    times: dict = {name: [] for name in cases}
    start = time.perf_counter()
    while min(len(t) for t in times.values()) < 3 or (
        time.perf_counter() - start < budget_s and min(len(t) for t in times.values()) < 50
    ):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def ceilings() -> dict:
    """This machine's measured ceilings: copy bandwidth (DRAM-sized and cache-sized, read +
    write bytes), cache-sized read bandwidth (a sum), and the best library matmuls at 2048^3."""
    big, small = torch.empty(2**27), torch.empty(2**22)  # 512 MiB, 16 MiB
    a8 = torch.randint(-127, 128, (2048, 2048), dtype=torch.int8)
    af = torch.randn(2048, 2048)
    ab = af.bfloat16()
    t = _interleaved_medians(
        {
            "copy_dram": lambda: big.clone(),
            "copy_cache": lambda: small.clone(),
            "read_cache": lambda: small.sum(),
            "int_mm": lambda: torch._int_mm(a8, a8),
            "fp32": lambda: af @ af,
            "bf16": lambda: ab @ ab,
        },
        budget_s=10,
    )
    flops = 2 * 2048**3
    return {
        "copy_dram_gbps": 2 * big.numel() * 4 / t["copy_dram"] / 1e9,
        "copy_cache_gbps": 2 * small.numel() * 4 / t["copy_cache"] / 1e9,
        "read_cache_gbps": small.numel() * 4 / t["read_cache"] / 1e9,
        "int8_tops": flops / t["int_mm"] / 1e12,
        "fp32_tflops": flops / t["fp32"] / 1e12,
        "bf16_tflops": flops / t["bf16"] / 1e12,
    }


def main(argv: list[str]) -> None:
    shapes = QUICK_SHAPES if "--quick" in argv else SHAPES
    budget = 2.0 if "--quick" in argv else 15.0
    ceil = ceilings()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, greenops CPU path "
        f"{greenops.info()['extension'].get('cpu_isa')}"
    )
    print(
        "ceilings: copy {copy_dram_gbps:.1f} GB/s (512 MiB) / {copy_cache_gbps:.1f} GB/s "
        "(16 MiB), read {read_cache_gbps:.1f} GB/s (16 MiB); int8 _int_mm {int8_tops:.2f} "
        "TOP/s, fp32 {fp32_tflops:.2f} TFLOP/s, "
        "bf16 {bf16_tflops:.2f} TFLOP/s at 2048^3".format(**ceil)
    )
    print("\n| shape | impl | ms | x fp32 | x int_mm+scale | x bf16 | GOP/s | weight GB/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for s in shapes:
        cases = make_cases(s)
        t = _interleaved_medians(cases, budget)
        for name, sec in t.items():
            wbytes = s.N * s.K * (4 if name == "fp32_matmul" else 2 if "bf16" in name else 1)
            print(
                f"| {s} | {name} | {sec * 1e3:.3f} | {t['fp32_matmul'] / sec:.2f} | "
                f"{t['int_mm+scale'] / sec:.2f} | {t['bf16_matmul'] / sec:.2f} | "
                f"{2 * s.M * s.N * s.K / sec / 1e9:.0f} | {wbytes / sec / 1e9:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
