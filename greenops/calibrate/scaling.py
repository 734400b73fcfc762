"""Per-input-channel scaling before quantization: AWQ (Lin et al. 2023, "AWQ: Activation-aware
Weight Quantization") and SmoothQuant (Xiao et al. 2022). Both replace x @ W.T by
(x / s) @ (W diag(s)).T — the same product in exact arithmetic — so that the quantized
W diag(s) (AWQ: salient input channels get finer steps) or the int8 activations x / s
(SmoothQuant: outlier channels moved into the weights) lose less. The 1/s is folded into the
module that produces x where that leaves the float model unchanged (checked, see fold), and is
otherwise kept as the quantized module's input scale.

Errors are measured on the calibration inputs: through H (weight-only: tr(dW H dW^T), exact) or
on the stage's sampled input rows (W8A8, whose activation rounding H cannot see).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from .capture import Stats, model_device, run_batch
from .gptq import output_error

AWQ_ALPHAS = tuple(i / 20 for i in range(20))  # AutoAWQ's grid: 0, 0.05, ..., 0.95
CLIP_RATIOS = tuple(1 - i / 20 for i in range(11))  # 1.0 down to 0.5
SMOOTH_ALPHAS = tuple(i / 10 for i in range(11))


def int4_rtn(w: torch.Tensor, group: int, symmetric: bool) -> torch.Tensor:
    """w [N, K] rounded to the int4 grid (quantize_int4, then dequantized), fp32."""
    p, s, z = ops.quantize_int4(w.float().contiguous(), group, symmetric)
    return ops.dequantize_int4(p, s, z, group)


def awq_scales(weights: list[torch.Tensor], stats: Stats, group: int, symmetric: bool):
    """(s [K], alpha, error): s = mean|x|^alpha normalized by sqrt(max s * min s), alpha from
    AWQ_ALPHAS minimizing the stage's summed relative output error after int4 rounding
    (alpha = 0: no scaling, so never worse than round-to-nearest on the calibration inputs)."""
    mean = stats.abs_mean.clamp_min(1e-8)
    H = stats.H
    best = None
    for alpha in AWQ_ALPHAS:
        s = mean.pow(alpha)
        s = s / (s.max() * s.min()).sqrt()
        err = sum(output_error(w, int4_rtn(w * s, group, symmetric) / s, H) for w in weights)
        if best is None or err < best[2]:
            best = (s, alpha, err)
    return best


def awq_clip(w: torch.Tensor, H: torch.Tensor, group: int, symmetric: bool) -> torch.Tensor:
    """w [N, K] with each (row, group) clamped to ratio * [min, max] (ratio from CLIP_RATIOS)
    where that lowers the group's output error through H's diagonal block (AWQ's clip
    search; ratio 1 keeps the group as it is)."""
    N, K = w.shape
    out = w.clone()
    for g0 in range(0, K, group):
        cols = slice(g0, g0 + group)
        wg = w[:, cols].float()
        Hg = H[cols, cols].float()
        lo, hi = wg.amin(1, keepdim=True), wg.amax(1, keepdim=True)
        best_err, best = None, wg
        for r in CLIP_RATIOS:
            wc = torch.minimum(torch.maximum(wg, r * lo), r * hi)
            d = int4_rtn(wc, group, symmetric) - wg
            err = ((d @ Hg) * d).sum(1)  # per row
            if best_err is None:
                best_err, best = err, wc
            else:
                better = err < best_err
                best_err = torch.where(better, err, best_err)
                best = torch.where(better[:, None], wc, best)
        out[:, cols] = best.to(out.dtype)
    return out


def _w8a8(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x @ w.T on greenops' W8A8 grids (per-token x, per-channel w: quantize_int8), computed in
    fp32 on the dequantized values — the int32 sums to fp32 rounding, and fast on every CPU
    (int8 GEMMs without VNNI are slow: 34x fp32 at M = 480 on an AVX2-only EPYC)."""
    a_q, a_s = ops.quantize_int8(x.contiguous())
    w_q, w_s = ops.quantize_int8(w.float().contiguous())
    return (a_q.float() * a_s[:, None]) @ (w_q.float() * w_s[:, None]).T


def smooth_scales(weights, stats: Stats, alpha):
    """(s [K], alpha, error): SmoothQuant's s_j = max|x_j|^alpha / max|w_j|^(1 - alpha) (max
    over the stage's weights), alpha given or searched over SMOOTH_ALPHAS by the W8A8 output
    error on the sampled input rows (alpha search includes no smoothing's error as a floor)."""
    x = stats.sample.float()
    amax_x = stats.abs_max.clamp_min(1e-5)
    amax_w = torch.stack([w.abs().amax(0) for w in weights]).amax(0).float().clamp_min(1e-5)
    refs = [x @ w.float().T for w in weights]
    norm = sum(float(r.pow(2).sum()) for r in refs) or 1.0

    def error(s):
        return (
            sum(
                float((_w8a8(x / s, w.float() * s) - r).pow(2).sum())
                for w, r in zip(weights, refs, strict=True)
            )
            / norm
        )

    def scales(a):
        s = (amax_x.pow(a) / amax_w.pow(1 - a)).clamp(1e-5, 1e5)
        return torch.where(stats.abs_max > 0, s, torch.ones_like(s))

    if alpha != "search":
        s = scales(float(alpha))
        return s, float(alpha), error(s)
    best = (torch.ones_like(amax_x), None, error(torch.ones_like(amax_x)))
    for a in SMOOTH_ALPHAS:
        s = scales(a)
        e = error(s)
        if e < best[2]:
            best = (s, a, e)
    return best


def _tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _tensors(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _tensors(v)]
    return []


def _same(a, b, rtol: float) -> bool:
    ta, tb = _tensors(a), _tensors(b)
    if len(ta) != len(tb) or not ta:
        return False
    for x, y in zip(ta, tb, strict=True):
        if x.shape != y.shape:
            return False
        if x.is_floating_point():
            den = y.float().abs().max().clamp_min(1e-30)
            if float((x.float() - y.float()).abs().max() / den) > rtol:
                return False
        elif not torch.equal(x, y):
            return False
    return True


@torch.no_grad()
def fold(model, producer: str | None, consumers: list[nn.Linear], s, batch, undo, rtol=1e-3):
    """Folds 1/s [K] into `producer`'s output channels (a LayerNorm/RMSNorm-like weight and
    bias, or a Linear's rows) and s into every consumer's weight columns, and keeps the change
    only if the model's outputs on `batch` stay the same within `rtol` (relative to each
    output's max): a producer whose output also feeds something else (a residual, another
    layer) changes them and is left alone. Returns whether it folded; undo records the change."""
    if producer is None:
        return False
    p = model.get_submodule(producer)
    w = getattr(p, "weight", None)
    if not isinstance(w, torch.Tensor) or w.shape[0] != s.shape[0]:
        return False
    before = run_batch(model, batch, 0)
    touched = [w] + [t for t in (getattr(p, "bias", None),) if isinstance(t, torch.Tensor)]
    touched += [c.weight for c in consumers]
    saved = [(t, t.detach().clone()) for t in touched]
    inv = (1 / s).to(model_device(model))
    for t in touched[: len(touched) - len(consumers)]:
        t.mul_((inv if t.dim() == 1 else inv[:, None]).to(t.dtype))
    for c in consumers:
        c.weight.mul_(s.to(c.weight.device, c.weight.dtype))
    if _same(run_batch(model, batch, 0), before, rtol):
        undo.extend(saved)
        return True
    for t, v in saved:
        t.copy_(v)
    return False
