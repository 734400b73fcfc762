"""`greenops bench`: every op family against its baselines, timed side by side in one run,
with the machine's ceilings measured in the same run. See docs/benchmarks.md."""

from __future__ import annotations

from . import bsr, int4, int8
from .core import (
    CEILING_DRIFT,
    NOISE_SPREAD,
    SCHEMA,
    Case,
    Shape,
    ceilings,
    drift,
    dump_json,
    environment,
    markdown,
    measure,
    plot,
)

FAMILIES = {"int8": int8.cases, "int4": int4.cases, "bsr": bsr.cases}

_LLM = [(4096, 4096), (11008, 4096)]  # Llama-7B q/o and up/gate projections
SHAPE_SETS = {
    "tiny": [Shape(M, 96, 160) for M in (1, 8)],
    "small": [Shape(M, N, K) for N, K in [(1024, 1024)] for M in (1, 16, 64, 256)],
    "llm": [Shape(M, N, K) for N, K in _LLM for M in (1, 16, 256, 2048)],
}
# Families whose issue names other shapes (int4: Llama-3-8B-like q/o, up/gate and down;
# bsr: a weight, a block size and a sparsity per set).
FAMILY_SHAPES = {
    "int4": {
        "tiny": [Shape(M, 96, 256) for M in (1, 8)],  # K a multiple of the group (128)
        "llm": [
            Shape(M, N, K)
            for N, K in [(4096, 4096), (14336, 4096), (4096, 14336)]
            for M in (1, 4, 16, 64, 256)
        ],
    },
    "bsr": {
        "tiny": [bsr.SparseShape(M, 64, 64, 32, 0.5) for M in (1, 8)],
        "small": [
            bsr.SparseShape(M, 1024, 1024, b, s)
            for M in (1, 64)
            for b in (32, 64)
            for s in (0.5, 0.9)
        ],
        "llm": [
            bsr.SparseShape(M, 4096, 4096, b, s)
            for M in (1, 256, 2048)
            for b in (32, 64)
            for s in (0.5, 0.75, 0.9)
        ],
    },
}


# Shapes timed on a GPU only: the int8 issue's GPU target is at 8192^3 (on a CPU, one fp32
# baseline call there takes seconds).
GPU_SHAPES = {"int8": {"llm": [Shape(8192, 8192, 8192)]}}


def shapes_for(family: str, shape_set: str, device: str = "cpu") -> list[Shape]:
    shapes = FAMILY_SHAPES.get(family, {}).get(shape_set, SHAPE_SETS[shape_set])
    if device == "cuda":
        shapes = shapes + GPU_SHAPES.get(family, {}).get(shape_set, [])
    return shapes


def run(
    ops: list[str],
    shapes: str,
    device: str,
    quick: bool = False,
    energy: bool = True,
    budget_s: float | None = None,
    progress: bool = True,
) -> dict:
    """Runs the benchmark and returns the results dict (schema SCHEMA)."""
    unknown = [o for o in ops if o not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown op family {unknown}; known: {', '.join(FAMILIES)}")
    if shapes not in SHAPE_SETS:
        raise ValueError(f"unknown shape set {shapes!r}; known: {', '.join(SHAPE_SETS)}")
    budget = budget_s if budget_s is not None else (0.3 if quick else 5.0)
    ceil = ceilings(device, quick=quick)
    case_sets = [FAMILIES[o](s, device) for o in ops for s in shapes_for(o, shapes, device)]
    rows = measure(
        case_sets,
        device,
        budget,
        ceil,
        energy=energy,
        progress=progress,
        energy_s=0.2 if quick else 1.0,
    )
    moved = drift(ceil, ceilings(device, quick=quick))  # the same ceilings, after the rows
    noise = {
        "ceiling_drift": moved,
        "disturbed": any(abs(v) > CEILING_DRIFT for v in moved.values()),
        "noisy_sets": len({(r["family"], r["shape"]) for r in rows if r["noisy"]}),
        "spread_bound": NOISE_SPREAD,
        "drift_bound": CEILING_DRIFT,
    }
    return {
        "schema": SCHEMA,
        "environment": environment(device),
        "ceilings": ceil,
        "noise": noise,
        "rows": rows,
    }


__all__ = [
    "FAMILIES",
    "SCHEMA",
    "SHAPE_SETS",
    "shapes_for",
    "Case",
    "Shape",
    "dump_json",
    "markdown",
    "plot",
    "run",
]
