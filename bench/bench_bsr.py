"""Block-sparse matmul against dense and torch's BSR on CPU (fp32), with pytest-benchmark.

    pytest bench/bench_bsr.py --benchmark-only
    greenops bench --ops bsr --shapes llm          # the same cases as one ratio table

Shapes: N = K = 4096; M in {1, 256, 2048}; sparsity 50 / 75 / 90%; blocks 32 and 64
(greenops/bench/bsr.py). Baselines in the same run: dense torch.matmul in the same dtype and
torch's own BSR (W.to_sparse_bsr((b, b)) @ x.T). Ours also with int8 blocks (per-channel scales).
"""

import pytest

from greenops.bench import shapes_for
from greenops.bench.bsr import cases
from greenops.bench.core import pytest_benchmark_case

SHAPES = shapes_for("bsr", "llm")
IMPLS = ["dense_matmul", "greenops.bsr_mm", "greenops.bsr_mm_int8", "torch_bsr"]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("impl", IMPLS)
def test_bsr(benchmark, shape, impl):
    pytest_benchmark_case(benchmark, cases, shape, impl, max_rounds=30)
