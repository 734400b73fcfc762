"""Parameter bytes of a model, per layer, before and after conversion."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass
class LayerSize:
    name: str
    kind: str
    bits: str
    bytes_now: int
    bytes_dense: int  # the same layer as a dense nn.Linear in its float dtype


def _tensor_bytes(ts) -> int:
    return sum(t.numel() * t.element_size() for t in ts if t is not None)


def summary(model: nn.Module, dense_dtype: torch.dtype = torch.float32) -> list[LayerSize]:
    """One row per Linear-like layer (nn.Linear and greenops.nn modules): what its weights,
    scales, indices and bias take now, and what a dense `dense_dtype` Linear would take."""
    from .modules import BlockSparseLinear, Int4Linear, Int8Linear

    rows = []
    esz = torch.empty(0, dtype=dense_dtype).element_size()
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, Int8Linear, Int4Linear, BlockSparseLinear)):
            dense = m.in_features * m.out_features * esz + (
                m.out_features * esz if m.bias is not None else 0
            )
            now = _tensor_bytes(list(m.parameters(recurse=False)) + list(m.buffers(recurse=False)))
            if isinstance(m, Int8Linear):
                kind, bits = "Int8Linear", "8" + (" (W8A16)" if m.weight_only else " (W8A8)")
            elif isinstance(m, Int4Linear):
                kind, bits = "Int4Linear", f"4 (g{m.group_size})"
            elif isinstance(m, BlockSparseLinear):
                kind, bits = (
                    "BlockSparseLinear",
                    f"{m.values.element_size() * 8} ({m.sparsity:.0%} sparse)",
                )
            else:
                kind, bits = "Linear", str(m.weight.element_size() * 8)
            rows.append(LayerSize(name, kind, bits, now, dense))
    return rows


def format_summary(rows: list[LayerSize]) -> str:
    lines = [f"{'layer':<32} {'kind':<18} {'bits':<18} {'bytes':>12} {'dense':>12}"]
    for r in rows:
        lines.append(
            f"{r.name:<32} {r.kind:<18} {r.bits:<18} {r.bytes_now:>12,} {r.bytes_dense:>12,}"
        )
    now, dense = sum(r.bytes_now for r in rows), sum(r.bytes_dense for r in rows)
    lines.append(
        f"{'total':<70}{now:>12,} {dense:>12,}  ({now / dense:.1%} of dense)"
        if dense
        else "total 0"
    )
    return "\n".join(lines)
