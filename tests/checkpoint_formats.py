"""GPTQ and AWQ checkpoint tensors built by packers written here from each format's
description (independent of greenops.quant), with the dequantized weight each format defines."""

import torch

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def to_int32(v: torch.Tensor) -> torch.Tensor:
    """uint32 bit patterns (as int64) -> int32 (two's complement), as checkpoints store them."""
    return torch.where(v >= 2**31, v - 2**32, v).to(torch.int32)


def gptq_tensors(K, N, g, act_order, seed=0, fmt="v1"):
    """Random 4-bit GPTQ tensors of `fmt` ("v1": zero points stored minus one, as AutoGPTQ
    writes them; "v2": as they are, GPTQModel) and the dequantized W [N, K] they define."""
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
    # v1 stores zero - 1 in 4 bits (a zero point of 0 is stored as 15); v2 the zero itself
    zs = (z - 1) & 15 if fmt == "v1" else z
    qzeros = torch.zeros(K // g, N // 8, dtype=torch.int64)
    for j in range(8):  # column 8c + j
        qzeros |= zs[:, j::8] << (4 * j)
    # Dequantized reference, from the format's definition: W[n, k] = s[g(k), n] (q[k, n] - z).
    zz = (zs + (1 if fmt == "v1" else 0)).float()  # v1 loaders add one: 0 comes back as 16
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


def gptq_dequantize(qweight, qzeros, scales, g_idx):
    """W [N, K] of 4-bit GPTQ v1 tensors, read bit by bit from the format's description: value j
    of qweight[i, n] is q[8i + j, n] (bits 4j..4j+3), of qzeros[g, c] the stored zero of column
    8c + j, which v1 loaders read as stored + 1; W[n, k] = scales[g_idx[k], n] (q - z)."""
    K, N = qweight.shape[0] * 8, qweight.shape[1]
    qw = qweight.to(torch.int64) & 0xFFFFFFFF
    qz = qzeros.to(torch.int64) & 0xFFFFFFFF
    q = torch.empty(K, N, dtype=torch.int64)
    for j in range(8):
        q[j::8] = (qw >> (4 * j)) & 15
    z = torch.empty(qzeros.shape[0], N, dtype=torch.int64)
    for j in range(8):
        z[:, j::8] = ((qz >> (4 * j)) & 15) + 1
    g = g_idx.to(torch.int64)
    return ((q.float() - z[g].float()) * scales.float()[g]).T
