"""GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers", Algorithm 1): quantize a weight one column at a time and spread each
column's rounding error over the columns not yet quantized, through the Cholesky factor of the
inverse Hessian H^-1 (H = X^T X of the layer's calibration inputs), in lazy blocks of columns.

Grids (what the greenops kernels read):
- int4 asymmetric: GPTQ's own min/max grid with the range widened to include 0 and an integer
  zero point, s = (hi - lo) / 15, z = clamp(round(-lo / s), 0, 15), q = clamp(round(w / s) + z,
  0, 15) — integer zero points so that the result exports to a GPTQ checkpoint (to_gptq);
- int4 symmetric: quantize_int4's grid, s = amax / 7, q = clamp(round(w / s) + 8, 0, 15);
- int4 scales are rounded to fp16 as they are made (a GPTQ checkpoint stores fp16 scales, so an
  export is exact); the group's scale and zero point come from the group's *current* (error-
  updated) weights when the sweep reaches its first column, as in the reference code;
- int8: quantize_int8's per-channel grid, s = max(amax, 1e-12) / 127 from the initial row.
Options: act-order (columns by decreasing H_jj; groups are then runs of the permuted order,
stored through Int4Linear's `in_perm`), static groups (group parameters from the initial
weights, original groups: no permutation needed), a fixed sparsity `mask` (masked weights are
quantized to 0, SparseGPT's joint pruning + quantization), dead inputs (H_jj = 0: weight 0).
"""

from __future__ import annotations

import dataclasses

import torch

from .capture import CalibrationError


@dataclasses.dataclass(frozen=True)
class Grid:
    bits: int  # 4 or 8
    group: int  # columns per group (K: per channel)
    symmetric: bool

    def params(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, z) [N] for the columns w [N, g] of one group."""
        if self.bits == 8:
            s = w.abs().amax(1).clamp_min(1e-12) / 127
            return s, torch.zeros_like(s)
        if self.symmetric:
            s = w.abs().amax(1) / 7
            s = torch.where(s == 0, 1.0, s)
            return _fp16(s), torch.full_like(s, 8.0)
        lo, hi = w.amin(1).clamp(max=0), w.amax(1).clamp(min=0)
        flat = (lo == 0) & (hi == 0)
        lo, hi = torch.where(flat, -1.0, lo), torch.where(flat, 1.0, hi)
        s = _fp16((hi - lo) / 15)
        return s, torch.clamp(torch.round(-lo / s), 0, 15)

    def quantize(self, w, s, z) -> torch.Tensor:
        """Integers (as floats) of w [N] or [N, c] on the grid (s, z) [N]."""
        s, z = (s, z) if w.dim() == 1 else (s[:, None], z[:, None])
        if self.bits == 8:
            return torch.clamp(torch.round(w / s), -127, 127)
        return torch.clamp(torch.round(w / s) + z, 0, 15)

    def dequantize(self, q, s, z) -> torch.Tensor:
        s, z = (s, z) if q.dim() == 1 else (s[:, None], z[:, None])
        return (q - z) * s


def _fp16(s: torch.Tensor) -> torch.Tensor:
    """s rounded to fp16 (kept >= fp16's smallest subnormal, so never 0), as fp32."""
    return s.clamp(min=2.0**-24, max=65504.0).half().float()


@dataclasses.dataclass
class Result:
    """q [N, K] integers in original column order; scales / zeros [N, G] per group in group
    order; g_idx [K] the group of each column (as in a GPTQ checkpoint)."""

    q: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor
    g_idx: torch.Tensor
    damp: float  # the damping that made H positive definite (fraction of mean diag)

    def dequantize(self) -> torch.Tensor:
        s = self.scales[:, self.g_idx]
        z = self.zeros[:, self.g_idx]
        return (self.q - z) * s


def inverse_cholesky(H: torch.Tensor, damp: float) -> tuple[torch.Tensor, float]:
    """The upper Cholesky factor of (H + damp * mean(diag H) I)^-1 in fp32, raising the damping
    tenfold (up to 3 times) where H is not positive definite."""
    mean = H.diagonal().mean().clamp_min(1e-30)
    eye = torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    for d in (damp, damp * 10, damp * 100, damp * 1000):
        L, info = torch.linalg.cholesky_ex(H + d * mean * eye)
        if info == 0:
            Hinv = torch.cholesky_inverse(L)
            U, info = torch.linalg.cholesky_ex(Hinv, upper=True)
            if info == 0:
                return U.float(), d
    raise CalibrationError(
        f"the Hessian is singular even with damping {damp * 1000:g} (calibration inputs too "
        "few or degenerate for this layer)"
    )


def gptq(
    W: torch.Tensor,
    H: torch.Tensor,
    grid: Grid,
    *,
    damp: float = 0.01,
    act_order: bool = False,
    static_groups: bool = False,
    mask: torch.Tensor | None = None,
    block: int = 128,
) -> Result:
    """GPTQ of W [N, K] (any float; computed in fp32) with H [K, K] (fp64 sum of x x^T)."""
    N, K = W.shape
    g = grid.group
    if K % g:
        raise CalibrationError(f"K={K} is not a multiple of the group size {g}")
    W = W.detach().float().clone()
    H = H.detach().double().clone()
    dead = H.diagonal() == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    keep = None if mask is None else mask.to(W.device, torch.bool).clone()
    G = K // g
    scales = torch.empty(N, G, device=W.device)
    zeros = torch.empty(N, G, device=W.device)
    if g == K or static_groups:  # parameters from the initial weights, original groups
        for j in range(G):
            scales[:, j], zeros[:, j] = grid.params(_masked(W, keep, slice(j * g, (j + 1) * g)))
    perm = torch.argsort(H.diagonal(), descending=True) if act_order else None
    if perm is not None:
        W, H = W[:, perm], H[perm][:, perm]
        keep = None if keep is None else keep[:, perm]
    U, used = inverse_cholesky(H, damp)
    # a group never straddles a lazy block, so its parameters see its current weights
    block = max(block // g, 1) * g if g < K else block
    Q = torch.zeros_like(W)
    g_of = torch.empty(K, dtype=torch.int64, device=W.device)  # group of processed column i
    for i1 in range(0, K, block):
        i2 = min(i1 + block, K)
        W1 = W[:, i1:i2].clone()
        E1 = torch.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            orig = int(perm[col]) if perm is not None else col
            if g == K or static_groups:
                gi = orig // g
            else:
                gi = col // g
                if col % g == 0:
                    cols = slice(i, i + g)
                    scales[:, gi], zeros[:, gi] = grid.params(
                        _masked(W1, None if keep is None else keep[:, i1:i2], cols)
                    )
            g_of[col] = gi
            w = W1[:, i]
            q = grid.quantize(w, scales[:, gi], zeros[:, gi])
            wq = grid.dequantize(q, scales[:, gi], zeros[:, gi])
            if keep is not None:  # a pruned weight is set to 0 (its zero point: exactly 0)
                off = ~keep[:, col]
                q = torch.where(off, zeros[:, gi], q)
                wq = torch.where(off, 0.0, wq)
            Q[:, col] = q
            err = (w - wq) / U1[i, i]
            W1[:, i:] -= err[:, None] * U1[i, i:][None, :]
            E1[:, i] = err
        W[:, i2:] -= E1 @ U[i1:i2, i2:]
    g_idx = g_of
    if perm is not None:
        inv = torch.argsort(perm)
        Q, g_idx = Q[:, inv], g_of[inv]
    return Result(Q, scales, zeros, g_idx, used)


def _masked(W, keep, cols):
    """W[:, cols] with pruned entries zeroed (group parameters over the kept weights)."""
    w = W[:, cols]
    return w if keep is None else torch.where(keep[:, cols], w, 0.0)


def output_error(W: torch.Tensor, W_hat: torch.Tensor, H: torch.Tensor) -> float:
    """tr(dW H dW^T) / tr(W H W^T): the layer's relative output error on the calibration
    inputs (dW = W_hat - W), exactly, from H."""
    Hf = H.double()
    d = W_hat.double() - W.double()
    num = ((d @ Hf) * d).sum()
    den = ((W.double() @ Hf) * W.double()).sum().clamp_min(1e-300)
    return float(num / den)
