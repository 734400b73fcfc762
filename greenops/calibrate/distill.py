"""Distillation after compression: a short fine-tune of the compressed model (the student)
towards the original (the teacher) on calibration batches — the student's output matched to
the teacher's, or every layer's hidden states to the teacher's layer by layer —
through greenops' backward (block-sparse values train at
their kept blocks only, so the pattern stays fixed; int8/int4 weights are buffers and do not
train; biases, LayerNorms and embeddings do).
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from .capture import CalibrationError, Progress, batches_of, run_batch


def hidden_states(out) -> list[torch.Tensor]:
    """Every layer's hidden states of a Hugging Face model run with output_hidden_states=True
    (the embeddings' output first), else [model_output(out)]."""
    hs = getattr(out, "hidden_states", None)
    if isinstance(hs, (tuple, list)) and hs:
        return [h for h in hs[1:] if isinstance(h, torch.Tensor)]
    return [model_output(out)]


def model_output(out) -> torch.Tensor:
    """The tensor a model's output is compared by: last_hidden_state, else logits, else the
    first tensor of a tuple, else the output itself."""
    for name in ("last_hidden_state", "logits"):
        t = getattr(out, name, None)
        if isinstance(t, torch.Tensor):
            return t
    if isinstance(out, (tuple, list)):
        return next(t for t in out if isinstance(t, torch.Tensor))
    if isinstance(out, torch.Tensor):
        return out
    raise CalibrationError(f"cannot find an output tensor in {type(out).__name__}")


def mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean (s - t)^2 / mean t^2."""
    return (out - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-30)


def cosine(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - the cosine of each position's output vector with the teacher's, averaged."""
    o, t = out.reshape(-1, out.shape[-1]), target.reshape(-1, target.shape[-1])
    return 1 - torch.nn.functional.cosine_similarity(o, t, dim=-1).mean()


LOSSES = {"mse": mse, "cosine": cosine}


def distill(
    student: nn.Module,
    teacher: nn.Module,
    calibration,
    *,
    steps: int | None = None,
    lr: float = 1e-4,
    max_seconds: float | None = 600.0,
    loss: str = "mse",
    layers: bool = True,
    progress: bool = True,
) -> dict:
    """Trains `student` in place to reproduce `teacher`'s outputs on the batches (Adam, lr; one
    step per batch, cycling; `steps` defaults to one pass; stops early at max_seconds). Both
    run in eval mode (no dropout). loss: "mse" (mean square error relative to the teacher's
    mean square) or "cosine" (1 - per-position cosine), or a callable (student, teacher) ->
    scalar tensor, of the outputs (model_output) or, with layers=True and dict batches of a
    Hugging Face model, of every layer's hidden states (output_hidden_states=True; the loss
    averaged over layers: each layer is guided, not only the last). Returns
    {"steps", "seconds", "loss_first", "loss_last"} (the loss on the step's batch). A
    non-finite loss stops it and restores the student's parameters (CalibrationError)."""
    batches = batches_of(calibration)
    loss_fn = LOSSES[loss] if isinstance(loss, str) else loss
    params = [p for p in student.parameters() if p.requires_grad]
    if not params:
        raise CalibrationError("the student has no trainable parameters")
    saved = [p.detach().clone() for p in params]
    steps = len(batches) if steps is None else steps
    opt = torch.optim.Adam(params, lr=lr)
    modes = (student.training, teacher.training)
    student.eval()
    teacher.eval()
    bar = Progress(steps, "distill", progress)
    t0 = time.perf_counter()
    losses = []
    try:
        for step in range(steps):
            batch = batches[step % len(batches)]
            if layers and isinstance(batch, dict):
                batch = {**batch, "output_hidden_states": True}
            with torch.no_grad():
                target = hidden_states(run_batch(teacher, batch, step % len(batches)))
            out = hidden_states(run_batch(student, batch, step % len(batches)))
            loss = sum(loss_fn(o.float(), t.float()) for o, t in zip(out, target, strict=True))
            loss = loss / len(out)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise CalibrationError(f"distillation loss is {value} at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(value)
            bar.step(f"loss {losses[-1]:.4g}")
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                break
    except BaseException:
        with torch.no_grad():
            for p, v in zip(params, saved, strict=True):
                p.copy_(v)
        raise
    finally:
        student.train(modes[0])
        teacher.train(modes[1])
    return {
        "steps": len(losses),
        "seconds": time.perf_counter() - t0,
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }
