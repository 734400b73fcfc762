"""Shared test setup: the Triton interpreter on machines without a GPU, the cuda marker.
Numerical helpers (tolerances, references) live in numerics.py: a conftest module cannot be
imported by name, since every test folder may have its own."""

import os
import shutil

# Must happen before anything imports triton's jit machinery (greenops.kernels is lazy):
# without a GPU, every Triton kernel runs on CPU tensors under the interpreter.
if "TRITON_INTERPRET" not in os.environ and not (
    os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi")
):
    os.environ["TRITON_INTERPRET"] = "1"

# No test may reach this machine's real CPU power limits (RAPL, written as root): tests that
# need powercap build a fake tree and point GREENOPS_POWERCAP_ROOT at it.
os.environ["GREENOPS_POWERCAP_ROOT"] = os.path.join(os.sep, "nonexistent", "greenops-tests")

import pytest  # noqa: E402
from numerics import HAS_CUDA  # noqa: E402

import greenops  # noqa: E402

# One fixed Triton config per size class instead of autotuning every test shape on GPU.
greenops.ops._backend.set_triton_autotune(False)


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(
        reason="needs a CUDA GPU (none visible here); run pytest -m cuda on a GPU machine"
    )
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
