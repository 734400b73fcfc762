"""Calibration capture: run user batches through a model and collect, per nn.Linear input, the
statistics the methods need — the Hessian proxy H = sum x x^T (fp64), the per-channel mean and
max |x|, and a bounded sample of input rows — one *stage* at a time.

A stage is a set of Linears that read the same input tensor (q, k and v of an attention block),
found by one discovery forward with hooks. Stages are calibrated in execution order, each on a
fresh pass over the batches through the model as it is by then, so every layer sees the outputs
of the layers compressed before it (GPTQ's sequential mode). A pass stops as soon as the stage's
last Linear has run (the rest of the forward is not needed), and holds one stage's statistics:
memory is bounded by one K x K Hessian and the row sample.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterable

import torch
from torch import nn


class CalibrationError(RuntimeError):
    """Calibration cannot go on: bad batches, non-finite activations, a model the method cannot
    take. The model is left as it was before the call."""


@dataclasses.dataclass
class Stage:
    """Linears that read one input tensor. `producer`: the module whose output that tensor is
    (a candidate to fold input scales into), or None; `once`: every member runs once per
    forward, so a pass may stop after the last of them."""

    names: list[str]
    in_features: int
    producer: str | None = None
    once: bool = True


@dataclasses.dataclass
class Stats:
    """Statistics of one stage's input rows x [n, K]."""

    H: torch.Tensor  # [K, K] fp64: sum over rows of x x^T
    abs_sum: torch.Tensor  # [K] fp64: sum |x_j|
    abs_max: torch.Tensor  # [K] fp32: max |x_j|
    sample: torch.Tensor  # [<= sample_rows, K] fp32: input rows, spread over all batches
    rows: int = 0
    B: torch.Tensor | None = None  # [K, K] fp64: sum of x_float x^T (with a float reference)

    @property
    def abs_mean(self) -> torch.Tensor:
        return (self.abs_sum / max(self.rows, 1)).float()


class _Stop(Exception):
    """Raised by a hook to end a capture pass early (the rest of the forward is not needed)."""


def batches_of(calibration) -> list:
    """The calibration batches as a list (a DataLoader or any iterable is read once): tensors,
    tuples of positional arguments, or dicts of keyword arguments."""
    if calibration is None:
        raise CalibrationError("calibration data is required for this method (calibration=...)")
    if isinstance(calibration, (torch.Tensor, dict)):
        raise CalibrationError(
            "calibration must be a list (or DataLoader) of batches, not a single "
            f"{type(calibration).__name__}: wrap it as [batch]"
        )
    out = list(calibration) if isinstance(calibration, Iterable) else None
    if out is None:
        raise CalibrationError(
            f"calibration must be an iterable of batches, got {type(calibration).__name__}"
        )
    if not out:
        raise CalibrationError("the calibration set is empty: give at least one batch")
    return out


def _to(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(v, device) for v in obj)
    return obj


def model_device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    if p is None:
        p = next(iter(model.buffers()), None)
    return p.device if p is not None else torch.device("cpu")


def run_batch(model: nn.Module, batch, index: int):
    """model(batch) for one calibration batch, on the model's device; a batch the model cannot
    take is a CalibrationError naming it."""
    batch = _to(batch, model_device(model))
    try:
        if isinstance(batch, dict):
            return model(**batch)
        if isinstance(batch, (list, tuple)):
            return model(*batch)
        return model(batch)
    except (_Stop, CalibrationError):
        raise
    except Exception as e:
        raise CalibrationError(
            f"calibration batch {index} does not fit the model ({type(e).__name__}: {e})"
        ) from e


def _producers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules whose output an input scale can be folded into: LayerNorm-like modules (a 1-D
    weight over the last dim: LayerNorm, RMSNorm) and Linears."""
    out = []
    for name, m in model.named_modules():
        w = getattr(m, "weight", None)
        if isinstance(m, nn.Linear) or (
            isinstance(w, torch.Tensor) and w.dim() == 1 and not list(m.children())
        ):
            out.append((name, m))
    return out


def discover(model: nn.Module, batch, targets: dict[str, nn.Linear]) -> list[Stage]:
    """One forward of `batch` with hooks: the targets in execution order, grouped into stages
    by identical input tensors, each with the module that produced its input (if any)."""
    calls: list[tuple[str, torch.Tensor]] = []
    outputs: list[tuple[torch.Tensor, str]] = []  # strong refs: no address reuse in the forward
    hooks = []
    for name, m in targets.items():
        hooks.append(m.register_forward_pre_hook(lambda _m, a, n=name: calls.append((n, a[0]))))
    for name, m in _producers(model):
        hooks.append(m.register_forward_hook(lambda _m, _a, out, n=name: outputs.append((out, n))))
    try:
        with torch.no_grad():
            run_batch(model, batch, 0)
    finally:
        for h in hooks:
            h.remove()
    stages: list[Stage] = []
    inputs: list[torch.Tensor] = []
    counts: dict[str, int] = {}
    for name, x in calls:
        counts[name] = counts.get(name, 0) + 1
        if counts[name] > 1:
            continue  # a module called again (shared or looped): its stage cannot stop early
        if stages and inputs[-1] is x:
            stages[-1].names.append(name)
            continue
        producer = next((n for out, n in outputs if out is x and n not in targets), None)
        producer = producer or next((n for out, n in outputs if out is x), None)
        stages.append(Stage([name], x.shape[-1], producer))
        inputs.append(x)
    for st in stages:
        st.once = all(counts[n] == 1 for n in st.names)
    missing = [n for n in targets if n not in counts]
    if missing:
        stages.append(Stage(missing, 0, None, once=False))  # never ran: reported as skipped
    return stages


def _inputs(model, batch, index, stage: Stage, modules) -> list[torch.Tensor]:
    """The stage's input rows [n, K] (fp32) on one batch: every call of its first member, the
    pass stopped once the stage has run (where its members run once per forward)."""
    K, first, last = stage.in_features, stage.names[0], stage.names[-1]
    got, seen = [], set()

    def hook(name, x):
        if name == first:
            xf = x.detach().reshape(-1, K).float()
            if not torch.isfinite(xf).all():
                raise CalibrationError(
                    f"{first}: its input holds NaN or Inf on calibration batch {index}; "
                    "calibration needs finite activations"
                )
            got.append(xf)
        seen.add(name)
        if stage.once and name == last and len(seen) == len(stage.names):
            raise _Stop

    hooks = [
        modules[n].register_forward_pre_hook(lambda _m, a, n=n: hook(n, a[0])) for n in stage.names
    ]
    try:
        with torch.no_grad():
            run_batch(model, batch, index)
    except _Stop:
        pass
    finally:
        for h in hooks:
            h.remove()
    return got


def capture(
    model: nn.Module,
    batches: list,
    stage: Stage,
    modules: dict[str, nn.Module],
    sample_rows: int = 2048,
    reference: tuple[nn.Module, dict[str, nn.Module]] | None = None,
) -> Stats:
    """One pass over the batches collecting the stage's input statistics (the stage's first
    member sees the input; its siblings read the same tensor). reference = (the float model,
    its modules by name): the same stage's inputs there too, for the cross term B."""
    K = stage.in_features
    dev = model_device(model)
    stats = Stats(
        torch.zeros(K, K, dtype=torch.float64, device=dev),
        torch.zeros(K, dtype=torch.float64, device=dev),
        torch.zeros(K, device=dev),
        torch.empty(0, K, device=dev),
    )
    if reference is not None:
        stats.B = torch.zeros(K, K, dtype=torch.float64, device=dev)
    samples = []
    gen = torch.Generator().manual_seed(0)
    take = max(1, sample_rows // len(batches))
    for index, batch in enumerate(batches):
        xs = _inputs(model, batch, index, stage, modules)
        refs = _inputs(*reference[:1], batch, index, stage, reference[1]) if reference else None
        if refs is not None and [r.shape for r in refs] != [x.shape for x in xs]:
            raise CalibrationError(
                f"{stage.names[0]}: the float model's inputs differ in shape from the "
                "compressed model's on the same batch"
            )
        for k, xf in enumerate(xs):
            stats.H.add_(xf.T @ xf)  # fp32 products of one batch, summed in fp64
            if refs is not None:
                stats.B.add_(refs[k].T @ xf)
            stats.abs_sum.add_(xf.abs().sum(0))
            stats.abs_max.copy_(torch.maximum(stats.abs_max, xf.abs().amax(0)))
            stats.rows += xf.shape[0]
            pick = torch.randperm(xf.shape[0], generator=gen)[:take].to(xf.device)
            samples.append(xf[pick].clone())
    if stats.rows == 0:
        raise CalibrationError(f"{stage.names[0]}: never ran on the calibration batches")
    stats.sample = torch.cat(samples)[:sample_rows]
    return stats


class Progress:
    """A one-line progress bar on a terminal (stderr), one line per step elsewhere; silent with
    enabled=False."""

    def __init__(self, total: int, what: str, enabled: bool = True):
        self.total, self.what, self.enabled = total, what, enabled
        self.done, self.t0 = 0, time.perf_counter()
        self.tty = enabled and sys.stderr.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        frac = self.done / max(self.total, 1)
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        line = (
            f"{self.what} [{bar}] {self.done}/{self.total} "
            f"{time.perf_counter() - self.t0:6.1f}s {label}"
        )
        if self.tty:
            sys.stderr.write("\r" + line[:160].ljust(160))
            if self.done == self.total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
