"""BlockSparseWeight: conversion, validation, pruning."""

import pytest
import torch

from greenops.sparse import BlockSparseWeight, GradualPruner, block_mask, cubic_sparsity


def test_dense_round_trip_and_torch_bsr():
    w = torch.randn(64, 96)
    sw = BlockSparseWeight.from_dense(w, (32, 16))
    assert sw.nnz_blocks == 2 * 6 and sw.density == 1.0
    assert torch.equal(sw.to_dense(), w)
    t = sw.to_sparse_bsr()
    assert t.layout == torch.sparse_bsr and torch.equal(t.to_dense(), w)
    back = BlockSparseWeight.from_sparse_bsr(w.to_sparse_bsr((32, 16)))
    assert torch.equal(back.to_dense(), w)
    assert "sparsity=0.0%" in repr(sw)


def test_magnitude_pruning_keeps_the_largest_blocks():
    w = torch.zeros(64, 64)
    for i, v in enumerate([4.0, 1.0, 3.0, 2.0]):
        r, c = divmod(i, 2)
        w[32 * r : 32 * r + 32, 32 * c : 32 * c + 32] = v
    sw = BlockSparseWeight.from_dense(w, 32, sparsity=0.5)
    assert sw.nnz_blocks == 2
    assert block_mask(w, (32, 32), 0.5).tolist() == [[True, False], [True, False]]
    assert torch.equal(sw.to_dense(), w * (w >= 3))


@pytest.mark.parametrize(
    "crow, col, match, bounds",
    [
        ([0, 2, 1], [0, 1], "must not decrease|run from 0", True),
        ([0, 2, 2], [1, 0], "sorted and unique", False),
        ([0, 2, 2], [0, 0], "sorted and unique", False),
        ([0, 1, 2], [0, 9], r"col_indices\[1\] = 9 is out of range", True),
        ([1, 1, 2], [0, 1], "run from 0", True),
    ],
)
def test_validation(crow, col, match, bounds):
    """Index bounds are checked whatever `validate` says; validate=False skips only the sorted
    and unique columns check (on request, never silently)."""
    v = torch.randn(2, 32, 32)
    args = (v, torch.tensor(crow), torch.tensor(col), (64, 64))
    with pytest.raises(ValueError, match=match):
        BlockSparseWeight(*args)
    if bounds:
        with pytest.raises(ValueError, match=match):
            BlockSparseWeight(*args, validate=False)
    else:
        BlockSparseWeight(*args, validate=False)


def test_shape_errors():
    with pytest.raises(ValueError, match="multiple of the block"):
        BlockSparseWeight.from_dense(torch.randn(48, 64), 32)
    with pytest.raises(ValueError, match="16, 32, 64 or 128"):
        BlockSparseWeight(torch.randn(1, 8, 8), torch.tensor([0, 1]), torch.tensor([0]), (8, 8))
    with pytest.raises(ValueError, match="crow_indices must have shape"):
        BlockSparseWeight(torch.randn(1, 32, 32), torch.tensor([0, 1]), torch.tensor([0]), (64, 32))


def test_cubic_schedule_and_gradual_pruner():
    assert cubic_sparsity(0, 0.9, 0, 100) == 0.0
    assert cubic_sparsity(100, 0.9, 0, 100) == pytest.approx(0.9)
    assert cubic_sparsity(50, 0.9, 0, 100) == pytest.approx(0.9 - 0.9 * 0.125)
    w = torch.randn(128, 128)
    p = GradualPruner((32, 32), final=0.75, begin=0, end=20, every=5)
    masks = []
    for _ in range(25):
        m = p.step(w)
        if m is not None:
            masks.append(m.clone())
        p.apply(w)
    assert len(masks) == 5  # steps 0, 5, 10, 15, 20
    assert masks[-1].float().mean().item() == pytest.approx(0.25)
    kept = [m.sum().item() for m in masks]
    assert kept == sorted(kept, reverse=True)
    # pruned blocks are zero, and the pattern holds between re-selections
    sw = BlockSparseWeight.from_dense(w, 32)
    assert sw.nnz_blocks == masks[-1].sum().item()


def test_to_keeps_the_cached_transpose():
    sw = BlockSparseWeight.from_dense(torch.randn(64, 64), 32, sparsity=0.5)
    t = sw.transpose
    w2 = sw.to(dtype=torch.bfloat16)
    assert w2.values.dtype == torch.bfloat16 and w2._transpose is not None
    assert torch.equal(w2.transpose[0], t[0])
