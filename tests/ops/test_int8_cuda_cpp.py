"""The CUDA C++ int8_mm (csrc/cuda/int8_mm.cu, backend="cuda") on a GPU, each of its kernels
(mma.sync; wgmma where the GPU is a Hopper and the build has sm_90a code): exact integer
accumulation, the reference with scales, bias and every output dtype, odd shapes across tile
edges, unwritten outputs caught by poisoning the allocator's memory first, which kernel "auto"
runs. Runs in the GPU suite (`pytest -m cuda`) where greenops was built with CUDA; skipped,
with the reason, elsewhere."""

import os

import pytest
import torch
from numerics import HAS_CUDA

import greenops
from greenops import _ext

pytestmark = pytest.mark.cuda


def _has_kernel() -> bool:
    return HAS_CUDA and _ext.available() and "int8_mm" in getattr(_ext.load(), "cuda_kernels", ())


needs_kernel = pytest.mark.skipif(
    not _has_kernel(), reason="needs a GPU and a CUDA build of greenops._C (csrc/cuda)"
)


def _wgmma_ready() -> bool:
    return _has_kernel() and _ext.load().int8_mm_cuda_kernel() == "wgmma"


def _has_wgmma_code() -> bool:
    """Whether kernel="wgmma" runs here at all (GREENOPS_CUDA_WGMMA only steers "auto")."""
    return _has_kernel() and _hopper_with_sm90a()


def _hopper_with_sm90a() -> bool:
    return torch.cuda.get_device_capability() == (9, 0) and "9.0a" in _ext.load().cuda_archs


# each kernel by name (the op's backend="cuda" runs "auto": wgmma where ready, else mma)
KERNELS = [
    "mma",
    pytest.param(
        "wgmma",
        marks=pytest.mark.skipif(
            not _wgmma_ready(),
            reason="the wgmma kernel needs a Hopper GPU and an sm_90a build "
            "(and GREENOPS_CUDA_WGMMA not 0)",
        ),
    ),
]


def _mm(kernel, a_q, a_s, w_q, w_s, bias=None, out_dtype=None):
    return _ext.load().int8_mm_cuda(a_q, a_s, w_q, w_s, bias, out_dtype, kernel=kernel)


def _poison_allocator(nbytes: int) -> None:
    """Fill memory the caching allocator will hand out next with NaN bits."""
    t = torch.full((nbytes // 4 + 1024,), float("nan"), device="cuda")
    del t


@needs_kernel
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    "M,N,K",
    [
        (1, 1, 16),
        (1, 4096, 4096),
        (7, 33, 48),
        (128, 128, 64),
        (129, 257, 272),
        (1000, 40, 1024),
        (16, 8192, 8192),
        (300, 520, 2064),
        (1024, 1024, 4096),
    ],
)
def test_integer_accumulation_is_exact(M, N, K, kernel):
    a = torch.randint(-128, 128, (M, K), dtype=torch.int8, device="cuda")
    w = torch.randint(-128, 128, (N, K), dtype=torch.int8, device="cuda")
    ones_m = torch.ones(M, device="cuda")
    ones_n = torch.ones(N, device="cuda")
    _poison_allocator(M * N * 4)
    out = _mm(kernel, a, ones_m, w, ones_n)
    ref = a.cpu().long() @ w.cpu().long().T
    # |acc| < 2**24 for K <= 1024 is exact in fp32; larger K compares in float64
    assert (
        torch.equal(out.cpu().double(), ref.double().float().double())
        if K <= 1024
        else (torch.allclose(out.cpu().double(), ref.double(), rtol=1e-6, atol=0))
    )


@needs_kernel
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("out_dtype", [None, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("M,N,K", [(3, 5, 16), (65, 130, 160), (300, 200, 512)])
def test_matches_the_triton_kernel_and_the_reference(M, N, K, out_dtype, bias, kernel):
    a_q, a_s = greenops.quantize_int8(torch.randn(M, K, device="cuda"))
    w_q, w_s = greenops.quantize_int8(torch.randn(N, K, device="cuda"))
    b = torch.randn(N, device="cuda") if bias else None
    _poison_allocator(M * N * 4)
    out = _mm(kernel, a_q, a_s, w_q, w_s, b, out_dtype)
    tri = greenops.int8_mm(a_q, a_s, w_q, w_s, b, out_dtype, backend="triton")
    assert out.dtype == (out_dtype or torch.float32) and out.shape == (M, N)
    assert not torch.isnan(out).any()
    ref = (a_q.double() @ w_q.double().T) * a_s.double()[:, None] * w_s.double()
    ref = ref + b.double() if bias else ref
    tol = 1e-5 if out_dtype is None else 1e-2
    assert torch.allclose(out.double(), ref, rtol=tol, atol=tol * ref.abs().max().item())
    assert torch.allclose(out.float(), tri.float(), rtol=tol, atol=tol)


@needs_kernel
def test_batch_dims_and_k_not_a_multiple_of_16():
    a_q, a_s = greenops.quantize_int8(torch.randn(2, 3, 64, device="cuda"))
    w_q, w_s = greenops.quantize_int8(torch.randn(10, 64, device="cuda"))
    out = greenops.int8_mm(a_q, a_s, w_q, w_s, backend="cuda")
    assert out.shape == (2, 3, 10)
    ref = greenops.int8_mm(a_q, a_s, w_q, w_s, backend="triton")
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5)
    a_q, a_s = greenops.quantize_int8(torch.randn(4, 40, device="cuda"))
    w_q, w_s = greenops.quantize_int8(torch.randn(8, 40, device="cuda"))
    with pytest.raises(ValueError, match="multiple of 16"):
        greenops.int8_mm(a_q, a_s, w_q, w_s, backend="cuda")


@needs_kernel
def test_auto_runs_wgmma_on_hopper_unless_switched_off(monkeypatch):
    c = _ext.load()
    switched_off = os.environ.get("GREENOPS_CUDA_WGMMA") == "0"  # bench/gpu_check.sh's smoke test
    expected = "wgmma" if _hopper_with_sm90a() and not switched_off else "mma"
    assert c.int8_mm_cuda_kernel() == expected
    a_q, a_s = greenops.quantize_int8(torch.randn(130, 64, device="cuda"))
    w_q, w_s = greenops.quantize_int8(torch.randn(300, 64, device="cuda"))
    monkeypatch.setenv("GREENOPS_CUDA_WGMMA", "0")
    assert c.int8_mm_cuda_kernel() == "mma"
    off = greenops.int8_mm(a_q, a_s, w_q, w_s, backend="cuda")
    assert torch.equal(off, _mm("mma", a_q, a_s, w_q, w_s))
    if expected == "wgmma":
        monkeypatch.setenv("GREENOPS_CUDA_WGMMA", "1")
        on = greenops.int8_mm(a_q, a_s, w_q, w_s, backend="cuda")
        assert torch.equal(on, _mm("wgmma", a_q, a_s, w_q, w_s))
        assert torch.allclose(on, off, rtol=1e-6, atol=1e-6)


@needs_kernel
def test_a_kernel_that_cannot_run_here_or_a_bad_name_is_refused():
    a_q, a_s = greenops.quantize_int8(torch.randn(4, 32, device="cuda"))
    w_q, w_s = greenops.quantize_int8(torch.randn(8, 32, device="cuda"))
    with pytest.raises(ValueError, match="'auto', 'mma' or 'wgmma'"):
        _mm("tensor-cores", a_q, a_s, w_q, w_s)
    if not _has_wgmma_code():
        with pytest.raises(ValueError, match="Hopper GPU and a build for sm_90a"):
            _mm("wgmma", a_q, a_s, w_q, w_s)
