"""Empty shapes, extreme values, unvalidated block formats and non-default backends: one test
per defect class an independent fuzz run found (each failed before its fix). References are
written here from first principles (fp64 matmuls of the weight as the docs define it). The
hostile index formats, which used to abort the process, run in a subprocess (hostile.py)."""

import subprocess
import sys
from pathlib import Path

import hostile
import pytest
import torch
from numerics import HAS_CUDA

import greenops
from greenops.ops import bsr as B
from greenops.sparse import BlockSparseWeight

DEVICE = "cuda" if HAS_CUDA else "cpu"
FP16_MAX = torch.finfo(torch.float16).max


def _rel(out, ref):
    ref = ref.double()
    return ((out.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


def _bsr(N=32, K=64, block=(16, 32), seed=0):
    g = torch.Generator().manual_seed(seed)
    return BlockSparseWeight.from_dense(torch.randn(N, K, generator=g), block=block)


# --- 0: bsr_mm with x's K not the weight's ---------------------------------------------------


@pytest.mark.parametrize("xk,shape", [(128, (32, 64)), (96, (32, 64)), (64, (32, 128))])
def test_bsr_mm_refuses_an_activation_of_another_k(impl, xk, shape):
    backend, device = impl
    sw = _bsr(*shape).to(device)
    x = torch.randn(5, xk, device=device)
    with pytest.raises(ValueError, match=rf"x has K={xk} but the weight is \[N, K\]"):
        greenops.bsr_mm(x, sw, backend=backend)


@pytest.mark.parametrize("where", ["cpp", "fake", "triton"])
def test_bsr_mm_op_checks_k_against_the_transposed_metadata(where):
    """The raw op: t_crow [K_w/bk + 1] carries the weight's K to every impl."""
    sw = _bsr(32, 64)  # bk = 32: 2 block columns
    x = torch.randn(5, 128)  # 4 block columns: all of the weight's column indices are in range
    t_crow, t_blocks = sw.transpose
    args = [x, sw.values, sw.crow_indices, sw.col_indices, None, t_crow, t_blocks]
    match = r"x has K=128 but the weight has K=64 \(2 block columns of bk=32"
    with pytest.raises(ValueError, match=match):
        if where == "cpp":
            torch.ops.greenops.bsr_mm(*args)
        elif where == "fake":
            torch.ops.greenops.bsr_mm(*(a if a is None else a.to("meta") for a in args))
        else:
            B.bsr_mm_triton(*args)


def test_bsr_mm_names_a_weight_that_is_not_block_sparse():
    with pytest.raises(TypeError, match="weight must be a greenops.BlockSparseWeight"):
        greenops.bsr_mm(torch.randn(2, 64), torch.randn(32, 64))


# --- 1, 2: K = 0 weight-only matmuls ---------------------------------------------------------


@pytest.mark.parametrize("M", [1, 5, 40])  # the streaming kernels and the large-M tiles
@pytest.mark.parametrize("op", ["int8", "int4"])
def test_weight_only_mm_over_empty_k_is_the_bias(impl, op, M):
    backend, device = impl
    N = 6
    bias = torch.randn(N, device=device, requires_grad=True)
    x = torch.randn(M, 0, device=device, requires_grad=True)
    if op == "int8":
        q, s = greenops.quantize_int8(torch.randn(N, 0, device=device))
        y = greenops.int8_weight_mm(x, q, s, bias, backend=backend)
    else:
        p, s, z = greenops.quantize_int4(torch.randn(N, 0, device=device), 32)
        y = greenops.int4_weight_mm(x, p, s, z, 32, bias, backend=backend)
    assert torch.equal(y.detach(), bias.detach().expand(M, N))
    g = torch.randn(M, N, device=device)
    y.backward(g)
    assert x.grad.shape == (M, 0)
    torch.testing.assert_close(bias.grad, g.sum(0))


# --- 3: fp16 activations, weights beyond fp16's range ----------------------------------------


@pytest.mark.parametrize("M", [1, 5, 40, 64])
@pytest.mark.parametrize("op", ["int8", "int4"])
def test_fp16_x_with_a_weight_beyond_fp16_range(impl, op, M):
    backend, device = impl
    g = torch.Generator().manual_seed(1)
    N, K = 16, 64
    w = torch.randn(N, K, generator=g) * 2e5  # |w| up to ~1e6: inf in fp16
    x = (torch.randn(M, K, generator=g) * 1e-3).half()
    if op == "int8":
        q, s = greenops.quantize_int8(w)
        wd = q.double() * s.double()[:, None]
        y = greenops.int8_weight_mm(x.to(device), q.to(device), s.to(device), backend=backend)
    else:
        p, s, z = greenops.quantize_int4(w, 32)
        wd = greenops.dequantize_int4(p, s, z, 32).double()
        y = greenops.int4_weight_mm(
            x.to(device), p.to(device), s.to(device), z.to(device), 32, backend=backend
        )
    ref = x.double() @ wd.T
    assert ref.abs().max() < FP16_MAX / 4 and wd.abs().max() > FP16_MAX  # the case in question
    assert torch.isfinite(y).all()
    assert _rel(y.cpu(), ref) < 2e-3  # fp16's own rounding of the result, and fp32 sums


def test_int8_blocks_dx_with_fp16_x_keeps_small_scales():
    """dX through int8 blocks dequantizes them into x's dtype: the product q * s rounded once,
    not s first (found by the property tests: a scale subnormal in fp16 lost its bits)."""
    g = torch.Generator().manual_seed(5)
    dense = torch.randn(32, 64, generator=g) * 2.0**-14  # scales ~ 2^-19: subnormal in fp16
    sw = BlockSparseWeight.from_dense(dense, block=(16, 32)).quantize_int8()
    x = torch.randn(3, 64, generator=g).half().requires_grad_()
    dy = torch.randn(3, 32, generator=g).half()
    greenops.bsr_mm(x, sw).backward(dy)
    assert _rel(x.grad, dy.double() @ sw.to_dense().double()) < 2e-3


# --- 4: quantize_int4 near fp32's limit ------------------------------------------------------


@pytest.mark.parametrize("backend", ["cpp", "triton"])  # "triton" on CPU: the torch-op impl
@pytest.mark.parametrize("top", [3e38, torch.finfo(torch.float32).max])
def test_quantize_int4_of_a_range_wider_than_fp32(backend, top):
    g = torch.Generator().manual_seed(2)
    w = torch.rand(4, 64, generator=g) * 2 - 1
    w[:, ::2] *= top
    w[:, 0], w[:, 1] = top, -top  # hi - lo overflows fp32 in every group's row 0 ... 3
    p, s, z = greenops.quantize_int4(w, 32, backend=backend)
    assert torch.isfinite(s).all() and torch.isfinite(z).all()
    d = greenops.dequantize_int4(p, s, z, 32, backend=backend)
    # rounding to the nearest of 16 levels: within half a step (and a little fp32 slack)
    err = (d.double() - w.double()).abs()
    assert torch.isfinite(d).all() and (err <= 0.5 * s.repeat_interleave(32, 1) * 1.001).all()


# --- 5, 7: validate=False formats with out-of-range indices (in a subprocess) ----------------

_HOSTILE = Path(hostile.__file__)


@pytest.fixture(scope="module")
def hostile_results():
    """{case: (exit status, its error message)}: every case of hostile.py, each in a forked
    child of one subprocess (a crash is a negative status, not a dead test run)."""
    out = subprocess.run(
        [sys.executable, str(_HOSTILE)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = {}
    for line in out.stdout.splitlines():
        name, status, message = line.split("\t", 2)
        results[name] = (int(status), message)
    return results


@pytest.mark.parametrize("case", list(hostile.CASES))
def test_hostile_block_format_is_a_clear_error(hostile_results, case):
    status, message = hostile_results[case]
    assert status == 0, f"{case}: {hostile.describe(status)}: {message}"
    assert message.startswith("ValueError: greenops."), message
    assert hostile.CASES[case][1] in message, message


# --- 6: an empty weight (N = 0) --------------------------------------------------------------


@pytest.mark.parametrize("op", ["int8", "int4", "bsr"])
def test_backward_through_an_empty_weight(impl, op):
    backend, device = impl
    M, K = 5, 64
    x = torch.randn(2, M, K, device=device, requires_grad=True)
    bias = torch.zeros(0, device=device, requires_grad=True)
    if op == "int8":
        q, s = greenops.quantize_int8(torch.randn(0, K, device=device))
        y = greenops.int8_weight_mm(x, q, s, bias, backend=backend)
    elif op == "int4":
        p, s, z = greenops.quantize_int4(torch.randn(0, K, device=device), 32)
        y = greenops.int4_weight_mm(x, p, s, z, 32, bias, backend=backend)
    else:
        sw = BlockSparseWeight.from_dense(torch.randn(0, K), block=(16, 32)).to(device)
        sw.values.requires_grad_()
        y = greenops.bsr_mm(x, sw, bias, backend=backend)
    assert y.shape == (2, M, 0)
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x)) and bias.grad.shape == (0,)


@pytest.mark.parametrize("backend", ["cpp", "triton"])
def test_dequantize_an_empty_int4_weight(backend):
    p, s, z = greenops.quantize_int4(torch.randn(0, 64), 32, backend=backend)
    assert greenops.dequantize_int4(p, s, z, 32, backend=backend).shape == (0, 64)


# --- 8: meta tensors -------------------------------------------------------------------------


def test_public_ops_take_meta_tensors():
    m = {"device": "meta"}
    x = torch.empty(3, 64, **m)
    q, s = greenops.quantize_int8(torch.empty(8, 64, **m))
    assert q.device.type == "meta" and s.shape == (8,)
    assert greenops.int8_weight_mm(x, q, s).shape == (3, 8)
    a_q, a_s = greenops.quantize_int8(x)
    assert greenops.int8_mm(a_q, a_s, q, s).shape == (3, 8)
    p, s4, z4 = greenops.quantize_int4(torch.empty(8, 64, **m), 32)
    assert greenops.int4_weight_mm(x, p, s4, z4, 32).shape == (3, 8)
    assert greenops.dequantize_int4(p, s4, z4, 32).shape == (8, 64)
    sw = _bsr(32, 64).to("meta")
    assert greenops.bsr_mm(x, sw).shape == (3, 32)
    assert sw.transpose[0].shape == (3,) and sw.transpose[1].shape == (2, sw.nnz_blocks)


# --- 9: a non-default backend keeps autograd -------------------------------------------------


def _grads(fn, x, bias, extra=()):
    y = fn(x, bias)
    assert y.requires_grad
    g = torch.randn_like(y)
    return [y.detach(), *torch.autograd.grad(y, [x, bias, *extra], g)]


@pytest.mark.parametrize("op", ["int8", "int4", "bsr"])
def test_every_backend_trains_the_same(op):
    """backend="triton" (here on CPU under the interpreter; on a GPU the Triton and CUDA C++
    backends alike) runs the op's own autograd formula: gradients as on the default backend."""
    if HAS_CUDA:
        pytest.skip("the non-default backend of CPU tensors exists only under the interpreter")
    torch.manual_seed(3)
    w = torch.randn(32, 64)
    x = torch.randn(2, 5, 64, requires_grad=True)
    bias = torch.randn(32, requires_grad=True)
    extra = ()
    if op == "int8":
        q, s = greenops.quantize_int8(w)
        fn = lambda x, b, be: greenops.int8_weight_mm(x, q, s, b, backend=be)  # noqa: E731
    elif op == "int4":
        p, s, z = greenops.quantize_int4(w, 32)
        fn = lambda x, b, be: greenops.int4_weight_mm(x, p, s, z, 32, b, backend=be)  # noqa: E731
    else:
        sw = BlockSparseWeight.from_dense(w, block=(16, 32), sparsity=0.5)
        sw.values.requires_grad_()
        extra = (sw.values,)
        fn = lambda x, b, be: greenops.bsr_mm(x, sw, b, backend=be)  # noqa: E731
    torch.manual_seed(4)
    want = _grads(lambda x, b: fn(x, b, "cpp"), x, bias, extra)
    torch.manual_seed(4)
    got = _grads(lambda x, b: fn(x, b, "triton"), x, bias, extra)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
