"""Calibrated compression: which integers and which blocks the greenops kernels get, chosen
on the model's own calibration inputs (docs/calibration.md).

    report = greenops.quantize_(model, greenops.Int4Config(group_size=128, method="gptq"),
                                calibration=batches)
    greenops.quantize_(model, greenops.Int8Config(smoothquant=0.5), calibration=batches)
    greenops.sparsify_(model, greenops.BlockSparseConfig((16, 16), 0.5, method="sparsegpt"),
                       calibration=batches)

The one entry point is `calibrate(model, config, calibration)` (run.py); greenops.quantize_ /
sparsify_ call it when given calibration data and the config's method needs it, and
`compress_(model, calibration, budget_bytes=...)` (budget.py) after choosing a config per layer.
`distill(student, teacher, calibration)` fine-tunes a compressed model towards the original.
Without calibration data, round to nearest and block magnitude stay the default
(greenops/convert.py).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .. import convert
from ..convert import Report
from .budget import compress_
from .capture import CalibrationError
from .distill import distill
from .recipe import recorded
from .run import calibrate


def quantize_(
    model: nn.Module,
    config,
    filter_fn: Callable | None = None,
    *,
    calibration=None,
    progress: bool = True,
    correct: bool = True,
) -> Report:
    """Replaces nn.Linear modules in place by Int8Linear (Int8Config) or Int4Linear
    (Int4Config). filter_fn(module, name) -> bool picks layers; layers a config cannot take are
    skipped and reported. With `calibration` (a list or DataLoader of batches: tensors, tuples
    of arguments or dicts of keyword arguments), the config's method runs on the model's own
    inputs: Int4Config(method="gptq" | "awq"), Int8Config(method="gptq", smoothquant=...);
    round-to-nearest configs take calibration=None. correct: fit each layer to the float
    model's outputs (calibrate's doc)."""
    if calibration is None or not config.calibrated:
        if calibration is not None:
            raise ValueError(
                f"{type(config).__name__}(method={config.method!r}) rounds to nearest and uses "
                "no calibration data: pass method='gptq' (or 'awq', smoothquant=...), or drop "
                "calibration="
            )
        return recorded(model, "quantize_", config, convert.quantize_(model, config, filter_fn))
    if not isinstance(config, (convert.Int8Config, convert.Int4Config)):
        raise TypeError(f"quantize_ takes Int8Config or Int4Config, got {type(config).__name__}")
    report = calibrate(model, config, calibration, filter_fn, progress, correct)
    return recorded(model, "quantize_", config, report, correct)


def sparsify_(
    model: nn.Module,
    config: convert.BlockSparseConfig,
    filter_fn: Callable | None = None,
    *,
    calibration=None,
    progress: bool = True,
    correct: bool = True,
) -> Report:
    """Replaces nn.Linear modules in place by BlockSparseLinear: by block magnitude, or with
    calibration data by method="wanda" / "sparsegpt" (BlockSparseConfig)."""
    if not isinstance(config, convert.BlockSparseConfig):
        raise TypeError(f"sparsify_ takes BlockSparseConfig, got {type(config).__name__}")
    if calibration is None or not config.calibrated:
        if calibration is not None:
            raise ValueError(
                "BlockSparseConfig(method='magnitude') uses no calibration data: pass "
                "method='wanda' or 'sparsegpt', or drop calibration="
            )
        return recorded(model, "sparsify_", config, convert.sparsify_(model, config, filter_fn))
    report = calibrate(model, config, calibration, filter_fn, progress, correct)
    return recorded(model, "sparsify_", config, report, correct)


__all__ = ["CalibrationError", "calibrate", "compress_", "distill", "quantize_", "sparsify_"]
