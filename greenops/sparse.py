"""Block-sparse weights: the BSR format, conversion, validation and magnitude pruning.

    w = BlockSparseWeight.from_dense(dense, block=(32, 32), sparsity=0.75)  # block L2 pruning
    y = greenops.bsr_mm(x, w, bias)                                         # x @ w.T + bias
    w.values.requires_grad_()                                               # train the blocks

Format (docs/kernels.md), as torch.sparse_bsr: W [N, K] in blocks (bn, bk), bn and bk each 16,
32, 64 or 128; crow_indices [N/bn + 1] int64, col_indices [nnz] int64 (sorted and unique within
each block row), values [nnz, bn, bk] (fp32, fp16 or bf16; or int8 with `scales` [N] fp32, one
per output channel: W[n, :] = values * scales[n] -- quantization and sparsity together,
`w.quantize_int8()`). The transpose's metadata (for the backward's dX = dY @ W) is built once
per weight and cached.
"""

from __future__ import annotations

import torch

from .ops import _backend
from .ops.bsr import (
    BLOCK_SIZES,
    block_rows,
    check_indices,
    dequantize_blocks,
    transpose_metadata,
)


class BlockSparseWeight:
    def __init__(
        self,
        values: torch.Tensor,
        crow_indices: torch.Tensor,
        col_indices: torch.Tensor,
        shape: tuple[int, int],
        validate: bool = True,
        scales: torch.Tensor | None = None,
    ) -> None:
        """Shapes and the bounds of every index (crow running monotonically from 0 to nnz,
        columns in [0, K/bk)) are always checked: a bad index is a ValueError naming it, never
        a wild read (one host copy of the metadata; skipped for meta/fake tensors).
        validate=False skips only the check that each row's columns are sorted and unique, for
        trusted weights. int8 values need `scales` [N] (fp32, one per output channel); float
        values take none."""
        self.values, self.crow_indices, self.col_indices = values, crow_indices, col_indices
        self.scales = scales
        self.shape = (int(shape[0]), int(shape[1]))
        self._transpose = None
        self._check_shapes()
        check_indices(
            "BlockSparseWeight", crow_indices, col_indices, self.shape[1] // self.block[1]
        )
        if validate:
            self.validate()

    # --- structure ---
    @property
    def block(self) -> tuple[int, int]:
        return int(self.values.shape[1]), int(self.values.shape[2])

    @property
    def nnz_blocks(self) -> int:
        return int(self.values.shape[0])

    @property
    def density(self) -> float:
        bn, bk = self.block
        total = (self.shape[0] // bn) * (self.shape[1] // bk)
        return self.nnz_blocks / total if total else 0.0

    @property
    def sparsity(self) -> float:
        return 1.0 - self.density

    def _check_shapes(self) -> None:
        v, crow, col = self.values, self.crow_indices, self.col_indices
        if v.dim() != 3:
            raise ValueError(f"values must be 3-D [nnz, bn, bk], got shape {list(v.shape)}")
        bn, bk = self.block
        N, K = self.shape
        if bn not in BLOCK_SIZES or bk not in BLOCK_SIZES:
            raise ValueError(f"blocks must be 16, 32, 64 or 128 on each side, got ({bn}, {bk})")
        if N % bn or K % bk:
            raise ValueError(
                f"shape {list(self.shape)} is not a multiple of the block ({bn}, {bk})"
            )
        if (v.dtype == torch.int8) != (self.scales is not None):
            raise ValueError(
                "int8 values need scales (one per output channel) and float values take none; "
                f"got {v.dtype} values and scales={'given' if self.scales is not None else None}"
            )
        if self.scales is not None and (
            self.scales.dtype != torch.float32 or self.scales.shape != (N,)
        ):
            raise ValueError(
                f"scales must be float32 [{N}], got {self.scales.dtype} {list(self.scales.shape)}"
            )
        for name, t in (("crow_indices", crow), ("col_indices", col)):
            if t.dtype != torch.int64:
                raise TypeError(f"{name} must be torch.int64, got {t.dtype}")
        if crow.shape != (N // bn + 1,):
            raise ValueError(
                f"crow_indices must have shape [{N // bn + 1}] (N/bn + 1), got {list(crow.shape)}"
            )
        if col.shape != (v.shape[0],):
            raise ValueError(
                f"col_indices must have shape [{v.shape[0]}] (one per block of values), "
                f"got {list(col.shape)}"
            )

    def validate(self) -> None:
        """Raises ValueError unless crow runs monotonically from 0 to nnz and every row's
        column indices are in range, sorted and unique."""
        check_indices(
            "BlockSparseWeight", self.crow_indices, self.col_indices, self.shape[1] // self.block[1]
        )
        crow, col = self.crow_indices.cpu(), self.col_indices.cpu()
        nnz = self.nnz_blocks
        if nnz > 1:
            same_row = torch.ones(nnz - 1, dtype=torch.bool)
            same_row[crow[1:-1][crow[1:-1] < nnz] - 1] = False  # pairs across a row boundary
            bad = same_row & (col[1:] <= col[:-1])
            if bad.any():
                b = int(torch.nonzero(bad)[0]) + 1
                raise ValueError(
                    f"col_indices must be sorted and unique within each block row "
                    f"(block {b}: {int(col[b])} after {int(col[b - 1])})"
                )

    @property
    def transpose(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(t_crow, t_blocks): the transpose's metadata, built on first use and cached."""
        if self._transpose is None:
            self._transpose = transpose_metadata(
                self.crow_indices, self.col_indices, self.shape[1] // self.block[1]
            )
        return self._transpose

    # --- conversion ---
    @classmethod
    def from_dense(
        cls,
        w: torch.Tensor,
        block: tuple[int, int] | int = (32, 32),
        mask: torch.Tensor | None = None,
        sparsity: float | None = None,
    ) -> BlockSparseWeight:
        """Keeps the blocks of `mask` (bool [N/bn, K/bk]), or, given `sparsity`, the blocks with
        the largest L2 norm (block_mask); neither: every block that is not all zero."""
        bn, bk = (block, block) if isinstance(block, int) else block
        if w.dim() != 2:
            raise ValueError(f"w must be 2-D [N, K], got shape {list(w.shape)}")
        N, K = w.shape
        if N % bn or K % bk:
            raise ValueError(f"shape {list(w.shape)} is not a multiple of the block ({bn}, {bk})")
        if mask is not None and sparsity is not None:
            raise ValueError("give mask or sparsity, not both")
        blocks = w.reshape(N // bn, bn, K // bk, bk).transpose(1, 2)  # [R, C, bn, bk]
        if sparsity is not None:
            mask = block_mask(w, (bn, bk), sparsity)
        elif mask is None:
            mask = blocks.reshape(N // bn, K // bk, bn * bk).ne(0).any(-1)
        if mask.shape != (N // bn, K // bk) or mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be bool [{N // bn}, {K // bk}], got {mask.dtype} {list(mask.shape)}"
            )
        rows, cols = torch.nonzero(mask, as_tuple=True)  # row-major: sorted within rows
        crow = torch.zeros(N // bn + 1, dtype=torch.int64, device=w.device)
        crow[1:] = torch.cumsum(mask.sum(1), 0)
        values = blocks[rows, cols].contiguous()
        return cls(values, crow, cols.to(torch.int64), (N, K), validate=False)

    def dequantized_values(self) -> torch.Tensor:
        """The blocks in float: int8 values times their rows' scales (fp32); float ones as
        they are."""
        if self.scales is None:
            return self.values
        return dequantize_blocks(self.values, self.scales, self.crow_indices)

    def to_dense(self) -> torch.Tensor:
        """W [N, K] in the values' dtype (fp32 for int8 values, dequantized)."""
        N, K = self.shape
        bn, bk = self.block
        v = self.dequantized_values()
        out = torch.zeros(N // bn, K // bk, bn, bk, dtype=v.dtype, device=v.device)
        out[block_rows(self.crow_indices, self.nnz_blocks), self.col_indices] = v
        return out.transpose(1, 2).reshape(N, K)

    def quantize_int8(self) -> BlockSparseWeight:
        """int8 blocks with one scale per output channel (symmetric, quantize_int8's rule over
        each row's stored blocks: s = max(amax, 1e-12) / 127, q = clamp(round_half_even(w / s),
        -127, 127); a row holding NaN or +-Inf gets s = NaN and q = 0). Same pattern, 1/4 the
        bytes of fp32 blocks."""
        if self.scales is not None:
            return self
        N, K = self.shape
        bn, _ = self.block
        v = self.values.float()
        rows = block_rows(self.crow_indices, self.nnz_blocks)
        amax = torch.zeros(N // bn, bn, device=v.device)  # rows without blocks: s = 1e-12/127
        bad = torch.zeros(N // bn, bn, device=v.device)
        if self.nnz_blocks:
            idx = rows[:, None].expand(-1, bn)
            amax.scatter_reduce_(0, idx, v.abs().amax(-1), "amax")
            bad.index_add_(0, rows, (~torch.isfinite(v)).any(-1).float())
        s = amax.clamp_min(1e-12) / 127
        s = torch.where(bad > 0, torch.nan, s).reshape(N)
        sb = s.view(N // bn, bn)[rows][:, :, None]
        q = torch.where(torch.isfinite(sb), torch.clamp(torch.round(v / sb), -127, 127), 0)
        w = BlockSparseWeight(
            q.to(torch.int8), self.crow_indices, self.col_indices, self.shape, False, s
        )
        w._transpose = self._transpose
        return w

    def to_sparse_bsr(self) -> torch.Tensor:
        """A torch.sparse_bsr tensor (int8 weights: their dequantized fp32 blocks)."""
        v = self.dequantized_values()
        return torch.sparse_bsr_tensor(self.crow_indices, self.col_indices, v, self.shape)

    @classmethod
    def from_sparse_bsr(cls, t: torch.Tensor, validate: bool = True) -> BlockSparseWeight:
        if t.layout != torch.sparse_bsr:
            raise ValueError(f"expected a torch.sparse_bsr tensor, got layout {t.layout}")
        return cls(
            t.values(),
            t.crow_indices().to(torch.int64),
            t.col_indices().to(torch.int64),
            tuple(t.shape),
            validate,
        )

    def to(self, device=None, dtype=None) -> BlockSparseWeight:
        """Moves the weight; `dtype` changes float values (int8 ones keep their dtype)."""
        q8 = self.scales is not None
        w = BlockSparseWeight(
            self.values.to(device=device, dtype=None if q8 else dtype),
            self.crow_indices.to(device),
            self.col_indices.to(device),
            self.shape,
            validate=False,
            scales=self.scales.to(device) if q8 else None,
        )
        if self._transpose is not None:
            w._transpose = tuple(t.to(device) for t in self._transpose)
        return w

    def __repr__(self) -> str:
        return (
            f"BlockSparseWeight(shape={list(self.shape)}, block={self.block}, "
            f"nnz_blocks={self.nnz_blocks}, sparsity={self.sparsity:.1%}, "
            f"dtype={self.values.dtype}{' + per-channel scales' if self.scales is not None else ''}"
            f", device={self.values.device})"
        )


def bsr_mm(
    x: torch.Tensor,
    weight: BlockSparseWeight,
    bias: torch.Tensor | None = None,
    *,
    backend: str | None = None,
    x_scales: torch.Tensor | None = None,
) -> torch.Tensor:
    """x @ weight.T + bias for a block-sparse weight; leading dims of x are flattened. fp32
    accumulation, output in x's dtype (x and the values share one dtype). Differentiable in x,
    weight.values and bias: dX through the cached transpose (a sparse x dense product, W never
    densified) and dValues only at the nonzero blocks.

    W8A8: int8 x with its per-row `x_scales` (x's shape without the last dim, as
    `quantize_int8(x, -1)` gives them) against int8 blocks: (x * x_scales) @ W.T + bias, int32
    sums, fp32 output; not differentiable."""
    from .ops.bsr import TRITON_IMPLS

    if not isinstance(weight, BlockSparseWeight):
        raise TypeError(
            "greenops.bsr_mm: weight must be a greenops.BlockSparseWeight (e.g. "
            f"BlockSparseWeight.from_dense(w, block=(32, 32), sparsity=0.5)), got "
            f"{type(weight).__name__}"
        )
    if x.dim() < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"greenops.bsr_mm: x has K={x.shape[-1] if x.dim() else None} but the weight is "
            f"[N, K] = {list(weight.shape)}"
        )
    t_crow, t_blocks = weight.transpose
    args = (
        x,
        weight.values,
        weight.crow_indices,
        weight.col_indices,
        bias,
        t_crow,
        t_blocks,
        weight.scales,
        x_scales,
    )
    return _backend.call("bsr_mm", x.device, backend, {"triton": TRITON_IMPLS["bsr_mm"]}, *args)


# --- pruning ----------------------------------------------------------------------------------


def block_norms(w: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    bn, bk = block
    N, K = w.shape
    return w.detach().float().reshape(N // bn, bn, K // bk, bk).pow(2).sum((1, 3)).sqrt()


def block_mask(w: torch.Tensor, block: tuple[int, int], sparsity: float) -> torch.Tensor:
    """Bool [N/bn, K/bk]: the round((1 - sparsity) * blocks) blocks of largest L2 norm (ties
    broken by position, so the mask is deterministic)."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity}")
    norms = block_norms(w, block).flatten()
    keep = round((1.0 - sparsity) * norms.numel())
    mask = torch.zeros(norms.numel(), dtype=torch.bool, device=w.device)
    if keep:
        order = torch.argsort(norms, descending=True, stable=True)
        mask[order[:keep]] = True
    return mask.view(w.shape[0] // block[0], w.shape[1] // block[1])


def cubic_sparsity(step: int, final: float, begin: int, end: int, initial: float = 0.0) -> float:
    """Zhu & Gupta's gradual pruning schedule: s = s_f + (s_i - s_f) (1 - t)^3 with t the
    fraction of [begin, end] elapsed (clamped)."""
    if end <= begin:
        return final if step >= begin else initial
    t = min(max((step - begin) / (end - begin), 0.0), 1.0)
    return final + (initial - final) * (1.0 - t) ** 3


class GradualPruner:
    """Drives a dense weight to `final` block sparsity on the cubic schedule: every `every`
    steps between `begin` and `end`, `step()` re-selects the blocks by magnitude and returns the
    new mask (else None); `apply(w)` zeroes the pruned blocks in place."""

    def __init__(self, block, final, begin, end, every=10, initial=0.0):
        self.block, self.final, self.begin, self.end = block, final, begin, end
        self.every, self.initial = every, initial
        self.mask: torch.Tensor | None = None
        self.steps = 0

    def sparsity(self) -> float:
        return cubic_sparsity(self.steps, self.final, self.begin, self.end, self.initial)

    def step(self, w: torch.Tensor) -> torch.Tensor | None:
        s = self.steps
        self.steps += 1
        due = s == self.begin or (
            self.begin <= s <= self.end and (s - self.begin) % self.every == 0
        )
        if not due and self.mask is not None:
            return None
        self.mask = block_mask(
            w, self.block, cubic_sparsity(s, self.final, self.begin, self.end, self.initial)
        )
        return self.mask

    @torch.no_grad()
    def apply(self, w: torch.Tensor) -> None:
        if self.mask is None:
            return
        bn, bk = self.block
        m = self.mask.repeat_interleave(bn, 0).repeat_interleave(bk, 1)
        w.mul_(m.to(w.dtype))


__all__ = [
    "BlockSparseWeight",
    "GradualPruner",
    "block_mask",
    "block_norms",
    "bsr_mm",
    "cubic_sparsity",
]
