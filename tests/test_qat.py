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


def _trained(**prepare_kw):
    """A small classifier prepared with `prepare_kw` and trained 60 Adam steps."""
    torch.manual_seed(0)
    X = torch.randn(256, 32)
    y = (X[:, :4].sum(1) > 0).long()
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 2))
    qat.prepare(model, bits=4, group_size=32, **prepare_kw)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, X, y


def test_qat_trains_a_small_model():
    model, X, y = _trained()
    qat.convert(model)
    acc = (model(X).argmax(1) == y).float().mean().item()
    assert acc > 0.9, acc


def test_prepare_rejects_other_bit_widths():
    with pytest.raises(ValueError):
        qat.FakeQuantLinear(8, 8, bits=3)


def _lsq_layer(bits, symmetric=False, **kw):
    torch.manual_seed(1)
    lin = nn.Linear(64, 8)
    return qat.FakeQuantLinear.from_linear(
        lin, bits=bits, group_size=32, symmetric=symmetric, learn_scales=True, **kw
    )


def test_ste_gradient_is_zero_outside_the_clipping_range():
    m = _lsq_layer(8)
    with torch.no_grad():
        m.weight_scale.mul_(0.8)  # a smaller range: the largest weights now clip
    m.quantized_weight().sum().backward()
    v = m.weight.detach() / m.weight_scale.detach()[:, 0]
    inside = (torch.round(v) >= -127) & (torch.round(v) <= 127)
    assert 0 < (~inside).sum() < inside.sum()
    assert torch.equal(m.weight.grad, inside.float())


@pytest.mark.parametrize("bits, symmetric", [(8, True), (4, True), (4, False)])
def test_lsq_scale_gradient_is_the_papers(bits, symmetric):
    m = _lsq_layer(bits, symmetric)
    with torch.no_grad():
        m.weight_scale.mul_(0.7)
    up = torch.randn(m.weight.shape)
    (m.quantized_weight() * up).sum().backward()
    N, G, g = m.weight_scale.shape[0], m.weight_scale.shape[1], m.group_size
    w = m.weight.detach().reshape(N, G, g).double()
    s = m.weight_scale.detach().double()
    z = m.weight_zero.detach().double() if m.weight_zero is not None else m._fixed_zero()
    v = w / s
    r = (torch.round(v) + z) if not torch.is_tensor(z) else torch.round(v + z)
    lo, hi = m.lo, m.hi
    # LSQ: d w_hat / d s = round(v) - v inside, (clip - z) outside; times 1/sqrt(g * q_max)
    inner = (r - z) - v
    ds = torch.where(r < lo, lo - z, torch.where(r > hi, hi - z, inner))
    expect = (ds * up.reshape(N, G, g).double()).sum(-1, keepdim=True) / (g * hi) ** 0.5
    assert torch.allclose(m.weight_scale.grad.double(), expect, rtol=1e-4, atol=1e-6)
    if m.weight_zero is not None:  # LSQ+: d w_hat / d z = 0 inside, -s outside
        dz = torch.where((r < lo) | (r > hi), -s, torch.zeros_like(s)).expand_as(w)
        expect_z = (dz * up.reshape(N, G, g).double()).sum(-1, keepdim=True) / (g * hi) ** 0.5
        assert torch.allclose(m.weight_zero.grad.double(), expect_z, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("bits, symmetric", [(8, True), (4, True), (4, False)])
def test_convert_after_lsq_keeps_the_learned_grid_and_integers(bits, symmetric):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    qat.prepare(model, bits=bits, group_size=32, symmetric=symmetric, learn_scales=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    X = torch.randn(64, 64)
    for _ in range(5):
        loss = model(X).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    minmax = qat._minmax_grid(model[0]._groups(model[0].weight.detach()), bits, symmetric)[0]
    assert not torch.allclose(model[0].weight_scale.detach(), minmax)  # the scales moved
    model.eval()
    q, s, z = model[0].integers()
    fake = model(X)
    qat.convert(model)
    layer = model[0]
    if bits == 8:
        assert torch.equal(layer.w_q, q.to(torch.int8))
        assert torch.equal(layer.w_scale, s[:, 0])
    else:
        assert torch.equal(greenops.ops.int4.unpack_int4(layer.packed), q.to(torch.uint8))
        assert torch.equal(layer.scales, s)
        assert (layer.zeros is None) == symmetric
        if not symmetric:
            assert torch.equal(layer.zeros, z)
    assert torch.allclose(model(X), fake, rtol=1e-4, atol=1e-4)


def test_relaxed_rounding_anneals_to_hard_rounding():
    m = _lsq_layer(4, relaxed=True, relaxed_steps=10, temperature=(1.0, 0.01))
    m.train()
    s, z = m.grid()
    v = m._groups(m.weight.detach()) / s + z
    lo_pt = (torch.clamp(torch.floor(v), 0, 15) - z) * s
    hi_pt = (torch.clamp(torch.floor(v) + 1, 0, 15) - z) * s
    hard = m.integers()
    temps, dist = [], []
    for step in range(10):
        temps.append(m.temperature_now())
        torch.manual_seed(step)
        wq = m.quantized_weight().detach().reshape(v.shape)
        assert int(m.relax_step) == step + 1
        # a relaxed weight lies between its two neighbouring grid points
        assert bool(((wq >= lo_pt - 1e-5) & (wq <= hi_pt + 1e-5)).all())
        # distance to the nearest grid point: the sample hardens as T falls
        dist.append(torch.minimum(wq - lo_pt, hi_pt - wq).abs().mean().item())
    assert temps == sorted(temps, reverse=True) and temps[0] == 1.0
    assert dist[-1] < 0.2 * dist[0], dist
    assert m.temperature_now() is None  # annealing over: hard rounding, straight-through
    w = m.weight
    m.weight.grad = None
    m.quantized_weight().sum().backward()
    after = m.weight.grad.clone()
    assert torch.equal(
        m.quantized_weight().detach(),
        (hard[0].float().reshape(v.shape) - z).mul(s).reshape(w.shape),
    )
    # the relaxed phase's gradient is the soft rounding's, not the identity
    m2 = _lsq_layer(4, relaxed=True, relaxed_steps=10)
    m2.quantized_weight().sum().backward()
    assert not torch.equal(m2.weight.grad, after)
    assert bool((m2.weight.grad >= 0).all())  # soft rounding is monotone


def test_relaxed_is_hard_in_eval_mode():
    m = _lsq_layer(8, relaxed=True, relaxed_steps=100)
    m.eval()
    q, s, _ = m.integers()
    assert torch.equal(m.quantized_weight().detach(), q.float() * s)
    assert int(m.relax_step) == 0


def test_lsq_and_relaxed_qat_train_and_save():
    model, X, y = _trained(learn_scales=True, relaxed=True, relaxed_steps=30)
    state = model.state_dict()
    assert int(state["0.relax_step"]) == 30  # the relaxed forwards, then it stops counting
    assert "0.weight_scale" in state
    clone = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 2))
    qat.prepare(clone, bits=4, group_size=32, learn_scales=True, relaxed=True, relaxed_steps=30)
    clone.load_state_dict(state)
    model.eval(), clone.eval()
    assert torch.equal(clone(X), model(X))
    qat.convert(model)
    acc = (model(X).argmax(1) == y).float().mean().item()
    assert acc > 0.9, acc


def test_relaxed_rejects_bad_schedules():
    with pytest.raises(ValueError, match="relaxed"):
        qat.FakeQuantLinear(8, 8, bits=8, relaxed=True, temperature=(0.1, 1.0))
