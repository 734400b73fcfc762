"""A quantized model folder into a transformers model with greenops modules, in one call:
GPTQ (AutoGPTQ / GPTQModel) and AWQ (AutoAWQ, GEMM) 4-bit checkpoints, and folders written by
greenops.hf.save_pretrained. The model is built with its parameters on the meta device (no
float weights are allocated), the quantized Linears are replaced by greenops modules made from
their tensors, and everything else is loaded as the checkpoint holds it."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..convert import replace
from ..nn import Int4Linear
from ..nn.spec import empty
from .files import CheckpointError, read_config, read_tensors

FORMAT = "greenops/1"


@contextlib.contextmanager
def _params_on_meta():
    """Parameters registered inside are moved to the meta device (buffers stay real: rotary
    frequencies, position ids are computed in __init__ and rarely saved)."""
    register = nn.Module.register_parameter

    def on_meta(module, name, param):
        register(module, name, param)
        if param is not None:
            p = module._parameters[name]
            module._parameters[name] = nn.Parameter(p.to("meta"), requires_grad=p.requires_grad)

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def _skeleton(folder: str, model_class):
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder)
    if model_class is None:
        arch = (getattr(config, "architectures", None) or [None])[0]
        model_class = getattr(transformers, arch, None) if arch else None
        if model_class is None:
            raise CheckpointError(
                f"greenops.hf: config.json names no architecture transformers has ({arch!r}): "
                "pass model_class="
            )
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # greenops reads it; transformers must not act on it
    with _params_on_meta():
        model = model_class(config)
    return model


def _linear(model, name: str, in_features: int, out_features: int) -> nn.Linear:
    try:
        m = model.get_submodule(name)
    except AttributeError:
        raise CheckpointError(
            f"greenops.hf: the checkpoint quantizes {name}, which the model has not"
        ) from None
    if not isinstance(m, nn.Linear) or (m.in_features, m.out_features) != (
        in_features,
        out_features,
    ):
        raise CheckpointError(
            f"greenops.hf: {name} is {m} in the model but [{out_features}, {in_features}] "
            "int4 in the checkpoint"
        )
    return m


def _prefixes(tensors, suffix: str) -> list[str]:
    return sorted(k[: -len(suffix)] for k in tensors if k.endswith(suffix))


def _import_int4(model, tensors, q: dict) -> list[str]:
    """Replaces every Linear with `<name>.qweight` in the checkpoint by an Int4Linear."""
    method = q["quant_method"]
    bits = q.get("bits", q.get("w_bit"))
    if bits != 4:
        raise CheckpointError(
            f"greenops.hf: {method} checkpoints with bits={bits}: greenops reads 4-bit only"
        )
    if method == "awq":
        version = str(q.get("version", "gemm")).lower()
        if version != "gemm":
            raise CheckpointError(
                f"greenops.hf: AWQ version {version!r}: greenops reads the GEMM layout (qweight "
                "[K, N/8]); GEMV, exllama and marlin checkpoints pack differently"
            )
        if not q.get("zero_point", True):
            raise CheckpointError(
                "greenops.hf: AWQ without zero points is not read (GEMM has them)"
            )
    else:
        fmt = str(q.get("checkpoint_format", "gptq")).lower()
        if fmt not in ("gptq", "gptq_v2"):
            raise CheckpointError(
                f"greenops.hf: GPTQ checkpoint_format {fmt!r} (known: gptq, gptq_v2)"
            )
        gptq_format = "v2" if fmt == "gptq_v2" else "v1"
    names = _prefixes(tensors, ".qweight")
    if not names:
        raise CheckpointError(
            f"greenops.hf: a {method} config but no .qweight tensors in the weights"
        )
    for name in names:
        t = {
            k: tensors.pop(f"{name}.{k}", None)
            for k in ("qweight", "qzeros", "scales", "g_idx", "bias")
        }
        if t["qzeros"] is None or t["scales"] is None:
            raise CheckpointError(f"greenops.hf: {name} has a qweight but no qzeros/scales")
        if method == "awq":
            K, N = t["qweight"].shape[0], t["qweight"].shape[1] * 8
            m = Int4Linear.from_awq(t["qweight"], t["qzeros"], t["scales"], t["bias"])
        else:
            K, N = t["qweight"].shape[0] * 8, t["qweight"].shape[1]
            m = Int4Linear.from_gptq(
                t["qweight"], t["qzeros"], t["scales"], t["g_idx"], t["bias"], gptq_format
            )
        _linear(model, name, K, N)
        replace(model, name, m)
    return names


def _import_greenops(model, q: dict) -> list[str]:
    if q.get("format") != FORMAT:
        raise CheckpointError(
            f"greenops.hf: saved as {q.get('format')!r}; this greenops reads {FORMAT!r}"
        )
    for name, s in q["modules"].items():
        _linear(model, name, s["in_features"], s["out_features"])
        replace(model, name, empty(s))
    return list(q["modules"])


def from_pretrained(folder: str, model_class=None, dtype: torch.dtype | None = None):
    """The model in `folder` with greenops modules where it is quantized or sparse:
    config.json's quantization_config says how (quant_method "gptq", "awq" or "greenops").
    model_class: the transformers class (default: config.json's architectures[0]); dtype: cast
    the float tensors (default: as stored). Returns the model in eval mode."""
    q = read_config(folder).get("quantization_config")
    if not q or "quant_method" not in q:
        raise CheckpointError(
            f"greenops.hf: {folder}'s config.json has no quantization_config: a float model "
            "(load it with transformers, then greenops.quantize_)"
        )
    method = q["quant_method"]
    if method not in ("gptq", "awq", "greenops"):
        raise CheckpointError(
            f"greenops.hf: quant_method {method!r} (greenops reads gptq, awq, greenops)"
        )
    tensors = read_tensors(folder)
    model = _skeleton(folder, model_class)
    if method == "greenops":
        _import_greenops(model, q)
    else:
        _import_int4(model, tensors, q)
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    if unexpected:
        raise CheckpointError(
            f"greenops.hf: {len(unexpected)} checkpoint tensors have no place in "
            f"{type(model).__name__} (e.g. {unexpected[:3]}): pass the model_class it was "
            "saved from"
        )
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    left = [n for n, p in model.named_parameters() if p.is_meta]
    if left:
        raise CheckpointError(
            f"greenops.hf: the checkpoint lacks {len(left)} weights of {type(model).__name__} "
            f"(e.g. {left[:3]})"
        )
    if method == "greenops":
        model.greenops_recipe = q.get("recipe", [])
    model.config.quantization_config = q
    return model.eval()
