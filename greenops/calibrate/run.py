"""The calibration driver: stage by stage (capture.py), capture the inputs' statistics, then
compress the stage's Linears by the config's method and put the greenops modules in their
place. Any failure restores every module and parameter it changed (Undo), so a model is never
left half-compressed.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from ..convert import BlockSparseConfig, Int4Config, Int8Config, Report, replace, targets, why_not
from ..nn import BlockSparseLinear, Int4Linear, Int8Linear
from ..ops.int4 import per_channel
from ..quant import _pack
from ..sparse import BlockSparseWeight
from . import gptq as G
from . import prune, scaling
from .capture import CalibrationError, Progress, Stats, batches_of, capture, discover

# lam of targets_for, as a fraction of mean(diag A). all-MiniLM-L6-v2, 512 calibration
# sentences, int4 g128 GPTQ / 50% 16x16 SparseGPT held-out cosine: 0.3 -> 0.9909 / 0.748,
# 1.0 -> (0.69 for the sparse one); without correction 0.9869 / 0.615 (docs/calibration.md).
CORRECT_DAMP = 0.3


class Undo:
    """What a calibration changed: replaced modules and in-place edited tensors, restored in
    reverse order on failure."""

    def __init__(self, model: nn.Module):
        self.model, self.modules, self.tensors = model, [], []

    def replace(self, name: str, module: nn.Module) -> None:
        self.modules.append((name, replace(self.model, name, module)))

    def extend(self, saved) -> None:
        self.tensors.extend(saved)

    @torch.no_grad()
    def restore(self) -> None:
        for name, old in reversed(self.modules):
            replace(self.model, name, old)
        for t, v in reversed(self.tensors):
            t.copy_(v)


def calibrate(
    model: nn.Module,
    config,
    calibration,
    filter_fn=None,
    progress: bool = True,
    correct: bool = True,
) -> Report:
    """Compresses the model's nn.Linear layers in place by a calibrated method (greenops
    quantize_/sparsify_ with calibration=...): `config` one Int8Config / Int4Config /
    BlockSparseConfig for every layer, or {layer name: config} (layers not named stay float).
    Returns the report with per-layer metrics; raises CalibrationError (model unchanged) when
    calibration cannot go on.

    correct=True: each layer is fitted to the *float* model's outputs on the compressed
    model's inputs (a float copy of the model runs beside it: twice the model's memory), so
    that every layer also absorbs the error of the layers compressed before it
    (targets_for); False: to its own float weights on those inputs (GPTQ's sequential mode
    as published)."""
    batches = batches_of(calibration)
    report = Report()
    per_layer = isinstance(config, dict)
    if per_layer:
        chosen = {}
        for name, m in targets(model, None, filter_fn, report).items():
            c = config.get(name)
            why = None if c is None else why_not(c, m)
            if c is None:
                continue
            if why:
                report.skipped.append((name, why))
            else:
                chosen[name] = m
        tgt = chosen
    else:
        tgt = targets(model, config, filter_fn, report)
    if not tgt:
        return report
    was_training = model.training
    model.eval()
    undo = Undo(model)
    float_model = copy.deepcopy(model) if correct else None
    try:
        stages = discover(model, batches[0], tgt)
        bar = Progress(len(stages), "calibrate", progress)
        for st in stages:
            names = [n for n in st.names if n in tgt]
            if st.in_features == 0:  # never ran on the calibration batches
                report.skipped += [(n, "did not run on the calibration batches") for n in names]
                bar.step("(not run)")
                continue
            modules = {n: model.get_submodule(n) for n in st.names}
            ref = None
            if float_model is not None:
                ref = (float_model, {n: float_model.get_submodule(n) for n in st.names})
            stats = capture(model, batches, st, modules, reference=ref)
            cfgs = {n: config[n] if per_layer else config for n in names}
            _stage(model, st, names, modules, stats, cfgs, batches[0], undo, report)
            bar.step(names[0] + (f" +{len(names) - 1}" if len(names) > 1 else ""))
    except BaseException:
        undo.restore()
        raise
    finally:
        model.train(was_training)
    return report


def _stage(model, st, names, modules, stats: Stats, cfgs, batch, undo, report) -> None:
    """Compresses one stage's target layers (they share one input)."""
    kinds = {type(c) for c in cfgs.values()}
    groups: dict = {}
    for n, c in cfgs.items():
        groups.setdefault(c, []).append(n)
    for c, ns in groups.items():
        t0 = time.perf_counter()
        scale, folded = None, False
        weights = [modules[n].weight.detach().float() for n in ns]
        H = stats.H
        base = {n: _rtn_error(c, w, H) for n, w in zip(ns, weights, strict=True)}  # unscaled
        if stats.B is not None:
            weights = targets_for(weights, stats, CORRECT_DAMP)
        base_key = "err_magnitude" if isinstance(c, BlockSparseConfig) else "err_rtn"
        # one scale per input, shared by the stage's layers (so that it can be folded once)
        if isinstance(c, Int4Config) and c.method == "awq" and len(kinds) == 1:
            g = per_channel(c.group_size, st.in_features)
            scale, alpha, _ = scaling.awq_scales(weights, stats, g, c.symmetric)
            extra = {"alpha": alpha}
        elif isinstance(c, Int8Config) and c.smoothquant is not None and len(kinds) == 1:
            scale, alpha, err = scaling.smooth_scales(weights, stats, c.smoothquant)
            none = scaling.smooth_scales(weights, stats, 0.0)[2] if alpha != 0 else err
            extra = {"alpha": alpha, "err_w8a8_rtn": none, "err_w8a8": err}
        else:
            extra = {}
        if scale is not None and bool((scale == 1).all()):
            scale = None  # alpha 0: nothing to fold (a fold of ones would pass as "folded")
        if "alpha" in extra:
            extra["folded"] = False
        if scale is not None:
            consumers = [modules[n] for n in st.names]
            folded = scaling.fold(model, st.producer, consumers, scale, batch, undo)
            weights = [w * scale for w in weights]  # the layers read x / s from here on
            H = stats.H / (scale.double()[:, None] * scale.double()[None, :])
            extra["folded"] = folded
        for n, w in zip(ns, weights, strict=True):
            lin = modules[n]
            in_scale = None if scale is None or folded else 1 / scale
            try:
                module, metrics = _layer(lin, w, H, c, in_scale)
                metrics[base_key] = base[n]
            except CalibrationError as e:
                report.skipped.append((n, str(e)))
                continue
            undo.replace(n, module)
            report.converted.append(n)
            metrics.update(extra, seconds=time.perf_counter() - t0)
            report.metrics[n] = metrics


def targets_for(weights, stats: Stats, damp: float) -> list[torch.Tensor]:
    """The weights that best reproduce the float model's outputs on the compressed model's
    inputs: W~ = argmin ||W X_f - W' X_c||^2 + lam ||W' - W||^2 = (W B + lam W)(A + lam I)^-1,
    A = X_c^T X_c (stats.H), B = X_f^T X_c (stats.B), lam = damp * mean(diag A) (pulls W~
    towards W where the calibration rows say little). Every method then compresses W~ under
    A: since W~ solves the least squares, ||W X_f - Q X_c||^2 = ||W X_f - W~ X_c||^2 +
    ||(W~ - Q) X_c||^2, so minimizing the second term, as the methods do, is what is left."""
    A, B = stats.H, stats.B
    lam = damp * A.diagonal().mean().clamp_min(1e-30)
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    out = []
    for w in weights:
        wd = w.double()
        rhs = (wd @ B + lam * wd).T
        out.append(torch.linalg.solve(A + lam * eye, rhs).T.float())
    return out


def _rtn_error(c, w, H) -> float | None:
    """The relative output error of the data-free default on this layer (round to nearest;
    magnitude pruning), for the report."""
    if isinstance(c, Int4Config):
        return G.output_error(
            w, scaling.int4_rtn(w, per_channel(c.group_size, w.shape[1]), c.symmetric), H
        )
    if isinstance(c, Int8Config):
        grid = G.Grid(8, w.shape[1], True)
        s, z = grid.params(w)
        return G.output_error(w, grid.dequantize(grid.quantize(w, s, z), s, z), H)
    if isinstance(c, BlockSparseConfig):
        mask = prune.keep_mask(prune.block_scores(w, H, tuple(c.block), "magnitude"), c.sparsity)
        dense = mask.repeat_interleave(c.block[0], 0).repeat_interleave(c.block[1], 1)
        return G.output_error(w, w * dense, H)
    return None


def _layer(lin: nn.Linear, w: torch.Tensor, H, c, in_scale):
    """(the greenops module for one layer, its metrics). w: the (possibly scaled) float weight
    to compress; H: the Hessian of the inputs it will see (errors are invariant to the
    scaling: x @ W.T = (x / s) @ (W diag s).T)."""
    bias = lin.bias
    dev = lin.weight.device
    w0 = w
    if isinstance(c, Int4Config):
        g = per_channel(c.group_size, w.shape[1])
        metrics = {"method": c.method}
        if c.method == "gptq":
            res = G.gptq(
                w,
                H,
                G.Grid(4, g, c.symmetric),
                damp=c.damp,
                act_order=c.act_order,
                static_groups=c.static_groups,
            )
            metrics["err"] = G.output_error(w0, res.dequantize(), H)
            return int4_module(res, g, c.symmetric, bias, in_scale, dev), metrics
        # awq: the clip search on the scaled weight, then round to nearest
        w = scaling.awq_clip(w, H, g, c.symmetric)
        m = Int4Linear.from_linear(_as_linear(w, bias), g, c.symmetric)
        if in_scale is not None:
            m.in_scale = in_scale.float().to(dev)
        metrics["err"] = G.output_error(w0, m.int4_weight().dequantize(), H)
        return m.to(dev), metrics
    if isinstance(c, Int8Config):
        grid = G.Grid(8, w.shape[1], True)
        metrics = {"method": c.method}
        if c.method == "gptq":
            res = G.gptq(w, H, grid, damp=c.damp, act_order=c.act_order)
            q, s = res.q, res.scales[:, 0]
            metrics["err"] = G.output_error(w0, res.dequantize(), H)
        else:
            s, z = grid.params(w)
            q = grid.quantize(w, s, z)
            metrics["err"] = G.output_error(w0, grid.dequantize(q, s, z), H)
        m = Int8Linear.from_quantized(q.to(torch.int8), s.float(), bias, c.weight_only, in_scale)
        return m.to(dev), metrics
    if isinstance(c, BlockSparseConfig):
        return _block_sparse(lin, w, H, c)
    raise TypeError(f"greenops.calibrate: no calibrated method for {type(c).__name__}")


def _as_linear(w: torch.Tensor, bias) -> nn.Linear:
    lin = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None, device=w.device)
    with torch.no_grad():
        lin.weight.copy_(w)
        if bias is not None:
            lin.bias.copy_(bias)
    return lin


def int4_module(res: G.Result, g: int, symmetric: bool, bias, in_scale, device) -> Int4Linear:
    """An Int4Linear holding GPTQ's integers; an act-order result as a permutation that puts
    each group's columns together, each group's columns ascending (from_gptq's order, so that
    to_gptq / from_gptq round-trip bit for bit)."""
    K = res.q.shape[1]
    q, in_perm = res.q, None
    if not torch.equal(res.g_idx, torch.arange(K, device=res.g_idx.device) // g):
        in_perm = torch.argsort(res.g_idx, stable=True)
        q = q[:, in_perm]
    zeros = None if symmetric else res.zeros
    m = Int4Linear.from_quantized(
        _pack(q.to(torch.uint8)), res.scales, zeros, g, bias, in_perm, in_scale
    )
    return m.to(device)


def _block_sparse(lin: nn.Linear, w, H, c: BlockSparseConfig):
    block = tuple(c.block)
    scores = prune.block_scores(w, H, block, c.method, c.damp)
    mask = prune.keep_mask(scores, c.sparsity)
    dense_mask = mask.repeat_interleave(block[0], 0).repeat_interleave(block[1], 1)
    metrics = {"method": c.method}
    w_new = (
        prune.reconstruct(w, H, mask, block, c.damp) if c.method == "sparsegpt" else w * dense_mask
    )
    dev, dtype = lin.weight.device, lin.weight.dtype
    if not c.int8:
        metrics["err"] = G.output_error(w, w_new, H)
        sw = BlockSparseWeight.from_dense(w_new.to(dtype), block, mask=mask)
        return BlockSparseLinear.from_weight(sw, lin.bias).to(dev), metrics
    # int8 blocks: per-output-channel scales over the kept weights, then GPTQ with the pattern
    grid = G.Grid(8, w.shape[1], True)
    res = G.gptq(w_new, H, grid, damp=c.damp, mask=dense_mask)
    metrics["err"] = G.output_error(w, res.dequantize(), H)
    qf = BlockSparseWeight.from_dense(res.q, block, mask=mask)
    sw = BlockSparseWeight(
        qf.values.to(torch.int8),
        qf.crow_indices,
        qf.col_indices,
        qf.shape,
        validate=False,
        scales=res.scales[:, 0].float().contiguous(),
    )
    m = BlockSparseLinear.from_weight(sw, lin.bias, c.int8_act)
    return m.to(dev), metrics
