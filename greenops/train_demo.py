"""Training demonstration: one small MLP, a synthetic task, five ways to ship it.

    float      trained in float (the checkpoint every other variant starts from)
    QAT int8   + fine-tuned with fake-quant W8A8 (qat.prepare bits=8), converted to Int8Linear
    QAT int4   + fine-tuned with fake-quant W4A16, LSQ scales (bits=4), converted to Int4Linear
    PTQ int4   the float checkpoint quantized as it is (quantize_ Int4Config)
    sparse     + fine-tuned while a gradual (cubic) schedule prunes 32x32 blocks to `sparsity`,
               then converted to BlockSparseLinear and trained on through bsr_mm's backward

The task: inputs x ~ N(0, I); labels = argmax of a fixed random two-layer teacher network, so a
student of the same shape can learn it exactly and every accuracy point lost is the format's.
Every fine-tune runs the same number of steps. Time per step is measured here; energy comes from
NVML on a GPU (read-only) and, elsewhere, from the simulated device, which counts each measured
second as busy at its uncapped power (so on CPU it ranks the variants as their times do).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import torch
from torch import nn

from . import qat
from .convert import BlockSparseConfig, Int4Config, quantize_, sparsify_
from .sparse import GradualPruner


class Task:
    """A Gaussian mixture: `clusters` random centres in R^d_in, cluster c has class
    c % classes (so classes are not linearly separable), isotropic noise of std `noise` per
    coordinate. Training batches are fresh draws (no overfitting to a finite set); the test set
    is fixed."""

    def __init__(self, d_in=64, classes=10, clusters=40, noise=2.0, n_test=4096, seed=0):
        self.d_in, self.classes, self.noise = d_in, classes, noise
        self._g = torch.Generator().manual_seed(seed)
        self.centres = torch.randn(clusters, d_in, generator=self._g)
        self.x_test, self.y_test = self.sample(n_test)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = torch.randint(0, self.centres.shape[0], (n,), generator=self._g)
        x = self.centres[k] + self.noise * torch.randn(n, self.d_in, generator=self._g)
        return x, k % self.classes


def mlp(d_in=64, hidden=1024, classes=10) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, classes),
    )


@torch.no_grad()
def accuracy(model: nn.Module, task: Task) -> float:
    model.eval()
    acc = (model(task.x_test).argmax(1) == task.y_test).float().mean().item()
    model.train()
    return acc


def train(model, task, steps, lr=2e-3, batch=256, each_step=None) -> list[float]:
    """Adam, cross-entropy on fresh batches; `each_step(step, model)` runs after every
    optimizer step (pruning). Returns the per-step seconds."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    times = []
    model.train()
    for step in range(steps):
        x, y = task.sample(batch)
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        if each_step is not None:
            each_step(step, model)
    return times


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


def _prune_then_sparsify(model, task, steps, sparsity, block):
    """Dense fine-tune with gradual pruning over the first 60% of the steps (zeroed blocks stay
    zero: the mask is applied after every step and re-selected every `every` steps), then
    BlockSparseLinear for the rest. Returns the sparse phase's step times."""
    layers = [m for m in model if isinstance(m, nn.Linear) and m.out_features % block[0] == 0]
    end = max(1, int(steps * 0.6))
    pruners = [GradualPruner(block, sparsity, 0, end, every=max(1, end // 6)) for _ in layers]

    def prune(step, _model):
        for lin, p in zip(layers, pruners, strict=True):
            p.step(lin.weight.detach())
            p.apply(lin.weight)

    prune(-1, model)  # the first mask (sparsity 0 at step 0), before any update
    train(model, task, end, each_step=prune)
    masks = {id(lin): p.mask for lin, p in zip(layers, pruners, strict=True)}
    sparsify_(
        model,
        BlockSparseConfig(block, sparsity),
        filter_fn=lambda m, name: id(m) in masks,
    )
    return train(model, task, steps - end)


@dataclasses.dataclass
class Row:
    name: str
    accuracy: float
    train_ms: float  # median fine-tune step (its final phase for the sparse variant)
    infer_ms: float  # median forward of the shipped model on one test batch (256 rows)
    infer1_ms: float  # the same for one row (the memory-bound case the int kernels target)
    train_j: float  # energy per training step
    infer_j: float  # energy per inference batch
    param_bytes: int


class _Energy:
    """Joules of a timed region: NVML where a GPU is seen (read-only), else the simulated
    device busy at its uncapped power for the measured seconds."""

    def __init__(self):
        from . import power
        from .power import nvml

        self.real = nvml.available() and torch.cuda.is_available()
        if self.real:
            self.devs = power.devices()
        else:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory()
            self.devs = [
                power.SimulatedDevice(
                    "v100-resnet50", state_path=os.path.join(self._tmp.name, "sim.json")
                )
            ]
        self.meter = power.EnergyMeter(self.devs)
        self.label = "NVML" if self.real else f"SIMULATED {self.devs[0].profile.gpu}"

    def per_call(self, fn: Callable[[], object], calls: int) -> tuple[float, float]:
        """(median seconds, joules per call) over `calls` calls."""
        fn()
        times = []
        self.meter.begin("w")
        for _ in range(calls):
            t0 = time.perf_counter()
            fn()
            if self.real:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        if not self.real:
            d = self.devs[0]
            d.run_step(sum(times) / d.step_time_s())
        m = self.meter.end("w")
        return _median(times), m.energy_j / calls


def _bytes(model: nn.Module) -> int:
    from .nn import summary

    return sum(r.bytes_now for r in summary(model))


def compare(
    steps: int = 600,
    finetune: int = 300,
    sparsity: float = 0.75,
    block: tuple[int, int] = (32, 32),
    group_size: int = 32,
    seed: int = 0,
    task: Task | None = None,
    hidden: int = 1024,
) -> tuple[list[Row], str]:
    """Trains a float checkpoint `steps` steps, then every variant `finetune` more steps from
    it (float too, so every row had the same training); PTQ quantizes the float row's model.
    Returns the rows and the energy source's label."""
    torch.manual_seed(seed)
    task = task or Task(seed=seed)
    d_in, classes = task.d_in, task.classes
    base = mlp(d_in, hidden, classes)
    train(base, task, steps)
    energy = _Energy()
    batch = task.sample(256)

    def step_fn(model):
        opt = torch.optim.SGD(model.parameters(), lr=0.0)  # a step without moving the weights

        def step():
            loss = nn.functional.cross_entropy(model(batch[0]), batch[1])
            opt.zero_grad()
            loss.backward()
            opt.step()

        return step

    def clone():
        m = mlp(d_in, hidden, classes)
        m.load_state_dict(base.state_dict())
        return m

    rows = []

    def add(name, shipped, train_stats):
        with torch.no_grad():
            shipped.eval()
            infer_s, infer_j = energy.per_call(lambda: shipped(task.x_test[:256]), 20)
            infer1_s, _ = energy.per_call(lambda: shipped(task.x_test[:1]), 50)
        train_s, train_j = train_stats
        rows.append(
            Row(
                name,
                accuracy(shipped, task),
                train_s * 1e3,
                infer_s * 1e3,
                infer1_s * 1e3,
                train_j,
                infer_j,
                _bytes(shipped),
            )
        )

    fp = clone()
    train(fp, task, finetune, lr=5e-4)
    add("float", fp, energy.per_call(step_fn(fp), 20))
    for bits in (8, 4):
        m = clone()
        qat.prepare(m, bits=bits, group_size=group_size, learn_scales=bits == 4)
        train(m, task, finetune, lr=5e-4)
        stats = energy.per_call(step_fn(m), 20)  # the fake-quant training step
        qat.convert(m)
        add(f"QAT int{bits} " + (f"g{group_size} LSQ" if bits == 4 else "W8A8"), m, stats)
    ptq = mlp(d_in, hidden, classes)
    ptq.load_state_dict(fp.state_dict())  # the float row's final weights, quantized as they are
    quantize_(ptq, Int4Config(group_size))
    add(f"PTQ int4 g{group_size}", ptq, (float("nan"), float("nan")))
    sp = clone()
    _prune_then_sparsify(sp, task, finetune, sparsity, block)
    add(f"{sparsity:.0%} block-sparse {block[0]}x{block[1]}", sp, energy.per_call(step_fn(sp), 20))
    return rows, energy.label


def format_rows(rows: list[Row], label: str) -> str:
    base = rows[0]
    out = [
        f"{'variant':<28} {'test acc':>8} {'train step':>11} {'J/step':>8} {'infer':>9} "
        f"{'J/batch':>8} {'infer M=1':>10} {'weights':>8}"
    ]
    for r in rows:
        train = "    -      " if r.train_ms != r.train_ms else f"{r.train_ms:8.2f} ms"
        tj = "     -  " if r.train_j != r.train_j else f"{r.train_j:8.3f}"
        out.append(
            f"{r.name:<28} {r.accuracy:8.1%} {train:>11} {tj} {r.infer_ms:6.2f} ms "
            f"{r.infer_j:8.4f} {r.infer1_ms:7.3f} ms {r.param_bytes / base.param_bytes:8.1%}"
        )
    out.append(f"(infer: a 256-row batch; energy: {label}; weights: parameter bytes vs float)")
    return "\n".join(out)
