"""int4 (W4A16, group 128) against its baselines on CPU, with pytest-benchmark, and a
streaming measurement for the roofline claim.

    pytest bench/bench_int4.py --benchmark-only          # one group per shape
    greenops bench --ops int4 --shapes llm                # the same cases as one ratio table
    python bench/bench_int4.py --warm --stream            # M=1: warm ms (3 shapes); past the cache

Shapes: M in {1, 4, 16, 64, 256} x (N, K) in {(4096, 4096), (14336, 4096), (4096, 14336)}.
Baselines (greenops/bench/int4.py): fp32 and bf16 torch.matmul, torch's int4 CPU op
(_weight_int4pack_mm_for_cpu, bf16 activations). One weight reused across calls is
cache-resident here (L3 300 MiB); --stream rotates through enough weights to exceed it and
compares with a plain read of the same bytes (docs/kernels.md).
"""

import argparse
import time

import pytest
import torch

from greenops.bench import Shape, shapes_for
from greenops.bench.core import pytest_benchmark_case
from greenops.bench.int4 import cases

SHAPES = shapes_for("int4", "llm")
IMPLS = [c.name.split(":")[1] for c in cases(Shape(1, 256, 256), "cpu")]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("impl", IMPLS)
def test_int4(benchmark, shape, impl):
    pytest_benchmark_case(benchmark, cases, shape, impl)


def _best(fns: dict, rounds: int) -> dict:
    """Best of `rounds` seconds per callable, the callables taking turns each round."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def stream(N: int = 4096, K: int = 4096, total_mib: int = 640, rounds: int = 5) -> dict:
    """M = 1 over distinct weights totalling `total_mib` (past the cache): GB/s of packed
    weight + scales + zeros read by int4_weight_mm, by torch's int4 op over its own copies, and
    by a float sum over the same bytes (the machine's read bandwidth), in the same rounds; and
    ms per call of each, with fp32 matmul over its own distinct fp32 weights (as many bytes)."""
    import greenops
    from greenops.bench.int4 import _torch_int4

    per = N * K // 2 + 2 * 4 * N * (K // 128)
    n = max(2, total_mib * 2**20 // per)
    ws = [greenops.quantize_int4(torch.randn(N, K), 128) for _ in range(n)]
    tis = [_torch_int4(p, s, z, N, K, "cpu") for p, s, z in ws]
    flat = torch.randn(n * per // 4)
    nf = max(2, total_mib * 2**20 // (4 * N * K))
    fws = [torch.randn(K, N) for _ in range(nf)]
    x = torch.randn(1, K)
    xb = x.bfloat16()
    best = _best(
        {
            "int4_weight_mm": lambda: [greenops.int4_weight_mm(x, *w, 128) for w in ws],
            "int4_weight_mm_bf16": lambda: [greenops.int4_weight_mm(xb, *w, 128) for w in ws],
            "torch_int4": lambda: [f(xb) for f in tis],
            "read": lambda: flat.sum(),
            "fp32_matmul": lambda: [x @ w for w in fws],
        },
        rounds,
    )
    gbs = {k: n * per / v / 1e9 for k, v in best.items() if k != "fp32_matmul"}
    ms = {k: v * 1e3 / n for k, v in best.items() if k not in ("read", "fp32_matmul")}
    ms["fp32_matmul"] = best["fp32_matmul"] * 1e3 / nf
    return {"weights": n, "bytes": n * per, "gbs": gbs, "ms": ms}


def warm(N: int = 4096, K: int = 4096, rounds: int = 50) -> dict:
    """M = 1 on one cache-resident weight (each case's own), the cases taking turns: ms per call."""
    import greenops
    from greenops.bench.int4 import _torch_int4

    p, s, z = greenops.quantize_int4(torch.randn(N, K), 128)
    ti = _torch_int4(p, s, z, N, K, "cpu")
    wf = torch.randn(K, N)
    x = torch.randn(1, K)
    xb = x.bfloat16()
    best = _best(
        {
            "int4_weight_mm": lambda: greenops.int4_weight_mm(x, p, s, z, 128),
            "int4_weight_mm_bf16": lambda: greenops.int4_weight_mm(xb, p, s, z, 128),
            "torch_int4": lambda: ti(xb),
            "fp32_matmul": lambda: x @ wf,
        },
        rounds,
    )
    return {k: v * 1e3 for k, v in best.items()}


def _ratios(r: dict) -> str:
    return (
        f"ours (bf16 x) {r['torch_int4'] / r['int4_weight_mm_bf16']:.2f}x torch int4, "
        f"ours (fp32 x) {r['fp32_matmul'] / r['int4_weight_mm']:.2f}x fp32 matmul"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--stream", action="store_true", help="M=1 over weights past the cache")
    ap.add_argument("--warm", action="store_true", help="M=1 on one cache-resident weight")
    args = ap.parse_args()
    if args.warm:
        for N, K in ((4096, 4096), (14336, 4096), (4096, 14336)):
            r = warm(N, K)
            print(
                f"M=1 {N}x{K} g128, warm: "
                + ", ".join(f"{k} {v:.3f} ms" for k, v in r.items())
                + f" -> {_ratios(r)}"
            )
    if args.stream:
        r = stream()
        g = r["gbs"]
        print(
            f"M=1 4096x4096 g128 over {r['weights']} weights ({r['bytes'] >> 20} MiB), GB/s: "
            + ", ".join(f"{k} {v:.1f}" for k, v in g.items())
            + f" -> ours (fp32 x) at {g['int4_weight_mm'] / g['read']:.0%} of read; ms per call: "
            + ", ".join(f"{k} {v:.3f}" for k, v in r["ms"].items())
            + f" -> {_ratios(r['ms'])}"
        )
