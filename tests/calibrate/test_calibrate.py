"""The calibration entry point: bad input is a clear error and leaves the model unchanged,
Hugging Face transformers models (built from a config here, no download) calibrate end to end,
and the sequential order (each layer calibrated on the compressed layers' outputs)."""

import copy

import pytest
import torch
from calib_data import correlated
from torch import nn

import greenops
from greenops.nn import Int4Linear

GPTQ = greenops.Int4Config(group_size=32, method="gptq")


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 32))


def _same_model(a, b):
    assert [type(m) for m in a.modules()] == [type(m) for m in b.modules()]
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), k


@pytest.mark.parametrize(
    "calibration, match",
    [
        ([], "calibration set is empty"),
        (torch.randn(4, 64), "not a single Tensor"),
        ([torch.randn(4, 64), torch.randn(4, 63)], "batch 1 does not fit the model"),
        ([torch.full((4, 64), float("nan"))], "0: its input holds NaN or Inf"),
    ],
)
def test_bad_calibration_data_is_a_clear_error(calibration, match):
    model = _mlp()
    before = copy.deepcopy(model)
    with pytest.raises(greenops.CalibrationError, match=match):
        greenops.quantize_(model, GPTQ, calibration=calibration, progress=False)
    _same_model(model, before)


class _LogOf(nn.Module):
    def forward(self, x):
        return torch.log(x)  # NaN for negative inputs: the second stage's input only


def test_a_failure_halfway_restores_every_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), _LogOf(), nn.Linear(64, 32))
    before = copy.deepcopy(model)
    x = torch.randn(100, 64)  # stage 0 calibrates and is replaced; stage 1 sees NaN
    with pytest.raises(greenops.CalibrationError, match="2: its input holds NaN"):
        greenops.quantize_(model, GPTQ, calibration=[x], progress=False)
    _same_model(model, before)


def test_an_interrupt_restores_the_model(monkeypatch):
    from greenops.calibrate import run

    model = _mlp()
    before = copy.deepcopy(model)
    real, calls = run._layer, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(run, "_layer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        greenops.quantize_(model, GPTQ, calibration=[torch.randn(50, 64)], progress=False)
    _same_model(model, before)


def test_methods_and_calibration_must_agree():
    with pytest.raises(ValueError, match="needs calibration data"):
        greenops.quantize_(_mlp(), GPTQ)
    with pytest.raises(ValueError, match="needs calibration data"):
        greenops.sparsify_(_mlp(), greenops.BlockSparseConfig((16, 16), 0.5, method="wanda"))
    with pytest.raises(ValueError, match="uses no calibration data"):
        greenops.quantize_(_mlp(), greenops.Int4Config(32), calibration=[torch.randn(4, 64)])
    with pytest.raises(ValueError, match="method must be one of"):
        greenops.Int4Config(method="hqq")
    with pytest.raises(ValueError, match="group_size must be"):
        greenops.Int4Config(group_size=0)
    with pytest.raises(TypeError, match="a bare nn.Linear cannot replace itself"):
        greenops.quantize_(nn.Linear(64, 64), greenops.Int4Config(32))


def test_layers_are_calibrated_in_sequence_on_compressed_outputs(monkeypatch):
    """The second layer's Hessian comes from the first layer as compressed (GPTQ's sequential
    mode), not from the float model."""
    from greenops.calibrate import run

    model = _mlp().eval()
    x = correlated(400, 64, seed=1)
    seen = {}
    real = run._layer

    def spy(lin, w, H, c, in_scale):
        seen[id(lin)] = H.clone()
        return real(lin, w, H, c, in_scale)

    second = model[2]
    float_in = torch.nn.functional.gelu(model[0](x)).detach().double()
    monkeypatch.setattr(run, "_layer", spy)
    greenops.quantize_(model, GPTQ, calibration=[x], progress=False)
    q_in = torch.nn.functional.gelu(model[0](x)).detach().double()
    torch.testing.assert_close(seen[id(second)], q_in.T @ q_in, rtol=1e-5, atol=1e-3)
    assert not torch.allclose(seen[id(second)], float_in.T @ float_in, rtol=1e-5, atol=1e-3)


def test_training_mode_is_restored_and_per_layer_configs():
    model = _mlp().train()
    cfgs = {"0": GPTQ, "2": greenops.Int8Config(method="gptq")}
    rep = greenops.calibrate.calibrate(model, cfgs, [torch.randn(50, 64)], progress=False)
    assert model.training and rep.converted == ["0", "2"]
    assert isinstance(model[0], Int4Linear) and isinstance(model[2], greenops.nn.Int8Linear)
