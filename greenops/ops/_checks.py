"""Argument checks for the Python side of the ops (fake impls, Triton launchers). They mirror
csrc/include/checks.h word for word, so a mistake reads the same on every backend:
wrong dtype -> TypeError, wrong shape or device -> ValueError."""

from __future__ import annotations

from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_dtype(op: str, name: str, t: torch.Tensor, ok: Sequence[torch.dtype]) -> None:
    if t.dtype not in ok:
        raise TypeError(f"greenops.{op}: {name} must be {' or '.join(map(str, ok))}, got {t.dtype}")


def check_shape(op: str, name: str, t: torch.Tensor, expected: Sequence[int], why: str) -> None:
    if tuple(t.shape) != tuple(expected):
        raise ValueError(
            f"greenops.{op}: {name} must have shape {list(expected)} ({why}), got {list(t.shape)}"
        )


def check_same_device(op: str, **tensors: torch.Tensor | None) -> None:
    named = [(n, t) for n, t in tensors.items() if t is not None]
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.device != first.device:
            raise ValueError(
                f"greenops.{op}: all tensors must be on one device; got "
                f"{first_name} on {first.device} and {name} on {t.device}"
            )


def check(cond: bool, op: str, message: str) -> None:
    if not cond:
        raise ValueError(f"greenops.{op}: {message}")
