"""Block-sparse matmul and its gradients against the masked dense reference in fp64, on the
C++ CPU kernels (each ISA path) and the torch-op impl used on CUDA."""

import pytest
import torch
from numerics import HAS_CUDA, assert_close_to_ref, cpu_isas, run_candidate

import greenops
from greenops.ops import bsr as B
from greenops.sparse import BlockSparseWeight, bsr_mm

BLOCKS = [(16, 16), (32, 32), (64, 64), (128, 128), (16, 64), (64, 16), (32, 128)]


def dense_mask_weight(N, K, block, density, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    bn, bk = block
    mask = torch.rand(N // bn, K // bk, generator=g) < density
    w = torch.randn(N, K, generator=g)
    w = w * mask.repeat_interleave(bn, 0).repeat_interleave(bk, 1)
    sw = BlockSparseWeight.from_dense(w.to(dtype), block, mask=mask)
    return sw, w.to(dtype)


DEVICE = "cuda" if HAS_CUDA else "cpu"


@pytest.fixture
def impl(bsr_impl):  # tests/ops/conftest.py
    return bsr_impl


def forward(impl, x, sw, bias=None):
    if impl == "torch":
        return B.bsr_mm_torch(x, sw.values, sw.crow_indices, sw.col_indices, bias, scales=sw.scales)
    if impl == "triton":
        out = bsr_mm(
            x.to(DEVICE), sw.to(DEVICE), None if bias is None else bias.to(DEVICE), backend="triton"
        )
        return out.cpu()
    return bsr_mm(x, sw, bias)


@pytest.mark.parametrize("block", BLOCKS, ids=str)
@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
# M: 1 (dot kernel, M <= 4), 7 and 33 (M along the lanes, tails), 1030 (lanes along bn, M >= 1024;
# C++ only: the Triton kernels have no such switch, and the interpreter is slow)
@pytest.mark.parametrize("M", [0, 1, 7, 33, 1030])
def test_forward_matches_masked_dense(impl, block, density, M):
    bn, bk = block
    if impl == "triton" and M == 1030:
        M = 40
    sw, w = dense_mask_weight(2 * bn, 3 * bk, block, density)
    x = torch.randn(M, 3 * bk)
    bias = torch.randn(2 * bn)
    for b in (None, bias):
        out = forward(impl, x, sw, b)
        ref = x.double() @ w.double().T + (0 if b is None else b.double())
        assert out.shape == (M, 2 * bn)
        assert_close_to_ref(out, ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
# M: the dot kernel, M along the lanes, lanes along bn (M >= 1024): each widens fp16/bf16 blocks
# its own way (C++: per block row in cache; transposed for the last)
@pytest.mark.parametrize("M", [1, 9, 1030])
@pytest.mark.parametrize("block", [(32, 32), (16, 64), (64, 16)], ids=str)
def test_low_precision(impl, dtype, M, block):
    if impl == "triton" and M == 1030:
        M = 40
    sw, w = dense_mask_weight(4 * block[0], 4 * block[1], block, 0.5, dtype)
    x = torch.randn(M, 4 * block[1]).to(dtype)
    out = forward(impl, x, sw)
    assert out.dtype == dtype
    ref = x.double() @ w.double().T
    assert_close_to_ref(out, ref, (x @ w.T))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("M", [1, 9, 1030])
def test_low_precision_blocks_are_widened_exactly(impl, dtype, M):
    """Every stored value, subnormals included, must reach the product as itself: one weight per
    output row (a one-hot x picks it), the largest and smallest magnitudes of the dtype among
    them; and an Inf or NaN weight poisons its own output only. The Triton kernels may flush
    subnormals to zero (bf16's are fp32's; the interpreter's fp32 arithmetic flushes them), and
    so do AMX's bf16 tiles (as torch's own bf16 matmul on them does)."""
    if impl == "triton" and M == 1030:
        M = 40
    fi = torch.finfo(dtype)
    vals = torch.tensor([fi.max, -fi.tiny, fi.tiny / 4, -fi.smallest_normal * 0.5, 1.5, -3.0])
    w = torch.zeros(64, 64, dtype=dtype)
    w[:6, 5] = vals.to(dtype)
    w[6:12, 40] = torch.tensor([float("inf"), 1, float("nan"), 2, -1, 0.25]).to(dtype)
    sw = BlockSparseWeight.from_dense(w, (32, 32), mask=torch.tensor([[True, True], [True, True]]))
    x = torch.zeros(M, 64, dtype=dtype)
    x[:, 5] = 1
    x[:, 40] = 1
    out = forward(impl, x, sw).float()
    expect = (w[:, 5].float() + w[:, 40].float()).expand(M, -1)
    amx = impl == "cpp" and greenops._ext.load().cpu_isa() == "avx512_amx"
    if impl == "triton" or (amx and dtype == torch.bfloat16 and M > 4):  # itself, or zero
        sub = expect.abs() < torch.finfo(torch.float32).tiny
        out = torch.where(sub & (out == 0), expect, out)
    assert torch.equal(out[:, :6], expect[:, :6]), (out[0, :6], expect[0, :6])
    assert out[:, 6].isinf().all() and out[:, 8].isnan().all()
    finite = [c for c in range(64) if c not in (6, 8)]
    assert torch.equal(out[:, finite], expect[:, finite])


@pytest.mark.parametrize("isa", cpu_isas())
@pytest.mark.parametrize("M", [9, 100, 1030])
@pytest.mark.parametrize("block,K", [((32, 32), 128), ((16, 64), 128), ((16, 16), 48)], ids=str)
def test_bf16_results_are_rounded_as_torch_rounds(isa, M, block, K):
    """bf16 x and blocks: the fp32 sums (exact here: small integers) rounded to bf16 exactly as
    .to(torch.bfloat16) rounds them, ties to even; a NaN in x is NaN in the outputs whose block
    row holds a block at its column. On AMX the kernel rounds the sums itself, and x is packed
    16 words at a time (K = 48: lanes left over)."""
    g = torch.Generator().manual_seed(M + K)
    N = 4 * block[0]
    mask = torch.rand(N // block[0], K // block[1], generator=g) < 0.7
    mask[0, 7 // block[1]], mask[1, 7 // block[1]] = False, True  # x[3, 7]'s column: read by some
    w = torch.randint(-8, 9, (N, K), generator=g).float()
    w = w * mask.repeat_interleave(block[0], 0).repeat_interleave(block[1], 1)
    sw = BlockSparseWeight.from_dense(w.bfloat16(), block, mask=mask)
    x = torch.randint(-8, 9, (M, K), generator=g).float()
    x[3, 7] = float("nan")
    bias = torch.randint(-64, 64, (N,), generator=g).float() / 8
    with greenops.use_cpu_isa(isa):
        out = bsr_mm(x.bfloat16(), sw, bias)
    # exact: |sums| < 2^24; the NaN is only read where `hit` (below)
    sums = (x.nan_to_num(0).double() @ w.double().T + bias.double()).float()
    assert out.dtype == torch.bfloat16
    hit = mask[:, 7 // block[1]].repeat_interleave(block[0])  # outputs that read x[3, 7]
    assert torch.equal(out[3].isnan(), hit)
    keep = torch.arange(M) != 3
    assert torch.equal(out[keep].view(torch.int16), sums[keep].bfloat16().view(torch.int16))
    assert torch.equal(out[3, ~hit].view(torch.int16), sums[3, ~hit].bfloat16().view(torch.int16))
    assert (sums[keep].abs() > 256).any()  # sums past bf16's 8 bits: rounding happens


@pytest.mark.parametrize("isa", cpu_isas())
@pytest.mark.parametrize("M", [9, 100])
@pytest.mark.parametrize("block", [(32, 32), (16, 64), (64, 16), (16, 16)], ids=str)
def test_bf16_grad_x_is_rounded_as_torch_rounds(isa, M, block):
    """dX = dY @ W for bf16 dy and blocks (on AMX: the forward kernel on W^T's transposed
    blocks): exact integer sums rounded as .to(torch.bfloat16) rounds them; a column block
    without blocks gives zeros; a NaN in dy reaches the columns of its block row's blocks."""
    bn, bk = block
    g = torch.Generator().manual_seed(M * bn + bk)
    N, K = 3 * bn, 4 * bk
    mask = torch.rand(3, 4, generator=g) < 0.6
    mask[:, 2] = False  # an empty column block
    mask[0, 0], mask[0, 1], mask[1, 1] = True, False, True  # dy[4, 0]'s block row: columns 0, ...
    w = torch.randint(-8, 9, (N, K), generator=g).float()
    w = w * mask.repeat_interleave(bn, 0).repeat_interleave(bk, 1)
    sw = BlockSparseWeight.from_dense(w.bfloat16(), block, mask=mask)
    t_crow, t_blocks = sw.transpose
    dy = torch.randint(-8, 9, (M, N), generator=g).float()
    dy[4, 0] = float("nan")
    with greenops.use_cpu_isa(isa):
        dx = torch.ops.greenops.bsr_mm_t(dy.bfloat16(), sw.values, t_crow, t_blocks)
    assert dx.dtype == torch.bfloat16 and dx.shape == (M, K)
    hit = mask[0].repeat_interleave(bk)  # the columns dy[4, 0] reaches
    assert torch.equal(dx[4].isnan(), hit)
    sums = (dy.nan_to_num(0).double() @ w.double()).float()  # exact: |sums| < 2^24
    keep = torch.arange(M) != 4
    assert torch.equal(dx[keep].view(torch.int16), sums[keep].bfloat16().view(torch.int16))
    assert torch.equal(dx[4, ~hit].view(torch.int16), sums[4, ~hit].bfloat16().view(torch.int16))
    assert (dx[:, 2 * bk : 3 * bk] == 0).all() and (sums[keep].abs() > 256).any()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("block", [(32, 32), (16, 64)], ids=str)
def test_low_precision_grad_x(dtype, block):
    """dX = dY @ W with fp16/bf16 blocks (C++: each column block's blocks widened in cache)."""
    bn, bk = block
    sw, w = dense_mask_weight(3 * bn, 4 * bk, block, 0.5, dtype, seed=4)
    t_crow, t_blocks = sw.transpose
    for M in (1, 17):
        dy = torch.randn(M, 3 * bn).to(dtype)
        dx = torch.ops.greenops.bsr_mm_t(dy, sw.values, t_crow, t_blocks)
        assert dx.dtype == dtype
        assert_close_to_ref(dx, dy.double() @ w.double(), dy @ w)


def test_empty_rows_all_zero_weight_batch_dims_and_strides(impl):
    sw, w = dense_mask_weight(96, 64, (32, 32), 0.5, seed=3)
    mask = torch.tensor([[True, False], [False, False], [False, True]])  # block row 1 empty
    sw = BlockSparseWeight.from_dense(w, (32, 32), mask=mask)
    assert sw.crow_indices.tolist() == [0, 1, 1, 2]
    x = torch.randn(2, 3, 128)[..., ::2]  # [2, 3, 64], non-contiguous
    out = forward(impl, x, sw)
    ref = x.double() @ sw.to_dense().double().T
    assert out.shape == (2, 3, 96) and (out[..., 32:64] == 0).all()
    assert_close_to_ref(out, ref)
    zero = BlockSparseWeight.from_dense(torch.zeros(64, 64), (32, 32))
    assert zero.nnz_blocks == 0
    assert (forward(impl, torch.randn(4, 64), zero) == 0).all()


@pytest.mark.parametrize("block", [(16, 32), (32, 32), (64, 16)], ids=str)
def test_gradients_against_dense(block):
    bn, bk = block
    sw, w = dense_mask_weight(3 * bn, 4 * bk, block, 0.5, seed=1)
    sw.values.requires_grad_()
    x = torch.randn(2, 5, 4 * bk, requires_grad=True)
    bias = torch.randn(3 * bn, requires_grad=True)
    out = bsr_mm(x, sw, bias)
    g = torch.randn_like(out)
    out.backward(g)
    g2, x2 = g.reshape(-1, 3 * bn).double(), x.detach().reshape(-1, 4 * bk).double()
    assert_close_to_ref(x.grad, (g2 @ sw.to_dense().detach().double()).view(x.shape))
    dw = (g2.T @ x2).view(3, bn, 4, bk).transpose(1, 2)  # [R, C, bn, bk]
    rows = torch.repeat_interleave(torch.arange(3), sw.crow_indices.diff())
    assert_close_to_ref(sw.values.grad, dw[rows, sw.col_indices])
    assert torch.allclose(bias.grad, g2.sum(0).float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("isa", cpu_isas())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("M", [1, 7, 130])
@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_sddmm_matches_the_dense_product_at_the_blocks(isa, dtype, M, block):
    """dValues = (dY^T X) at the pattern's blocks (the C++ kernel reads dy and x packed per
    block column), with an empty block row, against fp64."""
    bn, bk = block
    sw, _ = dense_mask_weight(3 * bn, 2 * bk, block, 0.6, seed=M + bn)
    mask = sw.to_dense().view(3, bn, 2, bk).abs().sum((1, 3)) > 0
    mask[1] = False
    sw = BlockSparseWeight.from_dense(
        sw.to_dense() * mask.repeat_interleave(bn, 0).repeat_interleave(bk, 1), block, mask=mask
    )
    g, x = torch.randn(M, 3 * bn).to(dtype), torch.randn(M, 2 * bk).to(dtype)
    with greenops.use_cpu_isa(isa):
        gv = torch.ops.greenops.bsr_sddmm(g, x, sw.crow_indices, sw.col_indices, bn, bk)
    assert gv.dtype == dtype and gv.shape == (sw.nnz_blocks, bn, bk)
    dw = (g.double().T @ x.double()).view(3, bn, 2, bk).transpose(1, 2)
    rows = torch.repeat_interleave(torch.arange(3), sw.crow_indices.diff())
    assert_close_to_ref(
        gv,
        dw[rows, sw.col_indices],
        (g.T @ x).view(3, bn, 2, bk).transpose(1, 2)[rows, sw.col_indices],
    )


@pytest.mark.parametrize("isa", cpu_isas())
@pytest.mark.parametrize("M", [1, 9, 99, 130])
@pytest.mark.parametrize("block", [(32, 32), (16, 64), (64, 16), (16, 16), (128, 32)], ids=str)
def test_bf16_sddmm_is_rounded_as_torch_rounds(isa, M, block):
    """bf16 dy and x (on AMX: dy^T made per block row, x in pairs of m, M padded to 32): exact
    integer sums rounded to bf16 as .to(torch.bfloat16) rounds them."""
    bn, bk = block
    g = torch.Generator().manual_seed(M * bn + bk)
    mask = torch.rand(3, 4, generator=g) < 0.6
    mask[1] = False  # an empty block row
    mask[0, 0] = True
    sw = BlockSparseWeight.from_dense(torch.ones(3 * bn, 4 * bk), block, mask=mask)
    dy = torch.randint(-8, 9, (M, 3 * bn), generator=g).float()
    x = torch.randint(-8, 9, (M, 4 * bk), generator=g).float()
    with greenops.use_cpu_isa(isa):
        gv = torch.ops.greenops.bsr_sddmm(
            dy.bfloat16(), x.bfloat16(), sw.crow_indices, sw.col_indices, bn, bk
        )
    dw = (dy.double().T @ x.double()).float().view(3, bn, 4, bk).transpose(1, 2)
    rows = torch.repeat_interleave(torch.arange(3), sw.crow_indices.diff())
    want = dw[rows, sw.col_indices].bfloat16()
    assert gv.dtype == torch.bfloat16
    assert torch.equal(gv.float(), want.float())  # equal values (+0 for a -0 product at M = 1)
    assert M == 1 or (want.float().abs() > 256).any()  # sums past bf16's 8 bits: rounding


@pytest.mark.parametrize("block", [(16, 32), (32, 16)], ids=str)
def test_triton_backward_pieces(block):
    bn, bk = block
    sw, w = dense_mask_weight(3 * bn, 2 * bk, block, 0.6, seed=5)
    t_crow, t_blocks = sw.transpose
    g, x = torch.randn(21, 3 * bn), torch.randn(21, 2 * bk)
    dev = {"device": DEVICE}
    gx = B.bsr_mm_t_triton(g.to(**dev), sw.values.to(**dev), t_crow.to(**dev), t_blocks.to(**dev))
    assert_close_to_ref(gx.cpu(), g.double() @ w.double())
    gv = B.bsr_sddmm_triton(
        g.to(**dev), x.to(**dev), sw.crow_indices.to(**dev), sw.col_indices.to(**dev), bn, bk
    )
    dw = (g.double().T @ x.double()).view(3, bn, 2, bk).transpose(1, 2)
    rows = torch.repeat_interleave(torch.arange(3), sw.crow_indices.diff())
    assert_close_to_ref(gv.cpu(), dw[rows, sw.col_indices])


def test_gradcheck_float64():
    """The registered op (C++ CPU impl, float64 path) and its backward (bsr_mm_t, bsr_sddmm)."""
    sw, _ = dense_mask_weight(32, 64, (16, 16), 0.5, seed=2)
    v = sw.values.double().requires_grad_()
    x = torch.randn(3, 64, dtype=torch.float64, requires_grad=True)
    b = torch.randn(32, dtype=torch.float64, requires_grad=True)
    t_crow, t_blocks = sw.transpose

    def f(x, v, b):
        return torch.ops.greenops.bsr_mm(x, v, sw.crow_indices, sw.col_indices, b, t_crow, t_blocks)

    assert torch.autograd.gradcheck(f, (x, v, b))
    # and the fp32 kernels' backward pieces agree with the float64 ones
    g = torch.randn(3, 32, dtype=torch.float64)
    gx = torch.ops.greenops.bsr_mm_t(g, v.detach(), t_crow, t_blocks)
    gv = torch.ops.greenops.bsr_sddmm(g, x.detach(), sw.crow_indices, sw.col_indices, 16, 16)
    assert torch.allclose(
        torch.ops.greenops.bsr_mm_t(g.float(), v.detach().float(), t_crow, t_blocks).double(),
        gx,
        rtol=1e-5,
        atol=1e-5,
    )
    assert torch.allclose(
        torch.ops.greenops.bsr_sddmm(
            g.float(), x.detach().float(), sw.crow_indices, sw.col_indices, 16, 16
        ).double(),
        gv,
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "mutate, error, match",
    [
        (lambda w: setattr(w, "col_indices", torch.tensor([5, 0])), ValueError, "out of range"),
        (
            lambda w: setattr(w, "crow_indices", torch.tensor([0, 2, 1])),
            ValueError,
            "must not decrease|run from 0",
        ),
        (lambda w: setattr(w, "col_indices", w.col_indices.int()), TypeError, "torch.int64"),
    ],
)
def test_the_kernel_bounds_every_index_even_unvalidated(mutate, error, match):
    sw = BlockSparseWeight.from_dense(
        torch.randn(64, 64), (32, 32), mask=torch.tensor([[True, True], [False, False]])
    )
    mutate(sw)
    with pytest.raises(error, match=match):
        torch.ops.greenops.bsr_mm(torch.randn(2, 64), sw.values, sw.crow_indices, sw.col_indices)


def test_bad_input():
    sw = BlockSparseWeight.from_dense(torch.randn(64, 64), (32, 32))
    with pytest.raises(ValueError, match="not a multiple of the block's bk=32"):
        torch.ops.greenops.bsr_mm(torch.randn(2, 48), sw.values, sw.crow_indices, sw.col_indices)
    with pytest.raises(TypeError, match="one dtype"):
        bsr_mm(torch.randn(2, 64).half(), sw)
    with pytest.raises(ValueError, match=r"bias must have shape \[64\]"):
        bsr_mm(torch.randn(2, 64), sw, torch.randn(3))


# --- int8 blocks with per-output-channel scales ---------------------------------------------


def quantize_rows_ref(w: torch.Tensor, block, mask):
    """The contract, densely: per output channel over its kept blocks, s = max(amax, 1e-12) /
    127, q = clamp(round_half_even(w / s), -127, 127); W_q = q * s (pruned blocks zero)."""
    bn, bk = block
    keep = mask.repeat_interleave(bn, 0).repeat_interleave(bk, 1)
    wm = torch.where(keep, w.float(), 0.0)
    s = wm.abs().amax(1).clamp_min(1e-12) / 127
    q = torch.clamp(torch.round(wm / s[:, None]), -127, 127)
    return torch.where(keep, q * s[:, None], 0.0), s


@pytest.mark.parametrize("block", [(16, 16), (32, 32), (64, 64), (32, 128), (64, 16)], ids=str)
@pytest.mark.parametrize("M", [0, 1, 3, 7, 33, 1030])
def test_int8_blocks_match_the_dequantized_reference(impl, block, M):
    bn, bk = block
    if impl == "triton" and M == 1030:
        M = 40
    sw, w = dense_mask_weight(3 * bn, 4 * bk, block, 0.5, seed=M)
    mask = BlockSparseWeight.from_dense(w, block).to_dense().ne(0)
    q = sw.quantize_int8()
    assert q.values.dtype == torch.int8 and q.scales.shape == (3 * bn,)
    wq, s = quantize_rows_ref(w, block, mask.reshape(3, bn, 4, bk).any(1).any(-1))
    assert torch.equal(q.scales, s)  # rows without blocks: 1e-12 / 127
    assert torch.equal(q.to_dense(), wq)
    x = torch.randn(M, 4 * bk)
    bias = torch.randn(3 * bn)
    out = forward(impl, x, q, bias)
    assert out.dtype == torch.float32 and out.shape == (M, 3 * bn)
    assert_close_to_ref(out, x.double() @ wq.double().T + bias.double())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_int8_blocks_with_low_precision_activations(impl, dtype):
    sw, w = dense_mask_weight(64, 128, (32, 32), 0.5, seed=3)
    q = sw.quantize_int8()
    x = torch.randn(5, 128).to(dtype)
    out = forward(impl, x, q)
    assert out.dtype == dtype
    ref = x.double() @ q.to_dense().double().T
    assert_close_to_ref(out, ref, (x.float() @ q.to_dense().T).to(dtype))


def test_int8_blocks_quantization_error_and_memory():
    sw, w = dense_mask_weight(256, 512, (32, 32), 0.5, seed=9)
    q = sw.quantize_int8()
    dense = sw.to_dense().double()
    sqnr = 20 * torch.log10(dense.norm() / (dense - q.to_dense().double()).norm())
    assert sqnr > 35  # per-channel int8 on Gaussian weights: ~38-40 dB
    assert q.values.numel() * q.values.element_size() * 4 == sw.values.numel() * 4  # 1/4
    assert q.quantize_int8() is q  # already int8


def test_int8_blocks_nonfinite_rows_poison_only_their_outputs():
    sw, w = dense_mask_weight(64, 64, (32, 32), 1.0, seed=2)
    sw.values[0, 3, 5] = float("nan")  # block row 0, output channel 3
    q = sw.quantize_int8()
    assert torch.isnan(q.scales[3]) and torch.isfinite(q.scales[torch.arange(64) != 3]).all()
    out = bsr_mm(torch.randn(2, 64), q)
    assert torch.isnan(out[:, 3]).all() and torch.isfinite(out[:, torch.arange(64) != 3]).all()


def test_int8_blocks_gradient_reaches_x_only():
    sw, _ = dense_mask_weight(64, 96, (32, 32), 0.5, seed=5)
    q = sw.quantize_int8()
    x = torch.randn(4, 96, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x: bsr_mm(x, q), (x,))
    x32 = x.detach().float().requires_grad_()
    bsr_mm(x32, q).sum().backward()
    assert torch.allclose(x32.grad, torch.ones(4, 64) @ q.to_dense(), atol=1e-5)


def test_int8_blocks_bad_input():
    sw, _ = dense_mask_weight(64, 64, (32, 32), 1.0)
    q = sw.quantize_int8()
    args = (torch.randn(2, 64), q.values, q.crow_indices, q.col_indices)
    with pytest.raises(ValueError, match="int8 values need scales"):
        torch.ops.greenops.bsr_mm(*args)
    with pytest.raises(ValueError, match=r"scales must have shape \[64\]"):
        torch.ops.greenops.bsr_mm(*args, scales=torch.ones(32))
    with pytest.raises(ValueError, match="scales go with int8 values only"):
        torch.ops.greenops.bsr_mm(
            torch.randn(2, 64), sw.values, sw.crow_indices, sw.col_indices, scales=q.scales
        )
    with pytest.raises(ValueError, match="int8 values need scales"):
        BlockSparseWeight(q.values, q.crow_indices, q.col_indices, (64, 64))
    with pytest.raises(ValueError, match="scales must be float32"):
        BlockSparseWeight(q.values, q.crow_indices, q.col_indices, (64, 64), scales=q.scales.half())


def test_opcheck_and_compile_cpu():
    sw, _ = dense_mask_weight(64, 96, (32, 32), 0.5, seed=4)
    x = torch.randn(3, 96)
    t_crow, t_blocks = sw.transpose
    args = (x, sw.values, sw.crow_indices, sw.col_indices)
    torch.library.opcheck(torch.ops.greenops.bsr_mm.default, args)
    torch.library.opcheck(
        torch.ops.greenops.bsr_mm.default, (*args, torch.randn(64), t_crow, t_blocks)
    )
    torch.library.opcheck(
        torch.ops.greenops.bsr_mm_t.default, (torch.randn(3, 64), sw.values, t_crow, t_blocks)
    )
    q = sw.quantize_int8()
    torch.library.opcheck(
        torch.ops.greenops.bsr_mm.default,
        (x, q.values, q.crow_indices, q.col_indices, None, None, None, q.scales),
    )
    torch.library.opcheck(
        torch.ops.greenops.bsr_sddmm.default,
        (torch.randn(3, 64), x, sw.crow_indices, sw.col_indices, 32, 32),
    )

    def f(x):
        return torch.relu(bsr_mm(x, sw)) * 2

    torch._dynamo.reset()
    assert torch.equal(torch.compile(f, fullgraph=True)(x), f(x))


def test_triton_launch_order_is_longest_row_first():
    crow = torch.tensor([0, 1, 1, 4, 6, 7])  # lengths 1, 0, 3, 2, 1
    assert B.longest_first(crow).tolist() == [2, 3, 0, 4, 1]


@pytest.mark.parametrize("block", [(16, 16), (32, 32), (64, 64), (128, 128), (16, 64)], ids=str)
@pytest.mark.parametrize(
    "capability",
    [
        pytest.param(c, id=f"sm{c[0]}{c[1]}", marks=[pytest.mark.cuda] if HAS_CUDA else [])
        for c in ((8, 0), (9, 0))
    ],
)
def test_every_triton_candidate_config_is_correct(block, capability, monkeypatch):
    """Each config candidate_configs offers the GPU tuner, run through the three launchers (as
    fixed_config) against the fp64 references: both architectures' under the interpreter on
    CPU; the GPU's own in the GPU suite (rows of x per program only: one config each)."""
    from greenops.kernels import bsr as k

    if HAS_CUDA and capability != torch.cuda.get_device_capability():
        pytest.skip("another architecture's candidates: run under the interpreter on CPU")

    bn, bk = block
    M = 40
    sw, w = dense_mask_weight(3 * bn, 2 * bk, block, 0.5, seed=3)
    x = torch.randn(M, 2 * bk, dtype=torch.float64).float()
    dy = torch.randn(M, 3 * bn, dtype=torch.float64).float()
    cands = k.candidate_configs(64, bn, bk, capability)
    assert all(c["BLOCK_M"] <= 64 for c in cands) and len({c["BLOCK_M"] for c in cands}) == 3
    dev = {"device": DEVICE}
    v, crow, col = (t.to(**dev) for t in (sw.values, sw.crow_indices, sw.col_indices))
    t_crow, t_blocks = (t.to(**dev) for t in sw.transpose)
    dw = (dy.double().T @ x.double()).view(3, bn, 2, bk).transpose(1, 2)
    rows = torch.repeat_interleave(torch.arange(3), sw.crow_indices.diff())
    ran = 0
    for bm in sorted({c["BLOCK_M"] for c in cands}):  # warps, depth: nothing under the interpreter
        cfg = next(c for c in cands if c["BLOCK_M"] == bm)
        monkeypatch.setattr(k, "fixed_config", lambda *a, cfg=cfg: cfg)
        out = run_candidate(B.bsr_mm_triton, x.to(**dev), v, crow, col)
        if out is not None:
            assert_close_to_ref(out.cpu(), x.double() @ w.double().T)
            ran += 1
        dx = run_candidate(B.bsr_mm_t_triton, dy.to(**dev), v, t_crow, t_blocks)
        if dx is not None:
            assert_close_to_ref(dx.cpu(), dy.double() @ w.double())
            ran += 1
        dv = run_candidate(B.bsr_sddmm_triton, dy.to(**dev), x.to(**dev), crow, col, bn, bk)
        if dv is not None:
            assert_close_to_ref(dv.cpu(), dw[rows, sw.col_indices])
            ran += 1
    assert ran
