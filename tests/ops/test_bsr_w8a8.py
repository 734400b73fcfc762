"""bsr_mm W8A8: int8 x (per-row x_scales) times int8 blocks (per-output-channel scales), on
each CPU ISA path (AVX-512 VNNI: int32 sums by vpdpbusd; the others: x dequantized into the
int8-blocks kernels), the torch-op impl and the Triton launcher, against the fp64 reference of
(x * x_scales) @ (values * scales)^T + bias."""

import pytest
import torch
from numerics import HAS_CUDA, assert_close_to_ref
from torch import nn

import greenops
from greenops.nn import BlockSparseLinear
from greenops.ops import bsr as B
from greenops.sparse import BlockSparseWeight, bsr_mm

DEVICE = "cuda" if HAS_CUDA else "cpu"
quantize = torch.ops.greenops.quantize_int8


@pytest.fixture
def impl(bsr_impl):  # tests/ops/conftest.py
    return bsr_impl


def w8a8(impl, x_q, x_s, q, bias=None):
    if impl == "torch":
        args = (x_q, q.values, q.crow_indices, q.col_indices, bias)
        return B.bsr_mm_torch(*args, scales=q.scales, x_scales=x_s)
    if impl == "triton":
        dev = dict(device=DEVICE)
        b = None if bias is None else bias.to(**dev)
        out = bsr_mm(x_q.to(**dev), q.to(DEVICE), b, x_scales=x_s.to(**dev), backend="triton")
        return out.cpu()
    return bsr_mm(x_q, q, bias, x_scales=x_s)


def weight(N, K, block, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(N // block[0], K // block[1], generator=g) < density
    w = torch.randn(N, K, generator=g)
    return BlockSparseWeight.from_dense(w, block, mask=mask).quantize_int8()


def reference(x_q, x_s, q, bias=None):
    out = (x_q.double() * x_s.double()[..., None]) @ q.to_dense().double().T
    return out if bias is None else out + bias.double()


@pytest.mark.parametrize(
    "block", [(16, 16), (32, 32), (64, 64), (128, 128), (16, 64), (64, 16)], ids=str
)
# M: 1 and 4 (the dot kernel, x dequantized), 5, 33 and 300 (VNNI on AVX-512: row tails past a
# multiple of 16, strips of 64, 32 and 16)
@pytest.mark.parametrize("M", [0, 1, 4, 5, 33, 300])
def test_matches_the_dequantized_reference(impl, block, M):
    if impl == "triton" and M == 300:
        M = 40  # the interpreter is slow
    bn, bk = block
    q = weight(3 * bn, 4 * bk, block, 0.5)
    x_q, x_s = quantize(torch.randn(M, 4 * bk), -1)
    bias = torch.randn(3 * bn)
    for b in (None, bias):
        out = w8a8(impl, x_q, x_s, q, b)
        assert out.dtype == torch.float32 and out.shape == (M, 3 * bn)
        assert_close_to_ref(out, reference(x_q, x_s, q, b))


def test_batch_dims_empty_rows_and_densities(impl):
    q = weight(96, 128, (32, 32), 0.5, seed=2)
    mask = torch.tensor([[True, False, False, True], [False] * 4, [True] * 4])  # row 1 empty
    q = BlockSparseWeight.from_dense(torch.randn(96, 128), (32, 32), mask=mask).quantize_int8()
    x_q, x_s = quantize(torch.randn(2, 9, 128), -1)
    out = w8a8(impl, x_q, x_s, q)
    assert out.shape == (2, 9, 96) and (out[..., 32:64] == 0).all()
    assert_close_to_ref(out, reference(x_q, x_s, q))
    empty = BlockSparseWeight.from_dense(torch.zeros(64, 64), (32, 32)).quantize_int8()
    assert empty.nnz_blocks == 0
    x_q, x_s = quantize(torch.randn(20, 64), -1)
    assert (w8a8(impl, x_q, x_s, empty) == 0).all()


def test_extreme_int8_values_are_exact(impl):
    """x = -128 everywhere (beyond quantize_int8's range, still int8) against weights at -128
    and 127: the unsigned offset (x + 128) and the row sums it takes off must cancel exactly."""
    vals = torch.full((2, 32, 32), -128, dtype=torch.int8)
    vals[1] = 127
    crow = torch.tensor([0, 1, 2])
    col = torch.tensor([0, 1])
    q = BlockSparseWeight(vals, crow, col, (64, 64), scales=torch.ones(64))
    x_q = torch.full((20, 64), -128, dtype=torch.int8)
    x_q[3] = 127
    x_s = torch.ones(20)
    out = w8a8(impl, x_q, x_s, q)
    want = reference(x_q, x_s, q)
    assert want[0, 0] == 32 * 128 * 128 and want[3, 40] == 32 * 127 * 127
    assert torch.equal(out.double(), want)  # below 2^24: exact in fp32 too


def test_nonfinite_x_scales_poison_only_their_rows(impl):
    q = weight(64, 64, (32, 32), 1.0, seed=3)
    x_q, x_s = quantize(torch.randn(17, 64), -1)
    x_s[2] = float("nan")
    x_s[9] = float("inf")
    out = w8a8(impl, x_q, x_s, q)
    assert out[2].isnan().all() and (~out[9].isfinite()).all()
    others = [m for m in range(17) if m not in (2, 9)]
    assert out[others].isfinite().all()
    assert_close_to_ref(out[others], reference(x_q, x_s, q)[others])


def test_bad_input():
    q = weight(64, 64, (32, 32), 1.0)
    x_q, x_s = quantize(torch.randn(5, 64), -1)
    op = torch.ops.greenops.bsr_mm
    args = (q.values, q.crow_indices, q.col_indices, None, None, None, q.scales)
    for fn in (op, B.bsr_mm_torch):
        with pytest.raises(ValueError, match="int8 x needs x_scales"):
            fn(x_q, *args)
        with pytest.raises(ValueError, match="x_scales"):
            fn(x_q, *args, x_s[:4])
        with pytest.raises(TypeError, match="x must be"):
            fn(torch.randn(5, 64), *args, x_s)  # x_scales go with int8 x only
        sw = BlockSparseWeight.from_dense(torch.randn(64, 64), (32, 32))
        with pytest.raises(TypeError, match="int8 x goes with int8 values"):
            fn(x_q, sw.values, sw.crow_indices, sw.col_indices, x_scales=x_s)


def test_opcheck_and_compile():
    q = weight(64, 96, (32, 32), 0.5, seed=4)
    x_q, x_s = quantize(torch.randn(7, 96), -1)
    args = (x_q, q.values, q.crow_indices, q.col_indices, torch.randn(64), None, None)
    torch.library.opcheck(torch.ops.greenops.bsr_mm.default, (*args, q.scales, x_s))
    m = BlockSparseLinear.from_weight(q, torch.randn(64), int8_act=True)
    x = torch.randn(3, 7, 96)
    compiled = torch.compile(m, fullgraph=True)
    assert torch.equal(compiled(x), m(x))


def test_linear_with_int8_activations():
    lin = nn.Linear(128, 64)
    m = BlockSparseLinear.from_linear(lin, (32, 32), sparsity=0.5, int8=True, int8_act=True)
    assert "int8 activations per row" in repr(m)
    q = BlockSparseWeight.from_dense(lin.weight.detach(), (32, 32), sparsity=0.5).quantize_int8()
    x = torch.randn(2, 10, 128)
    x_q, x_s = quantize(x, -1)
    assert torch.equal(m(x), bsr_mm(x_q, q, lin.bias.detach(), x_scales=x_s))
    assert m(x.bfloat16()).dtype == torch.bfloat16
    # close to the float layer: per-row int8 x costs little on Gaussian data
    dense = x @ q.to_dense().T + lin.bias.detach()
    err = (m(x) - dense).norm() / dense.norm()
    assert err < 0.02, err
    m(x).sum().backward()  # the bias trains; x and the int8 values take no gradient
    assert m.bias.grad is not None and torch.equal(m.bias.grad, torch.full((64,), 20.0))
    fresh = BlockSparseLinear(128, 64, block=(32, 32), dtype=torch.int8, int8_act=True)
    fresh.load_state_dict(m.state_dict())
    assert torch.equal(fresh(x), m(x))
    with pytest.raises(ValueError, match="int8_act needs int8 values"):
        BlockSparseLinear(128, 64, int8_act=True)
    with pytest.raises(ValueError, match="int8_act=True needs int8=True"):
        BlockSparseLinear.from_linear(lin, (32, 32), sparsity=0.5, int8_act=True)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
    cfg = greenops.BlockSparseConfig((32, 32), 0.5, int8=True, int8_act=True)
    greenops.sparsify_(model, cfg)
    assert model[0].int8_act and model(torch.randn(3, 64)).shape == (3, 64)
