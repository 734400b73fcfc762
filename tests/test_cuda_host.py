"""The CUDA C++ kernels' host-side checks, on a machine without a GPU: the int8_mm index math
run through a host emulator of ldmatrix / mma (tests/cuda_host/int8_mm_emulator.cpp, g++), and
the ptxas-report parser and torch-free rule of scripts/check_cuda.py (which CI runs with nvcc)."""

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


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    assert cxx, "g++ is needed to build the host emulator"
    exe = str(tmp_path_factory.mktemp("emu") / "int8_mm_emulator")
    subprocess.run(
        [
            cxx,
            "-std=c++17",
            "-O2",
            "-I",
            os.path.join(ROOT, "csrc", "cuda"),
            os.path.join(ROOT, "tests", "cuda_host", "int8_mm_emulator.cpp"),
            "-o",
            exe,
        ],
        check=True,
    )
    return exe


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
    r = subprocess.run([emulator, str(M), str(N), str(K)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr


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


def test_kernel_sources_include_no_torch_header():
    assert _load_check_cuda().torch_free_violations() == []
