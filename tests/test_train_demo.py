"""The training demonstration: sparse training under a gradual schedule, and the comparison."""

import torch
from torch import nn

from greenops import train_demo
from greenops.nn import BlockSparseLinear
from greenops.sparse import GradualPruner, block_norms


def test_gradual_pruning_holds_the_pattern_between_reselections_and_learns():
    torch.manual_seed(0)
    task = train_demo.Task(seed=1)
    model = train_demo.mlp(64, 128, 10)
    lin = model[2]
    p = GradualPruner((32, 32), 0.75, begin=0, end=40, every=10)
    patterns = []

    def prune(step, _model):
        p.step(lin.weight.detach())
        p.apply(lin.weight)
        patterns.append(block_norms(lin.weight.detach(), (32, 32)) > 0)

    prune(-1, model)
    before = nn.functional.cross_entropy(model(task.x_test), task.y_test).item()
    train_demo.train(model, task, 60, each_step=prune)
    after = nn.functional.cross_entropy(model(task.x_test), task.y_test).item()
    assert after < 0.7 * before
    # patterns[i]: after the pruner's step i; it re-selects at steps 0, 10, 20, 30, 40 only
    changes = [i for i in range(1, len(patterns)) if not torch.equal(patterns[i], patterns[i - 1])]
    assert changes and set(changes) <= {10, 20, 30, 40}, changes
    assert patterns[-1].float().mean().item() == 0.25


def test_prune_then_sparsify_trains_a_block_sparse_model():
    torch.manual_seed(0)
    task = train_demo.Task(seed=2)
    model = train_demo.mlp(64, 128, 10)
    train_demo.train(model, task, 100)
    acc_dense = train_demo.accuracy(model, task)
    times = train_demo._prune_then_sparsify(model, task, 100, 0.75, (32, 32))
    assert len(times) == 40
    assert isinstance(model[0], BlockSparseLinear) and isinstance(model[2], BlockSparseLinear)
    assert model[0].sparsity == model[2].sparsity == 0.75
    assert type(model[4]) is nn.Linear  # 10 outputs: not a multiple of the block
    assert acc_dense > 0.6 and train_demo.accuracy(model, task) > 0.5  # chance: 0.1


def test_compare_reports_every_variant():
    rows, label = train_demo.compare(steps=60, finetune=30, hidden=128)
    names = [r.name for r in rows]
    assert names[0] == "float" and len(rows) == 5
    assert any("QAT int8" in n for n in names) and any("QAT int4" in n for n in names)
    assert any("PTQ int4" in n for n in names) and "block-sparse" in names[-1]
    assert all(r.accuracy > 0.3 for r in rows)  # chance is 0.1
    assert all(r.infer_j > 0 and r.infer_ms > 0 for r in rows)
    assert rows[1].param_bytes < 0.3 * rows[0].param_bytes  # int8 weights
    assert rows[2].param_bytes < rows[1].param_bytes  # int4 weights
    assert "SIMULATED" in label
    text = train_demo.format_rows(rows, label)
    assert all(n in text for n in names)
