"""What quantize_ / sparsify_ / compress_ did to a model, kept on it as
`model.greenops_recipe` (a list of JSON-able steps) so that a saved compressed model records how
it was made (greenops.hf.save_pretrained)."""

from __future__ import annotations

import dataclasses

from torch import nn

from ..convert import Report


def recorded(model: nn.Module, op: str, config, report: Report, correct=None, **extra) -> Report:
    """Appends one step (the op, the config's fields, what it converted and skipped, the
    calibration metrics) to model.greenops_recipe; returns report."""
    step = {"op": op}
    if config is not None:
        step.update(config=type(config).__name__, **dataclasses.asdict(config))
    if correct is not None:
        step["correct"] = correct
    step.update(extra)
    step["converted"] = list(report.converted)
    step["skipped"] = [list(s) for s in report.skipped]
    if report.metrics:
        step["metrics"] = report.metrics
    model.__dict__.setdefault("greenops_recipe", []).append(step)
    return report
