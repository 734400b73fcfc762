"""int4 checkpoint import: GPTQ and AWQ tensors into greenops' int4 layout, so existing
quantized checkpoints run on greenops kernels.

    w = greenops.quant.from_gptq(qweight, qzeros, scales, g_idx)      # or from_awq(...)
    y = w.mm(x)          # = x @ w.dequantize().T, through greenops.int4_weight_mm

greenops layout (docs/kernels.md): packed uint8 [N, K/2] (element 2j in the low nibble of byte
j), scales and zeros fp32 [N, K/group]; w = (q - z) * s. Formats read (4-bit only):

- GPTQ: qweight int32 [K/8, N], 8 values along K per int32 (value j in bits 4j..4j+3);
  qzeros int32 [K/group, N/8], 8 zero points along N per int32; scales fp16 [K/group, N];
  g_idx int32 [K] (the group of each input channel; act-order when not k // group).
  format="v1" (AutoGPTQ and most checkpoints) stores zero points minus one in 4 bits, and its
  loaders add one back (so a stored 15 reads as 16, as in AutoGPTQ); "v2" (GPTQModel) stores
  them as they are.
- AWQ (GEMM): qweight int32 [K, N/8], 8 values along N per int32 in the order
  0, 2, 4, 6, 1, 3, 5, 7 (nibble i holds column 8c + order[i]); qzeros int32 [K/group, N/8],
  same order; scales fp16 [K/group, N].

Act-order (g_idx not monotone) is handled once at import: K is permuted so that every group is
contiguous, and `in_perm` tells `mm` which activation columns to gather (x[..., in_perm]).
"""

from __future__ import annotations

import dataclasses

import torch

from .ops import dequantize_int4, int4_weight_mm

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


@dataclasses.dataclass
class Int4Weight:
    packed: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    group_size: int
    in_perm: torch.Tensor | None = None  # K order of packed: original column in_perm[k]

    @property
    def shape(self) -> tuple[int, int]:
        return self.packed.shape[0], self.packed.shape[1] * 2

    def dequantize(self) -> torch.Tensor:
        """W [N, K] fp32 in the checkpoint's original column order."""
        w = dequantize_int4(self.packed, self.scales, self.zeros, self.group_size)
        if self.in_perm is None:
            return w
        out = torch.empty_like(w)
        out[:, self.in_perm] = w
        return out

    def mm(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if self.in_perm is not None:
            x = x.index_select(-1, self.in_perm)
        return int4_weight_mm(x, self.packed, self.scales, self.zeros, self.group_size, bias)


def _unpack_int32(t: torch.Tensor) -> torch.Tensor:
    """[R, C] int32 -> [R, C, 8] values 0..15, value j from bits 4j..4j+3."""
    shifts = torch.arange(0, 32, 4, device=t.device, dtype=torch.int32)
    return (t.to(torch.int32)[..., None] >> shifts) & 15


def _pack(q: torch.Tensor) -> torch.Tensor:
    q = q.to(torch.uint8)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).contiguous()


def _check_int32(name: str, t: torch.Tensor) -> None:
    if t.dtype != torch.int32:
        raise TypeError(f"greenops.quant: {name} must be torch.int32 (4-bit packed), got {t.dtype}")


def from_gptq(
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: torch.Tensor | None = None,
    group_size: int | None = None,
    format: str = "v1",
) -> Int4Weight:
    """A 4-bit GPTQ layer (qweight, qzeros, scales[, g_idx]) in greenops' layout."""
    if format not in ("v1", "v2"):
        raise ValueError(f"greenops.quant: format must be 'v1' or 'v2', got {format!r}")
    for name, t in (("qweight", qweight), ("qzeros", qzeros)):
        _check_int32(name, t)
    K, N = qweight.shape[0] * 8, qweight.shape[1]
    G = scales.shape[0]
    if scales.shape != (G, N) or qzeros.shape != (G, N // 8) or N % 8:
        raise ValueError(
            f"greenops.quant: GPTQ shapes disagree: qweight {list(qweight.shape)} (K={K}, "
            f"N={N}), qzeros {list(qzeros.shape)} (want [{G}, {N // 8}]), scales "
            f"{list(scales.shape)} (want [groups, {N}])"
        )
    group_size = group_size or K // G
    if G * group_size != K:
        raise ValueError(f"greenops.quant: {G} groups of {group_size} do not cover K={K}")
    q = _unpack_int32(qweight).permute(0, 2, 1).reshape(K, N)  # [K, N]
    z = _unpack_int32(qzeros).reshape(G, N).float() + (1.0 if format == "v1" else 0.0)
    in_perm = None
    if g_idx is not None:
        g_idx = g_idx.to(torch.int64)
        if g_idx.shape != (K,) or g_idx.min() < 0 or g_idx.max() >= G:
            raise ValueError(f"greenops.quant: g_idx must be [{K}] with values in 0..{G - 1}")
        if not torch.equal(g_idx, torch.arange(K, device=g_idx.device) // group_size):
            counts = torch.bincount(g_idx, minlength=G)
            if (counts != group_size).any():
                raise ValueError(
                    "greenops.quant: act-order g_idx must give every group exactly "
                    f"{group_size} channels (counts {counts.tolist()[:8]}...)"
                )
            in_perm = torch.argsort(g_idx, stable=True)
            q = q[in_perm]
    return Int4Weight(
        _pack(q.T),
        scales.float().T.contiguous(),
        z.T.contiguous(),
        group_size,
        in_perm,
    )


def from_awq(
    qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, group_size: int | None = None
) -> Int4Weight:
    """A 4-bit AWQ (GEMM) layer (qweight, qzeros, scales) in greenops' layout."""
    for name, t in (("qweight", qweight), ("qzeros", qzeros)):
        _check_int32(name, t)
    K, N = qweight.shape[0], qweight.shape[1] * 8
    G = scales.shape[0]
    if scales.shape != (G, N) or qzeros.shape != (G, N // 8):
        raise ValueError(
            f"greenops.quant: AWQ shapes disagree: qweight {list(qweight.shape)} (K={K}, "
            f"N={N}), qzeros {list(qzeros.shape)} (want [{G}, {N // 8}]), scales "
            f"{list(scales.shape)} (want [groups, {N}])"
        )
    group_size = group_size or K // G
    if G * group_size != K:
        raise ValueError(f"greenops.quant: {G} groups of {group_size} do not cover K={K}")
    # Nibble i of column block c holds column 8c + AWQ_ORDER[i]: undo the interleave.
    undo = torch.tensor([AWQ_ORDER.index(j) for j in range(8)], device=qweight.device)
    q = _unpack_int32(qweight)[..., undo].reshape(K, N)
    z = _unpack_int32(qzeros)[..., undo].reshape(G, N).float()
    return Int4Weight(_pack(q.T), scales.float().T.contiguous(), z.T.contiguous(), group_size)


def _pack_int32(q: torch.Tensor) -> torch.Tensor:
    """[R, C, 8] values 0..15 -> [R, C] int32, value j in bits 4j..4j+3 (_unpack_int32's
    inverse; the top nibble wraps into the sign bit as a checkpoint stores it)."""
    shifts = torch.arange(0, 32, 4, device=q.device, dtype=torch.int64)
    words = (q.to(torch.int64) << shifts).sum(-1)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def to_gptq(w: Int4Weight, format: str = "v1"):
    """A greenops int4 weight as 4-bit GPTQ checkpoint tensors (qweight int32 [K/8, N], qzeros
    int32 [G, N/8], scales fp16 [G, N], g_idx int32 [K]) that from_gptq reads back bit for bit
    (a symmetric weight comes back with its implied zero points, 8, written out). Needs what
    the format can hold: N and K multiples of 8, integer zero points in 0..15 (1..15 in "v1",
    which stores z - 1 in 4 bits: AutoGPTQ reads a stored 15 as 16), and fp16-exact scales —
    greenops' GPTQ makes such weights (greenops.calibrate). An act-order permutation comes back
    in from_gptq's canonical order (each group's columns ascending), which greenops' GPTQ uses."""
    if format not in ("v1", "v2"):
        raise ValueError(f"greenops.quant: format must be 'v1' or 'v2', got {format!r}")
    N, K = w.shape
    g = w.group_size
    G = K // g
    if N % 8 or K % 8:
        raise ValueError(f"greenops.quant.to_gptq: N={N} and K={K} must be multiples of 8")
    z = torch.full((N, G), 8.0, device=w.packed.device) if w.zeros is None else w.zeros
    low = 1 if format == "v1" else 0
    if not (torch.equal(z, z.round()) and bool(((z >= low) & (z <= 15)).all())):
        raise ValueError(
            f"greenops.quant.to_gptq: GPTQ {format} zero points are integers in {low}..15; these "
            "are not (a float zero point from quantize_int4 round-to-nearest; quantize with "
            "method='gptq', or use format='v2' for zero points of 0)"
        )
    scales16 = w.scales.half()
    if not torch.equal(scales16.float(), w.scales):
        raise ValueError(
            "greenops.quant.to_gptq: GPTQ checkpoints store fp16 scales and these are not "
            "fp16-exact (greenops' GPTQ rounds its scales to fp16 as it makes them)"
        )
    q = torch.stack([w.packed & 15, w.packed >> 4], -1).reshape(N, K)  # packed (K) order
    g_idx = torch.arange(K, device=q.device) // g
    if w.in_perm is not None:
        q_orig = torch.empty_like(q)
        q_orig[:, w.in_perm] = q
        g_orig = torch.empty_like(g_idx)
        g_orig[w.in_perm] = g_idx
        q, g_idx = q_orig, g_orig
    qweight = _pack_int32(q.T.reshape(K // 8, 8, N).permute(0, 2, 1))
    stored = (z.T - (1 if format == "v1" else 0)).to(torch.int64)
    qzeros = _pack_int32(stored.reshape(G, N // 8, 8))
    return qweight, qzeros, scales16.T.contiguous(), g_idx.to(torch.int32)
