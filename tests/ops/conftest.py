"""The `impl` fixture of the int8 and int4 op tests: the C++ CPU kernels on each ISA path this
CPU supports, and the Triton kernels (under the interpreter on CPU; on a GPU machine they run on
CUDA tensors and carry the `cuda` marker, so that `pytest -m cuda` (bench/gpu_check.sh) runs
them). `bsr_impl`: the same for the block-sparse tests, with the torch-op impl."""

import pytest
from numerics import HAS_CUDA, cpu_isas

import greenops

IMPLS = [pytest.param(("cpp", isa), id=f"cpp-{isa}") for isa in cpu_isas()] + [
    pytest.param(("triton", None), id="triton", marks=[pytest.mark.cuda] if HAS_CUDA else [])
]


@pytest.fixture(params=IMPLS)
def impl(request):
    """(backend, device); the CPU ISA path is capped for the duration of the test."""
    backend, isa = request.param
    if backend == "cpp":
        with greenops.use_cpu_isa(isa):
            yield "cpp", "cpu"
    else:
        yield "triton", "cuda" if HAS_CUDA else "cpu"


@pytest.fixture(
    params=[f"cpp-{i}" for i in cpu_isas()]
    + ["torch", pytest.param("triton", marks=[pytest.mark.cuda] if HAS_CUDA else [])]
)
def bsr_impl(request):
    """cpp on each ISA path; "torch": the torch-op impl (gathered blocks); "triton": the
    Triton kernels (under the interpreter on CPU, natively on a GPU)."""
    if request.param.startswith("cpp"):
        with greenops.use_cpu_isa(request.param[4:]):
            yield "cpp"
    else:
        yield request.param
