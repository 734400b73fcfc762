"""A greenops-compressed transformers model as a model folder (config.json + model.safetensors)
that greenops.hf.from_pretrained — or transformers' from_pretrained once greenops.hf is
imported — loads back in one call. config.json's quantization_config records every greenops
module (kind, shapes, options) and the recipe: the quantize_ / sparsify_ / compress_ steps
that made the model, with their configs and calibration metrics."""

from __future__ import annotations

import os

from torch import nn

from ..nn.spec import KINDS, spec
from ..version import __version__
from .files import write
from .load import FORMAT


def quantization_config(model: nn.Module) -> dict:
    modules = {n: spec(m) for n, m in model.named_modules() if isinstance(m, tuple(KINDS.values()))}
    return {
        "quant_method": "greenops",
        "format": FORMAT,
        "greenops_version": __version__,
        "modules": modules,
        "recipe": getattr(model, "greenops_recipe", []),
    }


def save_pretrained(model: nn.Module, folder: str) -> str:
    """Writes `folder`/config.json (the model's transformers config plus the greenops
    quantization_config) and `folder`/model.safetensors; returns the folder."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise TypeError(
            f"greenops.hf.save_pretrained: {type(model).__name__} has no transformers config "
            "(save its state_dict with safetensors instead)"
        )
    q = quantization_config(model)
    if not q["modules"]:
        raise ValueError(
            "greenops.hf.save_pretrained: the model has no greenops modules (compress it with "
            "greenops.quantize_ / sparsify_ first, or use its own save_pretrained)"
        )
    d = config.to_dict()
    d["quantization_config"] = q
    if not d.get("architectures"):  # what from_pretrained builds (as transformers writes it)
        d["architectures"] = [type(model).__name__]
    write(folder, d, model.state_dict())
    return os.path.abspath(folder)
