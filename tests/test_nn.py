"""Drop-in modules and in-place conversion: outputs equal the op-level reference, state_dict
round trips bit-exactly (also through safetensors), conversion reports what it skipped."""

import copy

import pytest
import torch
from checkpoint_formats import gptq_tensors
from numerics import assert_close_to_ref
from safetensors.torch import load_file, save_file
from torch import nn

import greenops
from greenops.nn import BlockSparseLinear, Int4Linear, Int8Linear, summary
from greenops.nn.summary import format_summary


def linear(K=128, N=64, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(K, N, bias=bias)


@pytest.mark.parametrize("weight_only", [False, True])
def test_int8_linear_equals_the_ops(weight_only):
    lin = linear()
    m = Int8Linear.from_linear(lin, weight_only=weight_only)
    x = torch.randn(3, 5, 128)
    w_q, w_s = greenops.quantize_int8(lin.weight.detach())
    if weight_only:
        want = greenops.int8_weight_mm(x, w_q, w_s, lin.bias.detach())
    else:
        a_q, a_s = greenops.quantize_int8(x)
        want = greenops.int8_mm(a_q, a_s, w_q, w_s, lin.bias.detach())
    assert torch.equal(m(x), want)
    assert "bits=8" in repr(m) and ("W8A16" if weight_only else "W8A8") in repr(m)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int4_linear_equals_the_ops(symmetric, dtype):
    lin = linear()
    m = Int4Linear.from_linear(lin, group_size=32, symmetric=symmetric)
    x = torch.randn(4, 128).to(dtype)
    p, s, z = greenops.quantize_int4(lin.weight.detach(), 32, symmetric)
    want = greenops.int4_weight_mm(x, p, s, z, 32, lin.bias.detach().to(dtype))
    assert torch.equal(m(x), want)
    assert m(x).dtype == dtype and "bits=4, group_size=32" in repr(m)


def test_block_sparse_linear_trains_through_the_pattern():
    lin = linear(128, 64)
    m = BlockSparseLinear.from_linear(lin, block=(32, 32), sparsity=0.5)
    assert m.sparsity == 0.5 and "sparsity=50.0%" in repr(m)
    x = torch.randn(6, 128)
    dense = greenops.BlockSparseWeight(
        m.values.detach(), m.crow_indices, m.col_indices, (64, 128)
    ).to_dense()
    assert_close_to_ref(m(x), x.double() @ dense.double().T + lin.bias.double())
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    target = torch.randn(6, 64)
    losses = []
    for _ in range(20):
        loss = (m(x) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert m.values.shape == (4, 32, 32)  # the pattern holds while training


def test_int8_block_sparse_linear_equals_the_op_and_round_trips(tmp_path):
    lin = linear(128, 64, seed=3)
    m = BlockSparseLinear.from_linear(lin, block=(32, 32), sparsity=0.5, int8=True)
    assert m.values.dtype == torch.int8 and "values" not in dict(m.named_parameters())
    assert "dtype=torch.int8, per-channel scales" in repr(m)
    w = greenops.BlockSparseWeight.from_dense(lin.weight.detach(), (32, 32), sparsity=0.5)
    q = w.quantize_int8()
    x = torch.randn(6, 128)
    assert torch.equal(m(x), greenops.bsr_mm(x, q, lin.bias.detach()))
    assert m(x.bfloat16()).dtype == torch.bfloat16
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    fresh = BlockSparseLinear(128, 64, block=(32, 32), dtype=torch.int8)
    fresh.load_state_dict(load_file(str(path)))
    assert torch.equal(fresh(x), m(x)) and fresh.values.dtype == torch.int8
    rows = greenops.nn.summary(nn.Sequential(m))
    assert rows[0].bits.startswith("8 (50% sparse)")
    assert rows[0].bytes_now < 0.2 * rows[0].bytes_dense  # int8 and half the blocks


def test_sparsify_with_int8_blocks():
    model = nn.Sequential(linear(64, 64), nn.ReLU(), linear(64, 10, seed=1))
    rep = greenops.sparsify_(model, greenops.BlockSparseConfig((32, 32), 0.5, int8=True))
    assert rep.converted == ["0"] and rep.skipped[0][0] == "2"
    assert model[0].values.dtype == torch.int8
    assert model(torch.randn(3, 64)).shape == (3, 10)


def test_state_dict_round_trips_bit_exactly_also_through_safetensors(tmp_path):
    model = nn.Sequential(
        linear(128, 64), nn.ReLU(), linear(64, 64, seed=1), nn.ReLU(), linear(64, 32, seed=2)
    )
    model[0] = Int8Linear.from_linear(model[0])
    model[2] = Int4Linear.from_linear(model[2], group_size=32)
    model[4] = BlockSparseLinear.from_linear(model[4], block=(16, 16), sparsity=0.75)
    x = torch.randn(5, 128)
    want = model(x)
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    fresh = nn.Sequential(
        Int8Linear(128, 64),
        nn.ReLU(),
        Int4Linear(64, 64, group_size=32),
        nn.ReLU(),
        BlockSparseLinear(64, 32, block=(16, 16)),  # nnz unknown: taken from the checkpoint
    )
    fresh.load_state_dict(load_file(str(path)))
    assert torch.equal(fresh(x), want)
    for (k, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_quantize_reports_converted_and_skipped_layers():
    model = nn.Sequential(
        nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10)
    )
    rep = greenops.quantize_(model, greenops.Int4Config(group_size=64))
    assert rep.converted == ["0", "2"]
    assert rep.skipped == [("4", "in_features=48 is not a multiple of group_size=64")]
    assert isinstance(model[0], Int4Linear) and type(model[4]) is nn.Linear
    model2 = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64))
    rep2 = greenops.quantize_(
        model2, greenops.Int8Config(weight_only=True), lambda m, name: name == "1"
    )
    assert rep2.converted == ["1"] and rep2.skipped == [("0", "filter_fn")]
    rep3 = greenops.sparsify_(
        nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 40)),
        greenops.BlockSparseConfig((32, 32), 0.5),
    )
    assert rep3.converted == ["0"] and "not a multiple of the block" in rep3.skipped[0][1]
    assert "skipped" in str(rep)
    with pytest.raises(TypeError):
        greenops.quantize_(model, greenops.BlockSparseConfig())


def test_summary_reports_bytes_before_and_after():
    model = nn.Sequential(nn.Linear(256, 128), nn.Linear(128, 128), nn.Linear(128, 64))
    greenops.quantize_(model, greenops.Int8Config(), lambda m, n: n == "0")
    greenops.quantize_(model, greenops.Int4Config(group_size=128), lambda m, n: n == "1")
    greenops.sparsify_(model, greenops.BlockSparseConfig((32, 32), 0.75), lambda m, n: n == "2")
    rows = {r.name: r for r in summary(model)}
    assert rows["0"].bytes_now == 128 * 256 + 128 * 4 + 128 * 4  # int8 W + scales + bias
    assert rows["1"].bytes_now == 128 * 64 + 2 * 128 * 4 + 128 * 4  # packed + scales/zeros + bias
    assert rows["2"].bytes_now < rows["2"].bytes_dense / 3
    text = format_summary(list(rows.values()))
    assert "of dense" in text and "Int4Linear" in text


def test_compile_fullgraph_with_every_module():
    model = nn.Sequential(
        nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32)
    )
    model[0] = Int8Linear.from_linear(model[0])
    model[2] = Int4Linear.from_linear(model[2], group_size=32)
    model[4] = BlockSparseLinear.from_linear(model[4], block=(16, 16), sparsity=0.5)
    x = torch.randn(3, 64)
    torch._dynamo.reset()
    assert torch.equal(torch.compile(model, fullgraph=True)(x), model(x))


def test_gptq_checkpoint_runs_as_int4_linear():
    qweight, qzeros, scales, g_idx, w = gptq_tensors(128, 16, 32, act_order=True)
    m = Int4Linear.from_gptq(qweight, qzeros, scales, g_idx)
    x = torch.randn(2, 128)
    assert_close_to_ref(m(x), x.double() @ w.double().T)
    assert "act-order" in repr(m)
    fresh = Int4Linear(128, 16, bias=False, group_size=32)
    fresh.load_state_dict(m.state_dict())
    assert torch.equal(fresh(x), m(x))


def test_a_model_wide_cast_keeps_scales_fp32():
    lin = linear(64, 64, seed=4)
    mods = [
        Int8Linear.from_linear(lin),
        Int8Linear.from_linear(lin, weight_only=True),
        Int4Linear.from_linear(lin, group_size=32),
        BlockSparseLinear.from_linear(lin, block=(32, 32), sparsity=0.5, int8=True),
    ]
    x = torch.randn(3, 64).bfloat16()
    for m in mods:
        want = m(x)  # the fp32 scales, bf16 activations
        scales = {n: b.clone() for n, b in m.named_buffers() if n in type(m)._fp32}
        m.to(torch.bfloat16)
        for n, b in m.named_buffers():
            if n in scales:
                assert b.dtype == torch.float32 and torch.equal(b, scales[n]), n
        assert torch.equal(m(x), want), type(m).__name__
        m.half()
        assert all(b.dtype == torch.float32 for n, b in m.named_buffers() if n in scales)


def test_w8a8_backward_is_straight_through():
    """Int8Linear (W8A8) passes dX = dY @ (w_q * w_scale) — the activation rounding taken as
    the identity, as in W8A16 — so layers below it (LoRA adapters) train."""
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    x = torch.randn(3, 5, 64, requires_grad=True)
    m = Int8Linear.from_linear(lin)
    y = m(x)
    g = torch.randn_like(y)
    y.backward(g)
    w = m.w_q.float() * m.w_scale[:, None]
    torch.testing.assert_close(x.grad, g @ w, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        assert torch.equal(y.detach(), m(x))  # the same forward without autograd


def test_quantize_a_model_initialized_on_meta():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
    for cfg in (greenops.Int4Config(32), greenops.Int8Config()):
        m = copy.deepcopy(model)
        assert greenops.quantize_(m, cfg).converted == ["0", "2"]
        out = m(torch.empty(3, 64, device="meta"))
        assert out.device.type == "meta" and out.shape == (3, 32)
