"""Model conversion in place: `quantize_(model, config)` and `sparsify_(model, config)` replace
the nn.Linear modules a config can take and report what was converted and what was skipped.

    report = greenops.quantize_(model, greenops.Int4Config(group_size=128))
    print(report)        # converted: [...], skipped: [(name, why), ...]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from torch import nn

from .ops.int4 import per_channel


@dataclasses.dataclass(frozen=True)
class Int8Config:
    weight_only: bool = False


@dataclasses.dataclass(frozen=True)
class Int4Config:
    group_size: int = 128
    symmetric: bool = False


@dataclasses.dataclass(frozen=True)
class BlockSparseConfig:
    block: tuple[int, int] = (32, 32)
    sparsity: float = 0.75
    int8: bool = False  # int8 blocks with per-output-channel scales (inference)
    int8_act: bool = False  # with int8: x quantized per row too (W8A8)


@dataclasses.dataclass
class Report:
    converted: list[str] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"converted {len(self.converted)}: {', '.join(self.converted) or '-'}"]
        lines += [f"skipped {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


def _why_not(config, linear: nn.Linear) -> str | None:
    K, N = linear.in_features, linear.out_features
    if isinstance(config, Int4Config):
        g = per_channel(config.group_size, K)
        if K % 2 or K % g:
            return f"in_features={K} is not even and a multiple of group_size={g}"
    if isinstance(config, BlockSparseConfig):
        bn, bk = config.block
        if N % bn or K % bk:
            return f"({N}, {K}) is not a multiple of the block ({bn}, {bk})"
    return None


def _convert(model, config, filter_fn, build) -> Report:
    report = Report()
    targets = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and type(m) is nn.Linear and name
    ]
    for name, linear in targets:
        if filter_fn is not None and not filter_fn(linear, name):
            report.skipped.append((name, "filter_fn"))
            continue
        why = _why_not(config, linear)
        if why:
            report.skipped.append((name, why))
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, build(linear))
        report.converted.append(name)
    return report


def quantize_(model: nn.Module, config, filter_fn: Callable | None = None) -> Report:
    """Replaces nn.Linear modules in place by Int8Linear (Int8Config) or Int4Linear
    (Int4Config). filter_fn(module, name) -> bool picks layers; layers whose shapes the config
    cannot take are skipped and reported."""
    from .nn import Int4Linear, Int8Linear

    if isinstance(config, Int8Config):
        return _convert(
            model, config, filter_fn, lambda m: Int8Linear.from_linear(m, config.weight_only)
        )
    if isinstance(config, Int4Config):
        return _convert(
            model,
            config,
            filter_fn,
            lambda m: Int4Linear.from_linear(m, config.group_size, config.symmetric),
        )
    raise TypeError(f"quantize_ takes Int8Config or Int4Config, got {type(config).__name__}")


def sparsify_(
    model: nn.Module, config: BlockSparseConfig, filter_fn: Callable | None = None
) -> Report:
    """Replaces nn.Linear modules in place by BlockSparseLinear, pruned by block magnitude."""
    from .nn import BlockSparseLinear

    if not isinstance(config, BlockSparseConfig):
        raise TypeError(f"sparsify_ takes BlockSparseConfig, got {type(config).__name__}")
    return _convert(
        model,
        config,
        filter_fn,
        lambda m: BlockSparseLinear.from_linear(
            m, config.block, config.sparsity, int8=config.int8, int8_act=config.int8_act
        ),
    )
