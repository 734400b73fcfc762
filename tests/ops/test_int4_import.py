"""GPTQ and AWQ checkpoints reproduce their own dequantized weights exactly on greenops' layout.
The checkpoint tensors are built by packers written here from each format's description."""

import pytest
import torch
from checkpoint_formats import awq_tensors, gptq_tensors

from greenops import quant


@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("K,N,g", [(128, 16, 32), (256, 24, 128), (64, 8, 64)])
def test_gptq_import_reproduces_the_checkpoint(K, N, g, act_order):
    qweight, qzeros, scales, g_idx, w = gptq_tensors(K, N, g, act_order)
    imp = quant.from_gptq(qweight, qzeros, scales, g_idx)
    assert imp.group_size == g and imp.shape == (N, K)
    assert (imp.in_perm is not None) == (act_order and K > g)  # one group: nothing to permute
    assert torch.equal(imp.dequantize(), w)
    x = torch.randn(3, K)
    ref = x.double() @ w.double().T
    assert torch.allclose(imp.mm(x).double(), ref, rtol=1e-5, atol=1e-5)


def test_gptq_v2_zeros_are_stored_as_they_are():
    qweight, qzeros, scales, g_idx, w = gptq_tensors(64, 8, 32, False)
    v1 = quant.from_gptq(qweight, qzeros, scales, g_idx)
    v2 = quant.from_gptq(qweight, qzeros, scales, g_idx, format="v2")
    assert torch.equal(v2.zeros + 1, v1.zeros)


@pytest.mark.parametrize("K,N,g", [(128, 16, 32), (256, 32, 128)])
def test_awq_import_reproduces_the_checkpoint(K, N, g):
    qweight, qzeros, scales, w = awq_tensors(K, N, g)
    imp = quant.from_awq(qweight, qzeros, scales)
    assert imp.in_perm is None and imp.shape == (N, K)
    assert torch.equal(imp.dequantize(), w)
    x = torch.randn(2, K)
    assert torch.allclose(imp.mm(x).double(), x.double() @ w.double().T, rtol=1e-5, atol=1e-5)


def test_import_errors():
    qweight, qzeros, scales, g_idx, _ = gptq_tensors(64, 8, 32, False)
    with pytest.raises(TypeError, match="int32"):
        quant.from_gptq(qweight.float(), qzeros, scales)
    with pytest.raises(ValueError, match="shapes disagree"):
        quant.from_gptq(qweight, qzeros[:1], scales)
    with pytest.raises(ValueError, match="exactly 32"):
        quant.from_gptq(qweight, qzeros, scales, torch.zeros(64, dtype=torch.int32))
    with pytest.raises(ValueError, match="format"):
        quant.from_gptq(qweight, qzeros, scales, format="v3")
    aw, az, asc, _ = awq_tensors(64, 16, 32)
    with pytest.raises(ValueError, match="shapes disagree"):
        quant.from_awq(aw, az, asc[:, :8])
