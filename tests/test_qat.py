"""QAT: the straight-through estimator, prepare/convert, and a small model that trains."""

import pytest
import torch
from torch import nn

import greenops
from greenops import qat
from greenops.nn import Int4Linear, Int8Linear


def test_ste_gradient_is_the_identity_and_values_are_the_ops_contract():
    w = torch.randn(8, 64, requires_grad=True)
    fq = qat.fake_quant_int4(w, 32, False)
    fq.backward(torch.ones_like(fq))
    assert torch.equal(w.grad, torch.ones_like(w))  # min/max scales: every weight is inside
    p, s, z = greenops.quantize_int4(w.detach(), 32)
    assert torch.equal(fq.detach(), greenops.dequantize_int4(p, s, z, 32))  # the same integers
    w.grad = None
    f8 = qat.fake_quant_int8(w, dim=1)
    f8.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))
    q, sc = greenops.quantize_int8(w.detach())
    assert torch.equal(f8.detach(), q.float() * sc[:, None])


@pytest.mark.parametrize("bits, weight_only", [(8, False), (8, True), (4, True)])
def test_convert_matches_the_fake_quant_model(bits, weight_only):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 16))
    rep = qat.prepare(model, bits=bits, group_size=32, weight_only=weight_only)
    assert rep.converted == ["0", "2"]
    x = torch.randn(10, 64)
    fake = model(x)
    fake_weights = [model[0].weight.detach().clone()]
    conv = qat.convert(model)
    assert conv.converted == ["0", "2"]
    assert isinstance(model[0], Int8Linear if bits == 8 else Int4Linear)
    real = model(x)
    # the same integers; only the kernels' float rounding differs
    assert torch.allclose(real, fake, rtol=1e-4, atol=1e-4)
    layer = model[0]
    if bits == 8:
        assert torch.equal(layer.w_q, greenops.quantize_int8(fake_weights[0])[0])
    else:
        assert torch.equal(layer.packed, greenops.quantize_int4(fake_weights[0], 32)[0])


def test_qat_trains_a_small_model():
    torch.manual_seed(0)
    X = torch.randn(256, 32)
    y = (X[:, :4].sum(1) > 0).long()
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 2))
    qat.prepare(model, bits=4, group_size=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    qat.convert(model)
    acc = (model(X).argmax(1) == y).float().mean().item()
    assert acc > 0.9, acc


def test_prepare_rejects_other_bit_widths():
    with pytest.raises(ValueError):
        qat.FakeQuantLinear(8, 8, bits=3)
