"""Per-layer budgets: the allocator never exceeds its budget and finds the least error (checked
against brute force), and compress_ applies the choice within the budget."""

import itertools
import random

import pytest
import torch
from calib_data import correlated
from torch import nn

import greenops
from greenops.calibrate import budget


def _options(seed, layers=4, choices=4):
    rnd = random.Random(seed)
    out = {}
    for i in range(layers):
        rows = [(None, rnd.randint(5000, 9000), 0.0)]
        rows += [(f"c{j}", rnd.randint(500, 6000), rnd.random()) for j in range(choices - 1)]
        out[f"l{i}"] = rows
    return out


@pytest.mark.parametrize("seed", range(12))
def test_allocation_fits_and_is_optimal(seed):
    opts = _options(seed)
    least = sum(min(b for _, b, _ in r) for r in opts.values())
    most = sum(max(b for _, b, _ in r) for r in opts.values())
    for budget_bytes in (least + 50, (least + most) // 2, most):
        picked = budget.allocate(opts, budget_bytes)
        assert sum(b for _, b, _ in picked.values()) <= budget_bytes
        got = sum(e for _, _, e in picked.values())
        best = min(
            sum(r[2] for r in combo)
            for combo in itertools.product(*opts.values())
            if sum(r[1] for r in combo) <= budget_bytes
        )
        assert got <= best + 1e-12, (got, best)


def test_a_budget_below_every_choice_is_refused():
    opts = _options(0)
    least = sum(min(b for _, b, _ in r) for r in opts.values())
    with pytest.raises(greenops.CalibrationError, match="below the smallest configuration"):
        budget.allocate(opts, least - 1)


def test_compress_stays_within_the_budget():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64), nn.GELU(), nn.Linear(64, 32)
    ).eval()
    x = correlated(600, 64, seed=1)
    dense = sum(budget.module_bytes(m) for m in model if isinstance(m, nn.Linear))
    rep = greenops.compress_(model, [x[:300], x[300:]], budget_bytes=dense // 4, progress=False)
    held = sum(budget.module_bytes(m) for m in model if hasattr(m, "in_features"))
    assert held <= dense // 4
    assert sum(m["bytes"] for m in rep.metrics.values()) == held
    assert set(rep.metrics) == {"0", "2", "4"} and all("choice" in m for m in rep.metrics.values())
    assert "choice" in str(rep)
