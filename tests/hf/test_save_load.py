"""A greenops-compressed transformers model saved with greenops.hf.save_pretrained loads back
in one call (greenops.hf.from_pretrained, and transformers' own from_pretrained) with the same
outputs, its modules and a recipe of how it was made; greenops as a transformers quantizer."""

import copy
import json

import pytest
import torch
from tiny_hf import llama
from torch import nn

import greenops
from greenops.nn import BlockSparseLinear, Int4Linear, Int8Linear

transformers = pytest.importorskip("transformers")
hf = pytest.importorskip("greenops.hf")


def _batches(n=4, seed=3):
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(0, 100, (2, 12), generator=g)} for _ in range(n)]


def _logits(model):
    with torch.no_grad():
        return model(**_batches(1, seed=11)[0]).logits


def _mixed(model):
    """Every kind of module: W8A8 with SmoothQuant input scales, int4 act-order GPTQ,
    block-sparse int8, block-sparse float."""
    b = _batches()
    greenops.quantize_(
        model,
        greenops.Int8Config(smoothquant=0.5),
        lambda m, n: n.endswith(("q_proj", "k_proj", "v_proj")),
        calibration=b,
        progress=False,
    )
    greenops.quantize_(
        model,
        greenops.Int4Config(32, method="gptq", act_order=True),
        lambda m, n: n.endswith(("gate_proj", "up_proj")),
        calibration=b,
        progress=False,
    )
    greenops.sparsify_(
        model, greenops.BlockSparseConfig((16, 16), 0.5, int8=True), lambda m, n: "down" in n
    )
    greenops.sparsify_(
        model, greenops.BlockSparseConfig((16, 16), 0.25), lambda m, n: "o_proj" in n
    )
    return model


def test_save_and_load_round_trip_with_the_recipe(tmp_path):
    model = _mixed(llama())
    kinds = {type(m) for m in model.modules()}
    assert {Int8Linear, Int4Linear, BlockSparseLinear} <= kinds
    hf.save_pretrained(model, str(tmp_path))
    q = json.load(open(tmp_path / "config.json"))["quantization_config"]
    assert q["quant_method"] == "greenops" and len(q["modules"]) == 14
    steps = [(s["op"], s["config"], s.get("method")) for s in q["recipe"]]
    assert steps == [
        ("quantize_", "Int8Config", "rtn"),
        ("quantize_", "Int4Config", "gptq"),
        ("sparsify_", "BlockSparseConfig", "magnitude"),
        ("sparsify_", "BlockSparseConfig", "magnitude"),
    ]
    assert q["recipe"][0]["smoothquant"] == 0.5 and "metrics" in q["recipe"][1]
    for load in (hf.from_pretrained, transformers.AutoModelForCausalLM.from_pretrained):
        back = load(str(tmp_path))
        for n, m in model.named_modules():
            assert type(back.get_submodule(n)) is type(m), n
        assert torch.equal(_logits(back), _logits(model))
        saved, loaded = model.state_dict(), back.state_dict()
        assert sorted(loaded) == sorted(saved)
        for k, v in saved.items():
            assert torch.equal(loaded[k], v), k
        assert back.model.layers[1].mlp.up_proj.in_perm is not None
    assert hf.from_pretrained(str(tmp_path)).greenops_recipe == q["recipe"]


def test_save_refuses_what_it_cannot_save(tmp_path):
    with pytest.raises(ValueError, match="no greenops modules"):
        hf.save_pretrained(llama(), str(tmp_path))
    with pytest.raises(TypeError, match="no transformers config"):
        hf.save_pretrained(nn.Sequential(nn.Linear(4, 4)), str(tmp_path))


def test_transformers_quantizer_converts_a_float_checkpoint_as_it_loads(tmp_path):
    model = llama()
    model.save_pretrained(tmp_path / "float")
    ref = copy.deepcopy(model)
    greenops.quantize_(ref, greenops.Int4Config(32), lambda m, n: n != "lm_head")
    qc = hf.GreenopsConfig(greenops.Int4Config(32), modules_to_not_convert=["lm_head"])
    auto = transformers.AutoModelForCausalLM
    loaded = auto.from_pretrained(tmp_path / "float", quantization_config=qc)
    assert isinstance(loaded.model.layers[0].mlp.up_proj, Int4Linear)
    assert type(loaded.lm_head) is nn.Linear
    assert torch.equal(_logits(loaded), _logits(ref))
    loaded.save_pretrained(tmp_path / "int4")  # transformers' own save: loads back as it was
    again = auto.from_pretrained(tmp_path / "int4")
    assert isinstance(again.model.layers[1].self_attn.v_proj, Int4Linear)
    assert torch.equal(_logits(again), _logits(ref))


def test_quantizer_refuses_calibrated_methods_with_the_call_that_does_them():
    with pytest.raises(ValueError, match=r"needs calibration data.*greenops.quantize_"):
        hf.GreenopsConfig(greenops.Int4Config(32, method="gptq"))
    with pytest.raises(TypeError, match="GreenopsConfig takes"):
        hf.GreenopsConfig("int4")
