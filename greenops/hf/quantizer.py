"""greenops as a transformers quantizer (transformers' register_quantizer API, 4.x-5.x):

    model = AutoModel.from_pretrained(path, quantization_config=GreenopsConfig(Int4Config(128)))
    model = AutoModel.from_pretrained(folder_saved_by_greenops)     # after `import greenops.hf`

A float checkpoint is loaded as transformers loads it and then converted by greenops.quantize_
/ sparsify_ (round to nearest / block magnitude: transformers gives a quantizer no calibration
data, so GPTQ, AWQ, SmoothQuant, Wanda and SparseGPT are refused with the call that does them;
the float weights are in memory once, before the conversion). A folder written by
greenops.hf.save_pretrained (or by this model's save_pretrained) is built with its greenops
modules before the weights are loaded into them."""

from __future__ import annotations

import dataclasses

from transformers.quantizers import HfQuantizer
from transformers.quantizers.auto import (
    AUTO_QUANTIZATION_CONFIG_MAPPING,
    AUTO_QUANTIZER_MAPPING,
    register_quantization_config,
    register_quantizer,
)
from transformers.utils.quantization_config import QuantizationConfigMixin

from ..convert import BlockSparseConfig, Int4Config, Int8Config, replace
from ..nn.spec import empty

NAME = "greenops"
_CONFIGS = {c.__name__: c for c in (Int8Config, Int4Config, BlockSparseConfig)}


class GreenopsConfig(QuantizationConfigMixin):
    """quantization_config=GreenopsConfig(greenops.Int4Config(128)) converts a float model as
    it loads; modules_to_not_convert: names (or name prefixes) kept float. Read back from a
    saved folder, it holds the saved modules (the `modules` and `recipe` fields)."""

    def __init__(self, config=None, modules_to_not_convert=None, **saved):
        self.quant_method = NAME
        if isinstance(config, dict):  # from a config.json
            config = _CONFIGS[config.pop("type")](**config)
        if config is not None and not isinstance(config, tuple(_CONFIGS.values())):
            raise TypeError(
                f"GreenopsConfig takes Int8Config, Int4Config or BlockSparseConfig, got {config!r}"
            )
        if config is not None and config.calibrated:
            raise ValueError(
                f"GreenopsConfig: method={config.method!r} needs calibration data, which "
                "transformers' from_pretrained cannot give a quantizer: load the float model, "
                "then greenops.quantize_(model, config, calibration=batches) "
                "(or sparsify_), and greenops.hf.save_pretrained"
            )
        self.config = config
        self.modules_to_not_convert = list(modules_to_not_convert or [])
        saved.pop("quant_method", None)
        self.saved = saved  # format, modules, recipe, greenops_version of a saved folder

    def to_dict(self) -> dict:
        d = {"quant_method": NAME, **self.saved}
        if self.config is not None:
            d["config"] = {"type": type(self.config).__name__, **dataclasses.asdict(self.config)}
        if self.modules_to_not_convert:
            d["modules_to_not_convert"] = list(self.modules_to_not_convert)
        return d


class GreenopsHfQuantizer(HfQuantizer):
    requires_calibration = False

    def _process_model_before_weight_loading(self, model, **kwargs):
        if self.pre_quantized:
            for name, s in self.quantization_config.saved.get("modules", {}).items():
                replace(model, name, empty(s))
        return model

    def _process_model_after_weight_loading(self, model, **kwargs):
        from ..calibrate import quantize_, sparsify_
        from .save import quantization_config

        q = self.quantization_config
        if self.pre_quantized:
            model.greenops_recipe = list(q.saved.get("recipe", []))
            return model
        if q.config is None:
            raise ValueError("GreenopsConfig: give the greenops config to convert with")
        skip = tuple(q.modules_to_not_convert)

        def keep(module, name):
            return not any(name == s or name.startswith(s + ".") for s in skip)

        convert = sparsify_ if isinstance(q.config, BlockSparseConfig) else quantize_
        convert(model, q.config, keep)
        saved = quantization_config(model)
        saved.pop("quant_method")
        q.saved = saved  # so that model.save_pretrained writes a folder that loads back
        return model

    def is_serializable(self, *args, **kwargs):
        return True

    @property
    def is_trainable(self) -> bool:
        return False


def register() -> None:
    """Makes quant_method "greenops" known to transformers (idempotent)."""
    if NAME not in AUTO_QUANTIZATION_CONFIG_MAPPING:
        register_quantization_config(NAME)(GreenopsConfig)
    if NAME not in AUTO_QUANTIZER_MAPPING:
        register_quantizer(NAME)(GreenopsHfQuantizer)
