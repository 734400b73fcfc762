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


def _check_choice(cls: str, field: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(
            f"{cls}: {field} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )


@dataclasses.dataclass(frozen=True)
class Int8Config:
    """int8 weights per output channel; W8A8 (activations per token, dynamic) unless
    weight_only. Calibrated (greenops.quantize_(..., calibration=batches)): method="gptq", and
    smoothquant=alpha (or "search") to migrate activation outliers into the weights first
    (W8A8 only). damp, act_order: GPTQ's (docs/calibration.md)."""

    weight_only: bool = False
    method: str = "rtn"  # "rtn" (round to nearest) | "gptq"
    smoothquant: float | str | None = None
    damp: float = 0.01
    act_order: bool = False

    def __post_init__(self):
        _check_choice("Int8Config", "method", self.method, ("rtn", "gptq"))
        sq = self.smoothquant
        if (
            sq is not None
            and sq != "search"
            and not (isinstance(sq, (int, float)) and 0 <= sq <= 1)
        ):
            raise ValueError(f"Int8Config: smoothquant must be in [0, 1] or 'search', got {sq!r}")
        if sq is not None and self.weight_only:
            raise ValueError("Int8Config: smoothquant is for W8A8 (weight_only=False)")

    @property
    def calibrated(self) -> bool:
        return self.method != "rtn" or self.smoothquant is not None


@dataclasses.dataclass(frozen=True)
class Int4Config:
    """int4 group-wise weights (W4A16). group_size 32, 64, 128, 256, or -1 / None for one group
    per row. Calibrated: method="gptq" (act_order, static_groups, damp) or "awq"."""

    group_size: int | None = 128
    symmetric: bool = False
    method: str = "rtn"  # "rtn" | "gptq" | "awq"
    act_order: bool = False
    static_groups: bool = False
    damp: float = 0.01

    def __post_init__(self):
        g = self.group_size
        if g not in (None, -1) and not (isinstance(g, int) and g > 0):
            raise ValueError(
                f"Int4Config: group_size must be 32, 64, 128, 256 or -1 (per channel), got {g!r}"
            )
        _check_choice("Int4Config", "method", self.method, ("rtn", "gptq", "awq"))

    @property
    def calibrated(self) -> bool:
        return self.method != "rtn"


@dataclasses.dataclass(frozen=True)
class BlockSparseConfig:
    """Block pruning to `sparsity` (the fraction of blocks removed). method="magnitude" (block
    L2 norm, no data) or, calibrated, "wanda" (|W| times input norms) or "sparsegpt" (OBS
    saliency, then the kept weights re-fitted to the calibration outputs); int8 blocks are then
    quantized per output channel (by GPTQ when calibrated)."""

    block: tuple[int, int] = (32, 32)
    sparsity: float = 0.75
    int8: bool = False  # int8 blocks with per-output-channel scales (inference)
    int8_act: bool = False  # with int8: x quantized per row too (W8A8)
    method: str = "magnitude"  # "magnitude" | "wanda" | "sparsegpt"
    damp: float = 0.01

    def __post_init__(self):
        _check_choice(
            "BlockSparseConfig", "method", self.method, ("magnitude", "wanda", "sparsegpt")
        )
        if not 0.0 <= self.sparsity <= 1.0:
            raise ValueError(f"BlockSparseConfig: sparsity must lie in [0, 1], got {self.sparsity}")

    @property
    def calibrated(self) -> bool:
        return self.method != "magnitude"


@dataclasses.dataclass
class Report:
    """What a conversion did: converted layer names, skipped ones with the reason, and for
    calibrated methods per-layer metrics (method, relative output error on the calibration
    inputs before/after, seconds)."""

    converted: list[str] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    metrics: dict[str, dict] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"converted {len(self.converted)}: {', '.join(self.converted) or '-'}"]
        lines += [f"skipped {name}: {why}" for name, why in self.skipped]
        if self.metrics:
            keys = sorted({k for m in self.metrics.values() for k in m})
            lines.append("layer | " + " | ".join(keys))
            for name, m in self.metrics.items():
                cells = [
                    f"{m[k]:.4g}" if isinstance(m.get(k), float) else str(m.get(k, ""))
                    for k in keys
                ]
                lines.append(f"{name} | " + " | ".join(cells))
        return "\n".join(lines)


def why_not(config, linear: nn.Linear) -> str | None:
    """Why `config` cannot take this layer's shape (None: it can)."""
    K, N = linear.in_features, linear.out_features
    if isinstance(config, Int4Config):
        g = per_channel(config.group_size, K)
        if K % 2:
            return f"in_features={K} is odd (int4 packs two values per byte)"
        if K % g:
            return f"in_features={K} is not a multiple of group_size={g}"
        if g not in (32, 64, 128, 256, K):
            return f"group_size={g} is not 32, 64, 128, 256 or in_features={K}"
    if isinstance(config, BlockSparseConfig):
        bn, bk = config.block
        if N % bn or K % bk:
            return f"({N}, {K}) is not a multiple of the block ({bn}, {bk})"
    return None


def targets(model: nn.Module, config, filter_fn, report: Report) -> dict[str, nn.Linear]:
    """The plain nn.Linear modules of `model` that `config` converts (by name, in module
    order); the others go to report.skipped with the reason."""
    if type(model) is nn.Linear:
        raise TypeError(
            "greenops: quantize_/sparsify_ replace the nn.Linear modules inside a model in place; "
            "a bare nn.Linear cannot replace itself (use Int8Linear / Int4Linear / "
            "BlockSparseLinear.from_linear(linear, ...), or wrap it in nn.Sequential)"
        )
    out = {}
    for name, m in model.named_modules():
        if type(m) is not nn.Linear or not name:
            continue
        if filter_fn is not None and not filter_fn(m, name):
            report.skipped.append((name, "filter_fn"))
            continue
        why = why_not(config, m)
        if why:
            report.skipped.append((name, why))
            continue
        out[name] = m
    return out


def replace(model: nn.Module, name: str, module: nn.Module) -> nn.Module:
    """Sets the submodule `name` of model to `module`; returns the one it replaced."""
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    setattr(parent, attr, module)
    return old


def _convert(model, config, filter_fn, build) -> Report:
    report = Report()
    for name, linear in targets(model, config, filter_fn, report).items():
        replace(model, name, build(linear))
        report.converted.append(name)
    return report


def _no_calibration(config) -> None:
    if config.calibrated:
        raise ValueError(
            f"{type(config).__name__}(method={config.method!r}"
            + (
                f", smoothquant={config.smoothquant!r}"
                if getattr(config, "smoothquant", None)
                else ""
            )
            + ") needs calibration data: greenops.quantize_/sparsify_(model, config, "
            "calibration=batches)"
        )


def quantize_(model: nn.Module, config, filter_fn: Callable | None = None) -> Report:
    """Replaces nn.Linear modules in place by Int8Linear (Int8Config) or Int4Linear
    (Int4Config), rounding to nearest. filter_fn(module, name) -> bool picks layers; layers
    whose shapes the config cannot take are skipped and reported. (greenops.quantize_ takes
    calibration data too: greenops/calibrate.)"""
    from .nn import Int4Linear, Int8Linear

    if isinstance(config, (Int8Config, Int4Config)):
        _no_calibration(config)
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
    """Replaces nn.Linear modules in place by BlockSparseLinear, pruned by block magnitude.
    (greenops.sparsify_ takes calibration data too: greenops/calibrate.)"""
    from .nn import BlockSparseLinear

    if not isinstance(config, BlockSparseConfig):
        raise TypeError(f"sparsify_ takes BlockSparseConfig, got {type(config).__name__}")
    _no_calibration(config)
    return _convert(
        model,
        config,
        filter_fn,
        lambda m: BlockSparseLinear.from_linear(
            m, config.block, config.sparsity, int8=config.int8, int8_act=config.int8_act
        ),
    )
