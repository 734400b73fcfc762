"""The CUDA C++ int4_weight_mm (csrc/cuda/int4_weight_mm.cu, backend="cuda") on a GPU: against
the float64 reference and the Triton kernel, fp16/bf16, symmetric and asymmetric, every group
size, M across the 16-row m-tiles, bias, batch dims, the split-K path, outputs poisoned first.
Runs in the GPU suite (`pytest -m cuda`) where greenops was built with CUDA; skipped, with the
reason, elsewhere."""

import pytest
import torch
from numerics import HAS_CUDA

import greenops
from greenops import _ext
from greenops.ops.int4 import unpack_int4

pytestmark = pytest.mark.cuda

needs_kernel = pytest.mark.skipif(
    not (
        HAS_CUDA
        and _ext.available()
        and "int4_weight_mm" in getattr(_ext.load(), "cuda_kernels", ())
    ),
    reason="needs a GPU and a CUDA build of greenops._C (csrc/cuda)",
)


def _poison_allocator(nbytes: int) -> None:
    t = torch.full((nbytes // 4 + 1024,), float("nan"), device="cuda")
    del t


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("group_size", [32, 128, -1])
@pytest.mark.parametrize(
    "M,N,K",
    [(1, 8, 128), (1, 4096, 4096), (3, 200, 512), (16, 64, 1024), (17, 72, 384), (64, 1024, 2048)],
)
def test_matches_the_reference_and_triton(dtype, symmetric, group_size, M, N, K):
    g = K if group_size == -1 else group_size
    w = torch.randn(N, K, device="cuda")
    packed, scales, zeros = greenops.quantize_int4(w, g, symmetric)
    x = torch.randn(M, K, device="cuda").to(dtype)
    bias = torch.randn(N, device="cuda")
    _poison_allocator(M * N * 4 * 8)
    out = greenops.int4_weight_mm(x, packed, scales, zeros, g, bias, backend="cuda")
    tri = greenops.int4_weight_mm(x, packed, scales, zeros, g, bias, backend="triton")
    wd = greenops.dequantize_int4(packed, scales, zeros, g).double()
    ref = x.double() @ wd.T + bias.double()
    assert out.dtype == dtype and out.shape == (M, N) and not torch.isnan(out).any()
    eps = 2**-8 if dtype == torch.bfloat16 else 2**-11
    # per weight, the kernel rounds s, -z*s and the fma to x's dtype: |error| <~ eps (|q| +
    # |z|) s; per output, fp32 accumulation on top, and the final rounding to dtype
    q = unpack_int4(packed).double()
    ss = scales.double().repeat_interleave(g, 1)
    zz = 8.0 if zeros is None else zeros.double().abs().repeat_interleave(g, 1)
    bound = 4 * eps * (x.double().abs() @ ((q + zz) * ss).T) + eps * ref.abs() + 1e-6
    assert ((out.double() - ref).abs() <= bound).all()
    assert ((out.double() - tri.double()).abs() <= 2 * bound).all()


@needs_kernel
def test_batch_dims_and_bad_input():
    w = torch.randn(64, 256, device="cuda")
    packed, scales, zeros = greenops.quantize_int4(w, 128)
    x = torch.randn(2, 3, 256, device="cuda", dtype=torch.float16)
    out = greenops.int4_weight_mm(x, packed, scales, zeros, 128, backend="cuda")
    ref = greenops.int4_weight_mm(x, packed, scales, zeros, 128, backend="triton")
    assert out.shape == (2, 3, 64)
    assert torch.allclose(out.float(), ref.float(), rtol=1e-2, atol=1e-2)
    with pytest.raises(TypeError, match="x must be torch.float16 or torch.bfloat16"):
        greenops.int4_weight_mm(x.float(), packed, scales, zeros, 128, backend="cuda")
    p2, s2, z2 = greenops.quantize_int4(torch.randn(12, 256, device="cuda"), 128)
    with pytest.raises(ValueError, match="N % 8 == 0"):
        greenops.int4_weight_mm(x, p2, s2, z2, 128, backend="cuda")
