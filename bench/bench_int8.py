"""int8 ops against their baselines on CPU, with pytest-benchmark (medians, one group per shape).

    pytest bench/bench_int8.py --benchmark-only [--benchmark-json out.json]
    greenops bench --ops int8 --shapes llm       # the same cases as one ratio table + ceilings

Shapes: M in {1, 16, 256, 2048} x (N, K) in {(4096, 4096), (11008, 4096)} (Llama-7B q/o and
up/gate projections). The cases (ours and the baselines: fp32 / bf16 torch.matmul,
torch._int_mm + a separate scaling pass, aten._weight_int8pack_mm) are defined once, in
greenops/bench/int8.py. One weight is reused across calls: on a CPU with a large L3 these are
cache-resident figures (docs/kernels.md).
"""

import pytest

from greenops.bench import SHAPE_SETS, Shape
from greenops.bench.core import pytest_benchmark_case
from greenops.bench.int8 import cases

SHAPES = SHAPE_SETS["llm"]
IMPLS = [c.name.split(":")[1] for c in cases(Shape(1, 8, 8), "cpu")]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("impl", IMPLS)
def test_int8(benchmark, shape, impl):
    pytest_benchmark_case(benchmark, cases, shape, impl)
