"""int4 (W4A16, group 128) against its baselines on CPU, with pytest-benchmark, and a
streaming measurement for the roofline claim.

    pytest bench/bench_int4.py --benchmark-only          # one group per shape
    greenops bench --ops int4 --shapes llm                # the same cases as one ratio table
    python bench/bench_int4.py --stream                   # M=1 GB/s beyond the cache

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
from greenops.bench.int4 import cases

SHAPES = shapes_for("int4", "llm")
IMPLS = [c.name.split(":")[1] for c in cases(Shape(1, 256, 256), "cpu")]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("impl", IMPLS)
def test_int4(benchmark, shape, impl):
    by_name = {c.name.split(":")[1]: c for c in cases(shape, "cpu")}
    if impl not in by_name:
        pytest.skip(f"{impl} is not timed at {shape}")
    fn = by_name[impl].fn
    t0 = time.perf_counter()
    fn()
    rounds = max(3, min(50, int(2.0 / max(time.perf_counter() - t0, 1e-6))))
    benchmark.group = str(shape)
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1)


def stream(N: int = 4096, K: int = 4096, total_mib: int = 640, rounds: int = 5) -> dict:
    """M = 1 over distinct weights totalling `total_mib` (past the cache): GB/s of packed
    weight + scales + zeros read by int4_weight_mm, beside a float sum over the same bytes
    (the machine's read bandwidth, measured in the same rounds)."""
    import greenops

    per = N * K // 2 + 2 * 4 * N * (K // 128)
    n = max(2, total_mib * 2**20 // per)
    ws = [greenops.quantize_int4(torch.randn(N, K), 128) for _ in range(n)]
    flat = torch.randn(n * per // 4)  # the same bytes as fp32, read by a reduction
    x = torch.randn(1, K)
    best = {"int4_weight_mm": float("inf"), "read": float("inf")}
    for _ in range(rounds):
        t = time.perf_counter()
        for p, s, z in ws:
            greenops.int4_weight_mm(x, p, s, z, 128)
        best["int4_weight_mm"] = min(best["int4_weight_mm"], time.perf_counter() - t)
        t = time.perf_counter()
        flat.sum()
        best["read"] = min(best["read"], time.perf_counter() - t)
    gbps = {k: n * per / v / 1e9 for k, v in best.items()}
    return {"weights": n, "bytes": n * per, **{f"{k}_gbps": v for k, v in gbps.items()}}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--stream", action="store_true")
    args = ap.parse_args()
    if args.stream:
        r = stream()
        print(
            f"M=1 4096x4096 g128 over {r['weights']} weights ({r['bytes'] >> 20} MiB): "
            f"int4_weight_mm {r['int4_weight_mm_gbps']:.1f} GB/s, plain read "
            f"{r['read_gbps']:.1f} GB/s -> {r['int4_weight_mm_gbps'] / r['read_gbps']:.0%}"
        )
