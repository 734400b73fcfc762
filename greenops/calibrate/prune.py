"""Calibrated block pruning: which blocks of W [N, K] to keep, and the kept weights re-fitted so
that the layer's output on the calibration inputs changes as little as possible.

Scores (higher = keep):
- "wanda" (Sun et al. 2023, "A Simple and Effective Pruning Approach for LLMs"): per weight
  |W_ij| * ||X_j||_2, summed over the block;
- "sparsegpt" (OBS, Hassibi & Stork 1993, as used by SparseGPT, Frantar & Alistarh 2023): the
  output error of removing the block alone with the rest of its rows re-fitted,
  sum over its rows n of w_nB [(H^-1)_BB]^-1 w_nB^T.
Reconstruction (method "sparsegpt"): with the pattern fixed, each block row's kept weights are
the least-squares fit of the dense layer's outputs, W'_C = W_C + W_P H_PC H_CC^-1 (C: the
row's kept columns, P: its pruned ones; H damped as GPTQ's) — solved exactly per block row,
since all bn rows of a block row share one pattern, where SparseGPT approximates column by
column for unstructured masks.
"""

from __future__ import annotations

import torch

from ..sparse import block_norms
from .capture import CalibrationError


def _damped(H: torch.Tensor, damp: float) -> torch.Tensor:
    H = H.double().clone()
    dead = H.diagonal() == 0
    H[dead, dead] = 1.0
    H.diagonal().add_(damp * H.diagonal().mean())
    return H


def block_scores(w, H, block, method, damp=0.01) -> torch.Tensor:
    """[N/bn, K/bk] scores of the blocks of w [N, K] (higher: more important)."""
    bn, bk = block
    N, K = w.shape
    if method == "magnitude":
        return block_norms(w, block)
    wd = w.detach().double()
    if method == "wanda":
        col = H.double().diagonal().clamp_min(0).sqrt()  # ||X_j||_2
        per = wd.abs() * col
        return per.reshape(N // bn, bn, K // bk, bk).sum((1, 3)).float()
    if method == "sparsegpt":
        Hinv = torch.cholesky_inverse(_cholesky(_damped(H, damp)))
        out = torch.empty(N // bn, K // bk, dtype=torch.float64, device=w.device)
        for c in range(K // bk):
            cols = slice(c * bk, (c + 1) * bk)
            M = torch.linalg.inv(Hinv[cols, cols])
            wc = wd[:, cols]
            out[:, c] = ((wc @ M) * wc).sum(1).reshape(N // bn, bn).sum(1)
        return out.float()
    raise ValueError(f"unknown block score method {method!r}")


def _cholesky(H: torch.Tensor) -> torch.Tensor:
    L, info = torch.linalg.cholesky_ex(H)
    if info != 0:
        raise CalibrationError("the Hessian is not positive definite even with damping")
    return L


def keep_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """bool mask of the round((1 - sparsity) * blocks) highest-scoring blocks (ties by
    position, as sparse.block_mask)."""
    flat = scores.flatten()
    keep = round((1.0 - sparsity) * flat.numel())
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=scores.device)
    if keep:
        mask[torch.argsort(flat, descending=True, stable=True)[:keep]] = True
    return mask.view(scores.shape)


def reconstruct(w, H, mask, block, damp=0.01) -> torch.Tensor:
    """w [N, K] with pruned blocks zero and each block row's kept weights re-fitted (module
    doc); fp32."""
    bn, bk = block
    N, K = w.shape
    Hd = _damped(H, damp)
    wd = w.detach().double()
    out = torch.zeros_like(wd)
    cols_of = mask.repeat_interleave(bk, 1)  # [N/bn, K]: kept columns per block row
    for r in range(N // bn):
        keep = cols_of[r]
        if not keep.any():
            continue
        rows = slice(r * bn, (r + 1) * bn)
        C, P = torch.nonzero(keep).flatten(), torch.nonzero(~keep).flatten()
        wC = wd[rows][:, C]
        if P.numel():
            L = _cholesky(Hd[C][:, C])
            fit = torch.cholesky_solve(Hd[C][:, P], L)  # H_CC^-1 H_CP: [|C|, |P|]
            wC = wC + wd[rows][:, P] @ fit.T
        out[rows, C] = wC
    return out.float()
