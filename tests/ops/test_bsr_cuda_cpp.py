"""The CUDA C++ bsr_mm forward (csrc/cuda/bsr_mm.cu, backend="cuda") on a GPU: against the
float64 masked-dense reference and the Triton kernel, fp16/bf16, every block shape it takes,
empty and dense block rows, M across the 128-row tiles, bias, batch dims, outputs poisoned
first; "auto" (the measured table) keeps gradients. Runs in the GPU suite (`pytest -m cuda`)
where greenops was built with CUDA; skipped, with the reason, elsewhere."""

import pytest
import torch
from numerics import HAS_CUDA

import greenops
from greenops import _ext

pytestmark = pytest.mark.cuda

needs_kernel = pytest.mark.skipif(
    not (HAS_CUDA and _ext.available() and "bsr_mm" in getattr(_ext.load(), "cuda_kernels", ())),
    reason="needs a GPU and a CUDA build of greenops._C (csrc/cuda)",
)


def _weight(N, K, block, sparsity, dtype):
    w = torch.randn(N, K, device="cuda")
    sw = greenops.BlockSparseWeight.from_dense(w, block, sparsity=sparsity)
    return sw.to(dtype=dtype)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("block", [(32, 32), (32, 64), (64, 32), (64, 64)])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("M", [1, 77, 128, 300])
def test_matches_the_reference_and_triton(dtype, block, sparsity, M):
    N, K = 256, 512
    sw = _weight(N, K, block, sparsity, dtype)
    x = torch.randn(M, K, device="cuda").to(dtype)
    bias = torch.randn(N, device="cuda")
    torch.full((M * N * 2,), float("nan"), device="cuda")  # poison what the allocator hands out
    out = greenops.bsr_mm(x, sw, bias, backend="cuda")
    tri = greenops.bsr_mm(x, sw, bias, backend="triton")
    wd = sw.to_dense().double()
    ref = x.double() @ wd.T + bias.double()
    assert out.dtype == dtype and out.shape == (M, N) and not torch.isnan(out).any()
    eps = 2**-8 if dtype == torch.bfloat16 else 2**-11
    bound = 2 * eps * (x.double().abs() @ wd.abs().T) + eps * ref.abs() + 1e-6
    assert ((out.double() - ref).abs() <= bound).all()
    assert ((out.double() - tri.double()).abs() <= 2 * bound).all()


@needs_kernel
def test_batch_dims_autograd_and_bad_input():
    sw = _weight(128, 256, (64, 64), 0.5, torch.float16)
    x = torch.randn(2, 3, 256, device="cuda", dtype=torch.float16, requires_grad=True)
    out = greenops.bsr_mm(x, sw)  # auto: the measured table (either kernel), with autograd
    out.float().sum().backward()
    assert out.shape == (2, 3, 128) and x.grad is not None
    assert torch.allclose(
        greenops.bsr_mm(x.detach(), sw, backend="cuda").float(),
        greenops.bsr_mm(x.detach(), sw, backend="triton").float(),
        rtol=1e-2,
        atol=1e-2,
    )
    with pytest.raises(ValueError, match="blocks of 32 or 64"):
        greenops.bsr_mm(
            x.detach().reshape(6, 256),
            _weight(128, 256, (16, 16), 0.5, torch.float16),
            backend="cuda",
        )
