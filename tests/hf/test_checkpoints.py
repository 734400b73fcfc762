"""GPTQ and AWQ checkpoint folders (config.json's quantization_config + safetensors, one file
or an index of shards) written here from the formats' descriptions (tests/checkpoint_formats.py,
independent of greenops.quant) for a small Llama built from a config: greenops.hf loads each in
one call and the model computes what the dequantized float model computes. greenops' own GPTQ
result, exported with quant.to_gptq, loads back to the very same outputs."""

import copy
import json
import os

import pytest
import torch
from checkpoint_formats import awq_tensors, gptq_tensors
from tiny_hf import llama
from torch import nn

import greenops
from greenops.nn import Int4Linear

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")
hf = pytest.importorskip("greenops.hf")

G = 32


def _layers(model):
    return {n: m for n, m in model.named_modules() if type(m) is nn.Linear and "layers." in n}


def _write(folder, model, tensors, quantization_config, shards=1):
    """config.json (the model's config with quantization_config) and the tensors, in `shards`
    safetensors files (an index when more than one), as the quantizers' tools write them."""
    os.makedirs(folder, exist_ok=True)
    d = model.config.to_dict()
    d["architectures"] = [type(model).__name__]
    d["quantization_config"] = quantization_config
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(d, f)
    names = sorted(tensors)
    if shards == 1:
        safetensors_torch.save_file(tensors, os.path.join(folder, "model.safetensors"))
        return
    weight_map = {}
    for i in range(shards):
        part = names[i::shards]
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        safetensors_torch.save_file({n: tensors[n] for n in part}, os.path.join(folder, fname))
        weight_map.update(dict.fromkeys(part, fname))
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)


def _checkpoint(method, fmt="v1", act_order=False, seed=0):
    """(float reference model with the dequantized weights, state tensors of the checkpoint)."""
    model = llama()
    ref = copy.deepcopy(model)
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    for i, (name, lin) in enumerate(sorted(_layers(model).items())):
        K, N = lin.in_features, lin.out_features
        del tensors[f"{name}.weight"]
        if method == "gptq":
            qw, qz, s, g_idx, w = gptq_tensors(K, N, G, act_order, seed + i, fmt)
            tensors.update({f"{name}.qweight": qw, f"{name}.qzeros": qz, f"{name}.g_idx": g_idx})
        else:
            qw, qz, s, w = awq_tensors(K, N, G, seed + i)
            tensors.update({f"{name}.qweight": qw, f"{name}.qzeros": qz})
        tensors[f"{name}.scales"] = s
        ref.get_submodule(name).weight.data.copy_(w)
    return ref, tensors


def _logits(model, seed=1):
    x = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x).logits


@pytest.mark.parametrize(
    "fmt,act_order,shards", [("v1", False, 1), ("v1", True, 3), ("v2", False, 2), ("v2", True, 1)]
)
def test_gptq_folder_loads_in_one_call(tmp_path, fmt, act_order, shards):
    ref, tensors = _checkpoint("gptq", fmt, act_order)
    q = {
        "quant_method": "gptq",
        "bits": 4,
        "group_size": G,
        "desc_act": act_order,
        "sym": False,
        "checkpoint_format": "gptq" if fmt == "v1" else "gptq_v2",
    }
    _write(tmp_path, ref, tensors, q, shards)
    model = hf.from_pretrained(str(tmp_path))
    layers = [n for n, m in model.named_modules() if isinstance(m, Int4Linear)]
    assert sorted(layers) == sorted(_layers(ref))
    assert (model.model.layers[0].self_attn.q_proj.in_perm is not None) == act_order
    torch.testing.assert_close(_logits(model), _logits(ref), rtol=1e-4, atol=1e-4)
    assert model.config.quantization_config["quant_method"] == "gptq"


def test_awq_folder_loads_in_one_call(tmp_path):
    ref, tensors = _checkpoint("awq")
    q = {"quant_method": "awq", "bits": 4, "group_size": G, "zero_point": True, "version": "GEMM"}
    _write(tmp_path, ref, tensors, q)
    model = hf.from_pretrained(str(tmp_path))
    assert isinstance(model.model.layers[1].mlp.down_proj, Int4Linear)
    torch.testing.assert_close(_logits(model), _logits(ref), rtol=1e-4, atol=1e-4)


def test_greenops_gptq_exported_to_a_gptq_folder_loads_back_exactly(tmp_path):
    model = llama()
    gen = torch.Generator().manual_seed(3)
    batches = [{"input_ids": torch.randint(0, 100, (2, 12), generator=gen)} for _ in range(4)]
    cfg = greenops.Int4Config(group_size=G, method="gptq", act_order=True)
    greenops.quantize_(model, cfg, lambda m, n: "layers." in n, calibration=batches, progress=False)
    int4 = {n for n, m in model.named_modules() if isinstance(m, Int4Linear)}
    tensors = {k: v for k, v in model.state_dict().items() if k.rpartition(".")[0] not in int4}
    for name, m in model.named_modules():
        if isinstance(m, Int4Linear):
            qw, qz, s, g_idx = greenops.quant.to_gptq(m.int4_weight())
            tensors.update(
                {
                    f"{name}.qweight": qw,
                    f"{name}.qzeros": qz,
                    f"{name}.scales": s,
                    f"{name}.g_idx": g_idx,
                }
            )
    q = {"quant_method": "gptq", "bits": 4, "group_size": G, "desc_act": True, "sym": False}
    _write(tmp_path, model, tensors, q)
    back = hf.from_pretrained(str(tmp_path))
    assert torch.equal(_logits(back), _logits(model))


def _folder(tmp_path, q):
    ref, tensors = _checkpoint("gptq")
    _write(tmp_path, ref, tensors, q)
    return str(tmp_path)


@pytest.mark.parametrize(
    "q,match",
    [
        ({"quant_method": "gptq", "bits": 8, "group_size": G}, "bits=8: greenops reads 4-bit only"),
        ({"quant_method": "awq", "bits": 4, "version": "gemv"}, "AWQ version 'gemv'"),
        ({"quant_method": "gptq", "bits": 4, "checkpoint_format": "marlin"}, "checkpoint_format"),
        ({"quant_method": "bitsandbytes", "bits": 4}, "quant_method 'bitsandbytes'"),
        ({}, "no quantization_config"),
    ],
)
def test_folders_greenops_cannot_read_say_why(tmp_path, q, match):
    with pytest.raises(hf.CheckpointError, match=match) as e:
        hf.from_pretrained(_folder(tmp_path, q))
    assert "\n" not in str(e.value)


def test_missing_weights_and_foreign_classes_are_named(tmp_path):
    ref, tensors = _checkpoint("gptq")
    del tensors["model.norm.weight"]
    q = {"quant_method": "gptq", "bits": 4, "group_size": G}
    _write(tmp_path / "a", ref, tensors, q)
    with pytest.raises(hf.CheckpointError, match=r"lacks 1 weights .*model.norm.weight"):
        hf.from_pretrained(str(tmp_path / "a"))
    with pytest.raises(hf.CheckpointError, match="which the model has not"):
        hf.from_pretrained(str(tmp_path / "a"), model_class=transformers.LlamaModel)
    os.makedirs(tmp_path / "b")
    with pytest.raises(hf.CheckpointError, match="no config.json"):
        hf.from_pretrained(str(tmp_path / "b"))
