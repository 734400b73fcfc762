"""Hugging Face transformers models with greenops modules (docs/huggingface.md):

    model = greenops.hf.from_pretrained("path/to/gptq-or-awq-folder")   # 4-bit checkpoints
    greenops.hf.save_pretrained(model, "out")    # a greenops-compressed model, with its recipe
    model = greenops.hf.from_pretrained("out")   # or transformers' AutoModel.from_pretrained
    AutoModel.from_pretrained(path, quantization_config=greenops.hf.GreenopsConfig(cfg))

Importing greenops.hf registers greenops as a transformers quantizer (quant_method
"greenops"). Needs transformers and safetensors (pip install greenops[hf]).
"""

from __future__ import annotations

try:
    import safetensors  # noqa: F401
    import transformers  # noqa: F401
except ModuleNotFoundError as e:
    raise ModuleNotFoundError(
        f"greenops.hf needs transformers and safetensors ({e.name} is missing): "
        "pip install transformers safetensors (or greenops[hf])"
    ) from None

from .files import CheckpointError
from .load import from_pretrained
from .quantizer import GreenopsConfig, register
from .save import save_pretrained

register()

__all__ = ["CheckpointError", "GreenopsConfig", "from_pretrained", "register", "save_pretrained"]
