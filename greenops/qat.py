"""Quantization-aware training: fake-quantized Linear layers (straight-through estimator) that
train in float and convert to the real Int8Linear / Int4Linear with the same integers.

    greenops.qat.prepare(model, bits=4, group_size=128)   # nn.Linear -> FakeQuantLinear
    train(model)                                          # forward sees quantized weights
    greenops.qat.convert(model)                           # -> Int4Linear, same integers

The fake quantizer is the ops' own contract, in differentiable form: int8 per output channel
(symmetric, as quantize_int8) and, with act_bits=8, per-token int8 activations (as Int8Linear's
W8A8); int4 group-wise (as quantize_int4). The scales follow the weights (min/max); the rounding
is straight-through: d(fake_quant(w))/dw = 1 inside the clipping range and 0 outside (with
min/max scales every weight is inside, so the gradient is the identity).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .convert import Report
from .ops.int4 import per_channel


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Exactly q in the forward (q + 0), the identity's gradient in the backward."""
    return q.detach() + (x - x.detach())


def fake_quant_int8(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Symmetric int8 along `dim` (quantize_int8's contract): round, clamp, rescale; STE."""
    xf = x.float()
    scale = xf.detach().abs().amax(dim=dim, keepdim=True).clamp_min(1e-12) / 127
    q = torch.clamp(torch.round(xf / scale), -127, 127) * scale
    return _ste(xf, q).to(x.dtype)


def fake_quant_int4(w: torch.Tensor, group_size: int, symmetric: bool) -> torch.Tensor:
    """Group-wise int4 (quantize_int4's contract), STE."""
    N, K = w.shape
    g = per_channel(group_size, K)
    wf = w.float().reshape(N, K // g, g)
    d = wf.detach()
    if symmetric:
        s = d.abs().amax(-1, keepdim=True) / 7
        s = torch.where(s == 0, torch.ones_like(s), s)
        q = (torch.clamp(torch.round(wf / s) + 8, 0, 15) - 8) * s
    else:
        lo, hi = d.amin(-1, keepdim=True), d.amax(-1, keepdim=True)
        s = (hi - lo) / 15
        s = torch.where(s == 0, torch.ones_like(s), s)
        z = -lo / s
        q = (torch.clamp(torch.round(wf / s + z), 0, 15) - z) * s
    return _ste(wf, q).reshape(N, K).to(w.dtype)


class FakeQuantLinear(nn.Linear):
    """nn.Linear whose forward uses the fake-quantized weight (and, for bits=8 without
    weight_only, fake-quantized per-token activations)."""

    def __init__(
        self,
        in_features,
        out_features,
        bias=True,
        bits=8,
        group_size=128,
        symmetric=False,
        weight_only=False,
        device=None,
        dtype=None,
    ):
        super().__init__(in_features, out_features, bias, device, dtype)
        if bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, got {bits}")
        self.bits, self.group_size, self.symmetric = bits, group_size, symmetric
        self.weight_only = weight_only or bits == 4

    @classmethod
    def from_linear(cls, linear: nn.Linear, **kw) -> FakeQuantLinear:
        m = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
            **kw,
        )
        with torch.no_grad():
            m.weight.copy_(linear.weight)
            if linear.bias is not None:
                m.bias.copy_(linear.bias)
        return m

    def quantized_weight(self) -> torch.Tensor:
        if self.bits == 8:
            return fake_quant_int8(self.weight, dim=1)
        return fake_quant_int4(self.weight, self.group_size, self.symmetric)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.weight_only:
            x = fake_quant_int8(x, dim=-1)
        return nn.functional.linear(x, self.quantized_weight().to(x.dtype), self.bias)

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", fake-quant bits={self.bits}"
            + (f", group_size={self.group_size}" if self.bits == 4 else "")
        )


def prepare(
    model: nn.Module,
    bits: int = 8,
    group_size: int = 128,
    symmetric: bool = False,
    weight_only: bool = False,
    filter_fn: Callable | None = None,
) -> Report:
    """Replaces nn.Linear modules by FakeQuantLinear in place (the layers int4 cannot take —
    K not even and a multiple of the group — are skipped and reported)."""
    from .convert import Int4Config, Int8Config, _convert

    config = Int4Config(group_size, symmetric) if bits == 4 else Int8Config(weight_only)
    return _convert(
        model,
        config,
        filter_fn,
        lambda m: FakeQuantLinear.from_linear(
            m, bits=bits, group_size=group_size, symmetric=symmetric, weight_only=weight_only
        ),
    )


def convert(model: nn.Module) -> Report:
    """Replaces every FakeQuantLinear by the real module (Int8Linear / Int4Linear) quantized
    from its trained weight with the ops' quantizers: the same integers the fake quantizer
    used, so outputs match the fake-quant model up to float rounding."""
    from .nn import Int4Linear, Int8Linear

    report = Report()
    for name, m in list(model.named_modules()):
        if not isinstance(m, FakeQuantLinear):
            continue
        lin = nn.Linear(m.in_features, m.out_features, m.bias is not None, device=m.weight.device)
        with torch.no_grad():
            lin.weight.copy_(m.weight.float())
            if m.bias is not None:
                lin.bias.copy_(m.bias.float())
        real = (
            Int8Linear.from_linear(lin, m.weight_only)
            if m.bits == 8
            else Int4Linear.from_linear(lin, m.group_size, m.symmetric)
        )
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, real)
        report.converted.append(name)
    return report
