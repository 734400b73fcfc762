"""Quantization-aware training: fake-quantized Linear layers that train in float and convert to
the real Int8Linear / Int4Linear with the same integers.

    report = greenops.qat.prepare(model, bits=4, group_size=128, learn_scales=True)
    opt = torch.optim.AdamW(model.parameters())   # after prepare: it may add scale parameters
    train(model)                                  # the forward sees quantized weights
    greenops.qat.convert(model)                   # -> Int4Linear holding the same integers

The fake quantizer is the ops' own contract in differentiable form: int8 symmetric per output
channel (as quantize_int8) and, for W8A8, per-token int8 activations (as Int8Linear's dynamic
quantization); int4 group-wise (as quantize_int4: symmetric with z = 8, or asymmetric with a
float zero point). With every option, one grid per group: w_hat = (clamp(r(w / s + z), lo, hi)
- z) * s, and `integers()` gives the clamp(round(...)) that `convert` stores.

- Scales: min/max of the current weights (default; the ops' quantizers give the same grid), or
  `learn_scales=True`: s (and, asymmetric int4, z) are parameters initialised from min/max and
  trained by LSQ (Esser et al. 2020; LSQ+ for the offset): the rounding is straight-through and
  the scale's gradient is multiplied by 1 / sqrt(group numel * q_max).
- Rounding r: straight-through (forward round, backward identity): d w_hat / d w = 1 inside the
  clipping range and 0 outside (with min/max scales every weight is inside). `relaxed=True`
  starts with relaxed quantization (Louizos et al. 2019) instead: each weight rounds to one of
  its two neighbouring grid points, the rounding noise logistic with scale `sigma` grid steps,
  drawn through a binary-concrete relaxation of temperature T annealed geometrically from
  `temperature[0]` to `temperature[1]` over `relaxed_steps` training forwards (the paper learns
  sigma per layer; here it is fixed); after that, and in eval mode, the rounding is hard.
  Activations (W8A8) keep dynamic min/max per token: that is what Int8Linear does at inference.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .convert import Report
from .ops.int4 import per_channel


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Exactly q in the forward (q + 0), x's gradient path in the backward."""
    return q.detach() + (x - x.detach())


def _grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    """x in the forward, g * (x's gradient) in the backward (LSQ's step-size gradient scale)."""
    return _ste(x * g, x)  # exactly x (x + 0), unlike (x - x*g) + x*g


def fake_quant_int8(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Symmetric int8 along `dim` (quantize_int8's contract): round, clamp, rescale; STE."""
    xf = x.float()
    scale = xf.detach().abs().amax(dim=dim, keepdim=True).clamp_min(1e-12) / 127
    q = torch.clamp(torch.round(xf / scale), -127, 127) * scale
    return _ste(xf, q).to(x.dtype)


def _minmax_grid(wg: torch.Tensor, bits: int, symmetric: bool):
    """(scale, zero) per group of wg [N, G, g] as the ops' quantizers compute them."""
    if bits == 8:
        return wg.abs().amax(-1, keepdim=True).clamp_min(1e-12) / 127, None
    if symmetric:
        s = wg.abs().amax(-1, keepdim=True) / 7
        return torch.where(s == 0, torch.ones_like(s), s), None
    lo, hi = wg.amin(-1, keepdim=True), wg.amax(-1, keepdim=True)
    s = (hi - lo) / 15
    s = torch.where(s == 0, torch.ones_like(s), s)
    return s, -lo / s


def fake_quant_int4(w: torch.Tensor, group_size: int, symmetric: bool) -> torch.Tensor:
    """Group-wise int4 (quantize_int4's contract) with min/max scales, STE."""
    N, K = w.shape
    g = per_channel(group_size, K)
    wf = w.float().reshape(N, K // g, g)
    s, z = _minmax_grid(wf.detach(), 4, symmetric)
    z = 8.0 if z is None else z
    q = torch.clamp(_shift_round(wf / s, z, torch.round), 0, 15)
    return _ste(wf, (q - z) * s).reshape(N, K).to(w.dtype)


def _shift_round(v: torch.Tensor, z, rounder) -> torch.Tensor:
    """The ops' order of operations: a fixed integer zero point is added after rounding
    (round(v) + 8: adding 8 first would round v in fp32 again), a float one before."""
    return rounder(v) + z if not torch.is_tensor(z) else rounder(v + z)


class FakeQuantLinear(nn.Linear):
    """nn.Linear whose forward uses the fake-quantized weight (and, for bits=8 without
    weight_only, fake-quantized per-token activations). See the module docstring."""

    def __init__(
        self,
        in_features,
        out_features,
        bias=True,
        bits=8,
        group_size=128,
        symmetric=False,
        weight_only=False,
        learn_scales=False,
        relaxed=False,
        relaxed_steps=1000,
        temperature=(1.0, 0.05),
        sigma=1 / 3,
        device=None,
        dtype=None,
    ):
        super().__init__(in_features, out_features, bias, device, dtype)
        if bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, got {bits}")
        if relaxed and (relaxed_steps < 1 or not 0 < temperature[1] <= temperature[0]):
            raise ValueError(
                "relaxed quantization needs relaxed_steps >= 1 and temperatures "
                f"0 < end <= start, got {relaxed_steps}, {temperature}"
            )
        self.bits, self.symmetric = bits, bits == 8 or symmetric
        self.group_size = per_channel(group_size, in_features) if bits == 4 else in_features
        if in_features % self.group_size:
            raise ValueError(
                f"FakeQuantLinear: in_features={in_features} is not a multiple of "
                f"group_size={self.group_size}"
            )
        self.weight_only = weight_only or bits == 4
        self.lo, self.hi = (-127, 127) if bits == 8 else (0, 15)
        self.learn_scales, self.relaxed = learn_scales, relaxed
        self.relaxed_steps, self.temperature, self.sigma = relaxed_steps, temperature, sigma
        # training forwards done while relaxed (a buffer: it is saved and moves with the model)
        self.register_buffer("relax_step", torch.zeros((), dtype=torch.int64))
        self._relax_done = False  # the counter has reached relaxed_steps (no more reads)
        self.weight_scale = self.weight_zero = None
        if learn_scales:
            self._init_scales()

    def _init_scales(self) -> None:
        """LSQ's parameters, from the min/max grid of the current weights."""
        s, z = _minmax_grid(self._groups(self.weight.detach()), self.bits, self.symmetric)
        self.weight_scale = nn.Parameter(s)
        self.weight_zero = None if z is None else nn.Parameter(z)

    def _groups(self, w: torch.Tensor) -> torch.Tensor:
        return w.float().reshape(self.out_features, -1, self.group_size)

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
        if m.learn_scales:
            m._init_scales()  # from the copied weights
        return m

    def grid(self) -> tuple[torch.Tensor, torch.Tensor | float]:
        """(scale [N, G, 1], zero point) in force: learned, or min/max of the weights."""
        if self.learn_scales:
            s = self.weight_scale.abs().clamp_min(1e-12)
            z = self.weight_zero if self.weight_zero is not None else self._fixed_zero()
            return s, z
        s, z = _minmax_grid(self._groups(self.weight.detach()), self.bits, self.symmetric)
        return s, self._fixed_zero() if z is None else z

    def _fixed_zero(self) -> float:
        return 0.0 if self.bits == 8 else 8.0

    def integers(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(q [N, K] int16, scales [N, G], zeros [N, G] or None) of the hard-rounded weight:
        what convert() stores and what the eval-mode forward computes with."""
        with torch.no_grad():
            s, z = self.grid()
            v = _shift_round(self._groups(self.weight) / s, z, torch.round)
            q = torch.clamp(v, self.lo, self.hi)
            zeros = z.squeeze(-1).float().clone() if torch.is_tensor(z) else None
            return q.reshape(self.weight.shape).to(torch.int16), s.squeeze(-1).clone(), zeros

    def temperature_now(self) -> float | None:
        """The relaxation's temperature for the next training forward; None once hard. Reads
        the step counter (a device-to-host copy on GPU) only while the relaxation may last."""
        if not self.relaxed or self._relax_done:
            return None
        step = int(self.relax_step)
        if step >= self.relaxed_steps:
            self._relax_done = True
            return None
        t0, t1 = self.temperature
        return t0 * (t1 / t0) ** (step / self.relaxed_steps)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._relax_done = False  # a loaded counter may restart the relaxation

    def _round(self, x: torch.Tensor) -> torch.Tensor:
        t = self.temperature_now() if self.training else None
        if t is None:
            return _ste(x, torch.round(x))  # straight-through
        self.relax_step += 1
        base = torch.floor(x).detach()
        logit = (x - base - 0.5) / self.sigma  # log-odds of rounding up under logistic noise
        u = torch.rand_like(x).clamp(1e-6, 1 - 1e-6)
        return base + torch.sigmoid((logit + torch.log(u) - torch.log1p(-u)) / t)

    def quantized_weight(self) -> torch.Tensor:
        s, z = self.grid()
        if self.learn_scales:
            g = 1.0 / math.sqrt(self.group_size * self.hi)
            s = _grad_scale(s, g)
            z = _grad_scale(z, g) if torch.is_tensor(z) else z
        wg = self._groups(self.weight)
        q = torch.clamp(_shift_round(wg / s, z, self._round), self.lo, self.hi)
        return ((q - z) * s).reshape(self.weight.shape).to(self.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.weight_only:
            x = fake_quant_int8(x, dim=-1)
        return nn.functional.linear(x, self.quantized_weight().to(x.dtype), self.bias)

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", fake-quant bits={self.bits}"
            + (f", group_size={self.group_size}" if self.bits == 4 else "")
            + (", LSQ scales" if self.learn_scales else "")
            + (f", relaxed for {self.relaxed_steps} steps" if self.relaxed else "")
        )


def prepare(
    model: nn.Module,
    bits: int = 8,
    group_size: int = 128,
    symmetric: bool = False,
    weight_only: bool = False,
    learn_scales: bool = False,
    relaxed: bool = False,
    relaxed_steps: int = 1000,
    temperature: tuple[float, float] = (1.0, 0.05),
    filter_fn: Callable | None = None,
) -> Report:
    """Replaces nn.Linear modules by FakeQuantLinear in place (the layers int4 cannot take —
    K not even and a multiple of the group — are skipped and reported). Build the optimizer
    after this: learn_scales adds parameters."""
    from .convert import Int4Config, Int8Config, _convert

    config = Int4Config(group_size, symmetric) if bits == 4 else Int8Config(weight_only)
    kw = dict(
        bits=bits,
        group_size=group_size,
        symmetric=symmetric,
        weight_only=weight_only,
        learn_scales=learn_scales,
        relaxed=relaxed,
        relaxed_steps=relaxed_steps,
        temperature=temperature,
    )
    return _convert(model, config, filter_fn, lambda m: FakeQuantLinear.from_linear(m, **kw))


def convert(model: nn.Module) -> Report:
    """Replaces every FakeQuantLinear by the real module (Int8Linear / Int4Linear) holding
    exactly its `integers()` and grid, so outputs match the eval-mode fake-quant model up to
    the kernels' float rounding."""
    from .nn import Int4Linear, Int8Linear

    report = Report()
    for name, m in list(model.named_modules()):
        if not isinstance(m, FakeQuantLinear):
            continue
        q, s, z = m.integers()
        bias = None if m.bias is None else m.bias.detach().float()
        if m.bits == 8:
            real = Int8Linear.from_quantized(q.to(torch.int8), s[:, 0], bias, m.weight_only)
        else:
            q = q.to(torch.uint8)
            packed = (q[:, 0::2] | (q[:, 1::2] << 4)).contiguous()
            real = Int4Linear.from_quantized(packed, s, z, m.group_size, bias)
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, real)
        report.converted.append(name)
    return report
