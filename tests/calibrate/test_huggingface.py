"""Hugging Face transformers models (built from a config here, no download) calibrate end to
end: BERT (post-LN: no scale can be folded) and Llama (pre-norm: AWQ folds into RMSNorm)."""

import copy

import pytest
import torch
from tiny_hf import llama
from torch import nn

import greenops

transformers = pytest.importorskip("transformers")


def _tokens(vocab, n=6, seq=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(0, vocab, (2, seq), generator=g)} for _ in range(n)]


@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_huggingface_bert(method):
    cfg = transformers.BertConfig(
        vocab_size=100,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(cfg).eval()
    ref = copy.deepcopy(model)
    batches = _tokens(100)
    rep = greenops.quantize_(
        model,
        greenops.Int4Config(group_size=32, method=method),
        calibration=batches,
        progress=False,
    )
    linears = [n for n, m in ref.named_modules() if type(m) is nn.Linear]
    assert sorted(rep.converted) == sorted(linears) and not rep.skipped
    if method == "awq":  # post-LN BERT: every LayerNorm also feeds a residual
        assert not any(m["folded"] for m in rep.metrics.values())
    x = _tokens(100, n=1, seed=9)[0]
    with torch.no_grad():
        a, b = model(**x).last_hidden_state, ref(**x).last_hidden_state
    cos = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
    assert cos > 0.99


def test_huggingface_llama_folds_into_its_norms():
    model = llama()
    for p in model.parameters():  # untrained RMSNorm weights are all ones: make them real
        if p.dim() == 1:
            p.data.uniform_(0.5, 1.5)
    ref = copy.deepcopy(model)
    rep = greenops.quantize_(
        model,
        greenops.Int4Config(group_size=32, method="awq"),
        calibration=_tokens(100),
        progress=False,
    )
    folded = {n for n, m in rep.metrics.items() if m["folded"]}
    for i in range(2):  # pre-norm: RMSNorm feeds q, k, v and gate, up only
        for p in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
        ):
            assert f"model.layers.{i}.{p}" in folded
    x = _tokens(100, n=1, seed=9)[0]
    with torch.no_grad():
        a, b = model(**x).logits, ref(**x).logits
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99
