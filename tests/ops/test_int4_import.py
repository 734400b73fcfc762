"""GPTQ and AWQ checkpoints reproduce their own dequantized weights exactly on greenops' layout.
The checkpoint tensors are built by packers written here from each format's description."""

import pytest
import torch

from greenops import quant

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def to_int32(v: torch.Tensor) -> torch.Tensor:
    """uint32 bit patterns (as int64) -> int32 (two's complement), as checkpoints store them."""
    return torch.where(v >= 2**31, v - 2**32, v).to(torch.int32)


def gptq_tensors(K, N, g, act_order, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (K, N), generator=gen)  # [in, out]
    z = torch.randint(0, 16, (K // g, N), generator=gen)
    scales = (torch.rand(K // g, N, generator=gen) * 0.02 + 0.001).half()
    g_idx = torch.arange(K) // g
    if act_order:
        g_idx = g_idx[torch.randperm(K, generator=gen)]
    qweight = torch.zeros(K // 8, N, dtype=torch.int64)
    for j in range(8):  # value j of each int32: row 8i + j
        qweight |= q[j::8] << (4 * j)
    zs = (z - 1) & 15  # v1 stores zero - 1 in 4 bits (a zero point of 0 is stored as 15)
    qzeros = torch.zeros(K // g, N // 8, dtype=torch.int64)
    for j in range(8):  # column 8c + j
        qzeros |= zs[:, j::8] << (4 * j)
    # Dequantized reference, from the format's definition: W[n, k] = s[g(k), n] (q[k, n] - z).
    zz = (zs + 1).float()  # what v1 loaders use: stored + 1 (so 0 comes back as 16)
    w = (q.float() - zz[g_idx]) * scales.float()[g_idx]
    return to_int32(qweight), to_int32(qzeros), scales, g_idx.to(torch.int32), w.T


def awq_tensors(K, N, g, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (K, N), generator=gen)
    z = torch.randint(0, 16, (K // g, N), generator=gen)
    scales = (torch.rand(K // g, N, generator=gen) * 0.02 + 0.001).half()

    def pack_cols(t):
        out = torch.zeros(t.shape[0], t.shape[1] // 8, dtype=torch.int64)
        for c in range(t.shape[1] // 8):
            for i in range(8):
                out[:, c] |= t[:, 8 * c + AWQ_ORDER[i]] << (4 * i)
        return to_int32(out)

    w = (q.float() - z.float().repeat_interleave(g, 0)) * scales.float().repeat_interleave(g, 0)
    return pack_cols(q), pack_cols(z), scales, w.T


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
