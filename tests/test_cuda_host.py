"""The CUDA C++ kernels' host-side checks, on a machine without a GPU: the int8_mm index math
run through a host emulator of ldmatrix / mma (tests/cuda_host/int8_mm_emulator.cpp, g++), the
sm_90a int8_mm kernel's descriptors and pipeline through one of wgmma (int8_wgmma_emulator.cpp),
the int4 and bsr kernels through theirs, and the ptxas-report parser and torch-free rule of
scripts/check_cuda.py (which CI runs with nvcc)."""

import importlib.util
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_check_cuda():
    spec = importlib.util.spec_from_file_location(
        "check_cuda", os.path.join(ROOT, "scripts", "check_cuda.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _build(tmp_path_factory, name: str) -> str:
    cxx = shutil.which("g++") or shutil.which("c++")
    assert cxx, "g++ is needed to build the host emulators"
    exe = str(tmp_path_factory.mktemp(name) / name)
    src = os.path.join(ROOT, "tests", "cuda_host", f"{name}.cpp")
    subprocess.run(
        [cxx, "-std=c++17", "-O2", "-I", os.path.join(ROOT, "csrc", "cuda"), src, "-o", exe],
        check=True,
    )
    return exe


def _run_ok(exe: str, *args) -> None:
    """Runs an emulator, which prints "ok" after checking its kernel's results."""
    r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    return _build(tmp_path_factory, "int8_mm_emulator")


# tile edges (128), K tails (64 per stage), more K tiles than stages (4), grouped raster (8)
@pytest.mark.parametrize(
    "M,N,K",
    [
        (1, 1, 16),
        (17, 33, 48),
        (128, 128, 64),
        (200, 300, 272),
        (257, 129, 1024),
        (1100, 40, 96),
        (130, 1030, 80),
    ],
)
def test_int8_mm_kernel_index_math_computes_the_matmul(emulator, M, N, K):
    _run_ok(emulator, M, N, K)


@pytest.fixture(scope="module")
def int4_emulator(tmp_path_factory):
    return _build(tmp_path_factory, "int4_emulator")


# (M, N, K, group, split, symmetric): m-tile edges (16), n-block tails (64), k-tiles fewer than
# the 4 warps, uneven splits, per-channel groups
@pytest.mark.parametrize(
    "args",
    [
        (1, 8, 128, 32, 1, 0),
        (1, 64, 512, 128, 2, 1),
        (5, 72, 1024, 64, 3, 0),
        (16, 128, 256, 256, 1, 0),
        (33, 40, 384, 128, 2, 1),
        (3, 8, 1024, 1024, 4, 0),
        (17, 136, 1536, 128, 5, 0),
    ],
)
def test_int4_kernel_index_math_computes_the_matmul(int4_emulator, args):
    _run_ok(int4_emulator, "run", *args)


@pytest.mark.parametrize("N,K", [(8, 128), (16, 256), (2056, 128)])
def test_python_prepack_equals_the_kernels_layout(int4_emulator, tmp_path, N, K):
    import numpy as np
    import torch

    from greenops.ops.int4 import prepack_cuda

    path = str(tmp_path / "w.bin")
    subprocess.run(
        [int4_emulator, "prepack", str(N), str(K), path], check=True, capture_output=True
    )
    n, k = torch.arange(N)[:, None], torch.arange(K)[None, :]
    q = ((7 * n + 3 * k + (n * k) % 5) % 16).to(torch.uint8)
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).contiguous()
    got = prepack_cuda(packed)
    assert got.shape == (N // 8, K // 128, 32, 4) and got.dtype == torch.int32
    assert np.array_equal(got.numpy().ravel(), np.fromfile(path, dtype=np.int32))


def test_prepack_rejects_shapes_the_kernel_cannot_take():
    import torch

    from greenops.ops.int4 import prepack_cuda

    with pytest.raises(ValueError, match="N % 8 == 0 and K % 128 == 0"):
        prepack_cuda(torch.zeros(12, 64, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8"):
        prepack_cuda(torch.zeros(8, 64, dtype=torch.int32))


def test_the_cuda_backend_prepacks_a_weight_once():
    import torch

    from greenops.ops import int4

    packed = torch.randint(0, 256, (16, 128), dtype=torch.uint8)
    first = int4._prepacked_for(packed)
    assert int4._prepacked_for(packed) is first  # reused while the weight is unchanged
    packed.add_(1)  # an in-place change bumps the version: prepacked anew
    again = int4._prepacked_for(packed)
    assert again is not first and torch.equal(again, int4.prepack_cuda(packed))
    other = packed.clone()
    assert int4._prepacked_for(other) is not again


@pytest.fixture(scope="module")
def bsr_emulator(tmp_path_factory):
    return _build(tmp_path_factory, "bsr_emulator")


# (M, N, K, bn, bk, density %): every block shape, row tiles past 128, empty rows (0%), a row
# with more blocks than the 3 stages (block row 1 is always dense)
@pytest.mark.parametrize(
    "args",
    [
        (1, 64, 128, 32, 32, 50),
        (130, 128, 256, 64, 64, 30),
        (200, 96, 192, 32, 64, 60),
        (17, 128, 128, 64, 32, 0),
        (129, 256, 512, 64, 64, 10),
        (256, 64, 640, 32, 32, 100),
    ],
)
def test_bsr_kernel_index_math_computes_the_matmul(bsr_emulator, args):
    _run_ok(bsr_emulator, *args)


@pytest.fixture(scope="module")
def wgmma_emulator(tmp_path_factory):
    return _build(tmp_path_factory, "int8_wgmma_emulator")


# the sm_90a kernel (128 x 256 tiles, 128 of K a stage, 2 tiles loaded ahead of 4 stages):
# tile edges, K tails, more k tiles than stages, several tiles in the raster
@pytest.mark.parametrize(
    "M,N,K",
    [
        (1, 1, 16),
        (17, 33, 48),
        (128, 256, 128),
        (200, 300, 272),
        (257, 129, 1024),
        (130, 520, 80),
        (1100, 40, 400),
    ],
)
def test_int8_wgmma_kernel_index_math_and_pipeline_compute_the_matmul(wgmma_emulator, M, N, K):
    _run_ok(wgmma_emulator, M, N, K)


def test_emulator_rejects_k_tails_the_kernel_does_not_take(emulator):
    r = subprocess.run([emulator, "4", "4", "40"], capture_output=True, text=True)
    assert r.returncode != 0 and "multiple of 16" in r.stdout


PTXAS = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z3fooPf' for 'sm_80'
ptxas info    : Function properties for _Z3fooPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 124 registers, used 1 barriers, 412 bytes cmem[0]
ptxas info    : Compiling entry function '_Z3barPf' for 'sm_90a'
ptxas info    : Function properties for _Z3barPf
    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers
"""


def test_ptxas_report_parser():
    rows = _load_check_cuda().parse_ptxas(PTXAS)
    assert rows == [
        {
            "kernel": "_Z3fooPf",
            "arch": "sm_80",
            "stack": 0,
            "spill_stores": 0,
            "spill_loads": 0,
            "registers": 124,
        },
        {
            "kernel": "_Z3barPf",
            "arch": "sm_90a",
            "stack": 16,
            "spill_stores": 8,
            "spill_loads": 4,
            "registers": 255,
        },
    ]


def test_ptxas_notes_of_serialized_wgmma_fail_their_kernel():
    report = PTXAS + (
        "ptxas info    : (C7517) warpgroup.wait is injected in around line 1426 by compiler to "
        "allow use of registers defined by GMMA in function '_Z3barPf'\n"
        "ptxas info    : (C7510) Potential Performance Loss: wgmma.mma_async instructions are "
        "serialized due to insufficient register resources for the wgmma pipeline in the "
        "function '_Z3bazPf'\n"
    )
    rows = {r["kernel"]: r for r in _load_check_cuda().parse_ptxas(report)}
    assert "wgmma_serialized" not in rows["_Z3fooPf"]
    assert rows["_Z3barPf"]["wgmma_serialized"] and rows["_Z3barPf"]["registers"] == 255
    assert rows["_Z3bazPf"] == {"kernel": "_Z3bazPf", "wgmma_serialized": True}


def test_kernel_sources_include_no_torch_header():
    assert _load_check_cuda().torch_free_violations() == []
