"""AWQ and SmoothQuant: folding the input scales leaves the float model unchanged (and is
refused where a LayerNorm also feeds a residual), the scales lower the quantized error, and the
modules made keep the scales they could not fold."""

import copy

import torch
from calib_data import PostLN, PreLN, correlated

import greenops
from greenops.calibrate import scaling
from greenops.calibrate.capture import capture, discover
from greenops.calibrate.run import Undo
from greenops.nn import Int4Linear, Int8Linear


def _stage(model, x, first):
    tgt = {n: m for n, m in model.named_modules() if type(m) is torch.nn.Linear}
    stages = discover(model, x, tgt)
    return next(s for s in stages if s.names[0] == first), tgt


def test_fold_into_a_layernorm_leaves_the_float_model_unchanged():
    torch.manual_seed(0)
    model = PreLN().eval()
    x = correlated(300, 64, seed=1)
    st, tgt = _stage(model, x, "q")
    assert st.names == ["q", "k", "v"] and st.producer == "ln"
    ref = model(x).detach()
    s = torch.rand(64) * 4 + 0.25
    undo = Undo(model)
    assert scaling.fold(model, st.producer, [tgt[n] for n in st.names], s, x, undo)
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)
    assert not torch.equal(model.ln.weight, torch.ones(64))  # it did change the LayerNorm
    undo.restore()
    assert torch.equal(model.ln.weight, torch.ones(64))


def test_fold_is_refused_where_the_layernorm_feeds_a_residual():
    torch.manual_seed(0)
    model = PostLN().eval()
    x = correlated(300, 64, seed=1)
    st, tgt = _stage(model, x, "fc")
    assert st.producer == "ln"
    before = copy.deepcopy(model.state_dict())
    s = torch.rand(64) * 4 + 0.25
    assert not scaling.fold(model, st.producer, [tgt["fc"]], s, x, Undo(model))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_awq_folds_where_it_can_and_keeps_input_scales_elsewhere():
    torch.manual_seed(0)
    model = PreLN().eval()
    with torch.no_grad():  # a few loud hidden channels, so that down's search scales too
        model.up.weight[:8] *= 4
        model.up.bias[:8] *= 4
    x = correlated(1200, 64, seed=2)
    batches = [x[i : i + 200] for i in range(0, 1000, 200)]
    ref = copy.deepcopy(model)
    cfg = greenops.Int4Config(group_size=32, method="awq")
    rep = greenops.quantize_(model, cfg, calibration=batches, progress=False)
    assert sorted(rep.converted) == ["down", "k", "q", "up", "v"]
    assert rep.metrics["q"]["folded"] and rep.metrics["up"]["folded"]
    assert isinstance(model.q, Int4Linear) and model.q.in_scale is None
    # down reads GELU's output: nothing to fold into, the scales stay with the module
    assert rep.metrics["down"]["alpha"] > 0 and not rep.metrics["down"]["folded"]
    assert model.down.in_scale is not None
    for n in rep.converted:  # never worse than round to nearest on the calibration inputs
        assert rep.metrics[n]["err"] <= rep.metrics[n]["err_rtn"] * (1 + 1e-9)
    held = x[1000:]
    with torch.no_grad():
        err = (model(held) - ref(held)).pow(2).sum() / ref(held).pow(2).sum()
    assert err < 0.02


def test_smoothquant_migrates_outliers():
    """Inputs with outlier channels: the searched alpha lowers the W8A8 error on the
    calibration rows; the scales end as the module's input scale (PostLN: not foldable)."""
    torch.manual_seed(0)
    model = PostLN().eval()
    x = correlated(1200, 64, seed=3, outliers=(5, 17, 40))
    batches = [x[i : i + 200] for i in range(0, 1000, 200)]
    ref = copy.deepcopy(model)
    rep = greenops.quantize_(
        model, greenops.Int8Config(smoothquant="search"), calibration=batches, progress=False
    )
    m = rep.metrics["fc"]
    assert m["alpha"] > 0 and m["err_w8a8"] < 0.7 * m["err_w8a8_rtn"], m
    assert isinstance(model.fc, Int8Linear) and model.fc.in_scale is not None
    rtn = copy.deepcopy(ref)
    greenops.quantize_(rtn, greenops.Int8Config())
    held = x[1000:]
    with torch.no_grad():
        e_sq = (model(held) - ref(held)).pow(2).sum()
        e_rtn = (rtn(held) - ref(held)).pow(2).sum()
    assert e_sq < e_rtn


def test_input_scale_survives_state_dict():
    torch.manual_seed(0)
    model = PostLN().eval()
    x = correlated(400, 64, seed=3, outliers=(5,))
    greenops.quantize_(
        model, greenops.Int8Config(smoothquant=0.5), calibration=[x[:200], x[200:]], progress=False
    )
    fresh = PostLN().eval()
    greenops.quantize_(fresh, greenops.Int8Config())
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh(x), model(x))


def test_capture_statistics():
    torch.manual_seed(0)
    model = PreLN().eval()
    x = correlated(300, 64, seed=4)
    st, tgt = _stage(model, x, "q")
    stats = capture(model, [x[:100], x[100:]], st, tgt)
    h = model.ln(x).detach().double()
    torch.testing.assert_close(stats.H, h.T @ h, rtol=1e-5, atol=1e-3)  # fp32 products
    torch.testing.assert_close(stats.abs_max, h.abs().amax(0).float())
    assert stats.rows == 300 and stats.sample.shape[1] == 64


def test_awq_with_alpha_zero_folds_nothing_and_keeps_no_scale():
    """alpha = 0 means no scaling: neither a "folded" claim nor an input scale of ones."""
    torch.manual_seed(0)
    model = PreLN().eval()
    x = correlated(1200, 64, seed=2)
    batches = [x[i : i + 200] for i in range(0, 1000, 200)]
    cfg = greenops.Int4Config(group_size=32, method="awq")
    rep = greenops.quantize_(model, cfg, calibration=batches, progress=False)
    assert rep.metrics["down"]["alpha"] == 0  # this seed's search keeps down unscaled
    assert not rep.metrics["down"]["folded"] and model.down.in_scale is None
