"""A greenops module as plain JSON (kind, shapes, options) and back as an empty module of
exactly those shapes, ready for load_state_dict: what a saved compressed model records so that
it can be rebuilt without the float weights (greenops.hf)."""

from __future__ import annotations

import torch

from .modules import BlockSparseLinear, Int4Linear, Int8Linear

KINDS = {"int8": Int8Linear, "int4": Int4Linear, "bsr": BlockSparseLinear}


def spec(m) -> dict:
    """{"kind", "in_features", "out_features", "bias", ...}: everything that fixes the
    module's tensors' shapes and dtypes."""
    out = {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None}
    if isinstance(m, Int8Linear):
        out.update(kind="int8", weight_only=m.weight_only, in_scale=m.in_scale is not None)
    elif isinstance(m, Int4Linear):
        out.update(
            kind="int4",
            group_size=m.group_size,
            symmetric=m.symmetric,
            in_perm=m.in_perm is not None,
            in_scale=m.in_scale is not None,
        )
    elif isinstance(m, BlockSparseLinear):
        out.update(
            kind="bsr",
            block=list(m.block),
            nnz_blocks=m.values.shape[0],
            dtype=str(m.values.dtype).removeprefix("torch."),
            int8_act=m.int8_act,
        )
    else:
        raise TypeError(f"greenops.nn.spec: {type(m).__name__} is not a greenops module")
    return out


def empty(s: dict, device=None):
    """The module `s` describes, its tensors allocated (zeros) but not yet loaded."""
    kind = s.get("kind")
    if kind not in KINDS:
        raise ValueError(f"greenops.nn.spec: unknown module kind {kind!r} (known: {list(KINDS)})")
    K, N, bias = s["in_features"], s["out_features"], s["bias"]
    with torch.device(device or "cpu"):
        if kind == "int8":
            m = Int8Linear(K, N, bias, s["weight_only"])
            if s["in_scale"]:
                m.in_scale = torch.ones(K)
        elif kind == "int4":
            m = Int4Linear(K, N, bias, s["group_size"], s["symmetric"])
            if s["in_perm"]:
                m.in_perm = torch.arange(K)
            if s["in_scale"]:
                m.in_scale = torch.ones(K)
        else:
            dtype = getattr(torch, s["dtype"])
            m = BlockSparseLinear(
                K, N, bias, tuple(s["block"]), s["nnz_blocks"], dtype, s["int8_act"]
            )
    return m
