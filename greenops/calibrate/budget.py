"""Per-layer budgets: measure each layer's output error on the calibration inputs under every
candidate config, then choose one config per layer (or leave it float) so that the summed
relative error is least while the weight bytes stay within the budget — a multiple-choice
knapsack, solved by dynamic programming over the Pareto frontier of (bytes, error) pairs, exact
unless the frontier passes MAX_FRONTIER points (then thinned; never over the budget).

Errors are measured per layer on the float model's inputs (each candidate module run on the
stage's sampled input rows against the float layer: activation rounding included), then the
chosen configs are applied by the sequential calibration (run.calibrate).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..convert import BlockSparseConfig, Int4Config, Int8Config, Report, targets, why_not
from . import run
from .capture import CalibrationError, Progress, batches_of, capture, discover
from .recipe import recorded

DEFAULT_CANDIDATES = (
    Int8Config(method="gptq"),
    Int4Config(group_size=128, method="gptq"),
    Int4Config(group_size=64, method="gptq"),
    Int4Config(group_size=32, method="gptq"),
    BlockSparseConfig((16, 16), 0.5, method="sparsegpt"),
    BlockSparseConfig((16, 16), 0.5, int8=True, method="sparsegpt"),
    BlockSparseConfig((16, 16), 0.75, int8=True, method="sparsegpt"),
)
MAX_FRONTIER = 20000


def module_bytes(m: nn.Module) -> int:
    """Bytes of every parameter and buffer (what the module holds in memory)."""
    return sum(t.numel() * t.element_size() for t in [*m.parameters(), *m.buffers()])


def label(c) -> str:
    if c is None:
        return "float"
    if isinstance(c, Int8Config):
        return f"int8{'-w8a16' if c.weight_only else ''} {c.method}"
    if isinstance(c, Int4Config):
        return f"int4 g{c.group_size} {c.method}"
    bn, bk = c.block
    return f"bsr {bn}x{bk} {c.sparsity:.0%}{' int8' if c.int8 else ''} {c.method}"


def measure(model, batches, tgt, candidates, progress) -> dict[str, list[tuple]]:
    """{layer: [(config or None, bytes, relative output error), ...]} on the float model."""
    out: dict[str, list[tuple]] = {}
    stages = [s for s in discover(model, batches[0], tgt) if s.in_features]
    bar = Progress(len(stages), "budget: measure", progress)
    for st in stages:
        modules = {n: model.get_submodule(n) for n in st.names}
        stats = capture(model, batches, st, modules)
        x = stats.sample
        for n in (n for n in st.names if n in tgt):
            lin = modules[n]
            with torch.no_grad():
                ref = lin(x.to(lin.weight.dtype)).float()
            den = float(ref.pow(2).sum()) or 1.0
            rows = [(None, module_bytes(lin), 0.0)]
            for c in candidates:
                if why_not(c, lin):
                    continue
                try:
                    m, _ = run._layer(lin, lin.weight.detach().float(), stats.H, c, None)
                except CalibrationError:
                    continue
                with torch.no_grad():
                    err = float((m(x.to(lin.weight.dtype)).float() - ref).pow(2).sum()) / den
                rows.append((c, module_bytes(m), err))
            out[n] = rows
        bar.step(st.names[0])
    return out


def allocate(options: dict[str, list[tuple]], budget_bytes: int) -> dict[str, tuple]:
    """{layer: (config or None, bytes, error)} minimizing the summed error with the summed
    bytes <= budget_bytes (module doc); CalibrationError if even the smallest choice of every
    layer does not fit."""
    names = list(options)
    least = sum(min(b for _, b, _ in options[n]) for n in names)
    if least > budget_bytes:
        raise CalibrationError(
            f"budget of {budget_bytes} bytes is below the smallest configuration of these "
            f"layers ({least} bytes)"
        )
    # Pareto frontier of (bytes, error, choices) over the layers so far: exact bytes, so the
    # result never exceeds the budget; thinned to the best error per 1/MAX_FRONTIER of the
    # budget only if it grows past MAX_FRONTIER points.
    frontier = [(0, 0.0, ())]
    for n in names:
        cand = [
            (b0 + b, e0 + e, picks + (i,))
            for b0, e0, picks in frontier
            for i, (_, b, e) in enumerate(options[n])
            if b0 + b <= budget_bytes
        ]
        cand.sort(key=lambda t: (t[0], t[1]))
        frontier, best = [], math.inf
        for t in cand:
            if t[1] < best:
                frontier.append(t)
                best = t[1]
        if len(frontier) > MAX_FRONTIER:
            width = budget_bytes / MAX_FRONTIER
            thin: dict[int, tuple] = {}
            for t in frontier:
                k = int(t[0] // width)
                if k not in thin or t[1] < thin[k][1]:
                    thin[k] = t
            frontier = sorted(thin.values())
    _, _, picks = min(frontier, key=lambda t: t[1])
    return {n: options[n][i] for n, i in zip(names, picks, strict=True)}


def compress_(
    model: nn.Module,
    calibration,
    *,
    budget_bytes: int,
    candidates=DEFAULT_CANDIDATES,
    filter_fn=None,
    progress: bool = True,
    correct: bool = True,
) -> Report:
    """Chooses per layer among `candidates` (or float) the configs with the least summed output
    error whose weight bytes fit `budget_bytes` (the bytes of the chosen layers plus the float
    ones left), applies them by calibration, and reports the choice per layer (metrics:
    choice, bytes, err_measured, and the method's own metrics)."""
    batches = batches_of(calibration)
    report = Report()
    tgt = targets(model, None, filter_fn, report)
    was_training = model.training
    model.eval()
    try:
        options = measure(model, batches, tgt, list(candidates), progress)
    finally:
        model.train(was_training)
    chosen = allocate(options, budget_bytes)
    configs = {n: c for n, (c, _, _) in chosen.items() if c is not None}
    applied = run.calibrate(model, configs, batches, filter_fn, progress, correct)
    report.converted = applied.converted
    report.skipped += applied.skipped
    for n, (c, b, e) in chosen.items():
        report.metrics[n] = {"choice": label(c), "bytes": b, "err_measured": e}
        report.metrics[n].update(applied.metrics.get(n, {}))
    return recorded(model, "compress_", None, report, correct, budget_bytes=budget_bytes)
