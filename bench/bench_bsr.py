"""Block-sparse matmul against dense and torch's BSR on CPU (fp32), with pytest-benchmark.

    pytest bench/bench_bsr.py --benchmark-only
    greenops bench --ops bsr --shapes llm          # the same cases as one ratio table

Shapes: N = K = 4096; M in {1, 256, 2048}; sparsity 50 / 75 / 90%; blocks 32 and 64
(greenops/bench/bsr.py). Baselines in the same run: dense torch.matmul in the same dtype and
torch's own BSR (W.to_sparse_bsr((b, b)) @ x.T).
"""

import time

import pytest

from greenops.bench import shapes_for
from greenops.bench.bsr import cases

SHAPES = shapes_for("bsr", "llm")
IMPLS = ["dense_matmul", "greenops.bsr_mm", "torch_bsr"]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("impl", IMPLS)
def test_bsr(benchmark, shape, impl):
    by_name = {c.name.split(":")[1]: c for c in cases(shape, "cpu")}
    if impl not in by_name:
        pytest.skip(f"{impl} is not timed at {shape}")
    fn = by_name[impl].fn
    t0 = time.perf_counter()
    fn()
    rounds = max(3, min(30, int(2.0 / max(time.perf_counter() - t0, 1e-6))))
    benchmark.group = str(shape)
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1)
