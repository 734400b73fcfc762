"""Distillation: the compressed student moves towards the teacher with the block pattern fixed;
a failed run restores the student."""

import copy

import pytest
import torch
from calib_data import correlated
from torch import nn

import greenops
from greenops.calibrate import distill


def _pair():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 32)).eval()
    student = copy.deepcopy(teacher)
    greenops.sparsify_(student, greenops.BlockSparseConfig((16, 16), 0.75))
    return teacher, student


def test_distillation_lowers_the_error_with_the_pattern_fixed():
    teacher, student = _pair()
    x = correlated(1400, 64, seed=1)
    batches = [x[i : i + 100] for i in range(0, 1200, 100)]
    held = x[1200:]
    pattern = [m.col_indices.clone() for m in student if hasattr(m, "col_indices")]

    def err():
        with torch.no_grad():
            return float(
                (student(held) - teacher(held)).pow(2).mean() / teacher(held).pow(2).mean()
            )

    before = err()
    out = distill(student, teacher, batches, steps=120, lr=3e-3, progress=False)
    assert out["steps"] == 120 and out["loss_last"] < out["loss_first"]
    assert err() < 0.7 * before  # 0.87 -> 0.45 here
    after = [m.col_indices for m in student if hasattr(m, "col_indices")]
    assert all(torch.equal(a, b) for a, b in zip(pattern, after, strict=True))
    assert all(m.sparsity == 0.75 for m in student if hasattr(m, "sparsity"))


class _Nan(nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 32), float("nan"))


def test_a_failed_distillation_restores_the_student():
    _, student = _pair()
    before = copy.deepcopy(student.state_dict())
    with pytest.raises(greenops.CalibrationError, match="loss is nan"):
        distill(student, _Nan(), [torch.randn(10, 64)], steps=3, progress=False)
    for k, v in student.state_dict().items():
        assert torch.equal(v, before[k]), k
