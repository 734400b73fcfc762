"""What this installation of greenops is: versions, what was built, which backend serves what."""

from __future__ import annotations

import importlib.metadata
import platform

import torch

from . import _ext
from .ops import OPS, _backend
from .version import __version__


def _triton_version() -> str | None:
    try:
        return importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return None


def _serving(op: str, device: str) -> str:
    try:
        return _backend.resolve(op, torch.device(device), "auto")
    except _backend.BackendError:
        return "unavailable"


def info() -> dict:
    """A plain dict (JSON-ready) describing this installation; `greenops info` prints it."""
    ext = {"loaded": _ext.available(), "error": _ext.error()}
    if ext["loaded"]:
        c = _ext.load()
        ext.update(
            cpu_isa=c.cpu_isa(),
            cpu_isa_detected=c.cpu_isa_detected(),
            cuda_built=bool(c.with_cuda),
            cuda_archs=c.cuda_archs or None,
            cuda_kernels=list(getattr(c, "cuda_kernels", ())),
            built_against_torch=c.torch_version,
            # which int8_mm kernel backend="cuda" runs on this GPU: "wgmma" (Hopper, sm_90a
            # build) or "mma" (mma.sync)
            cuda_int8_mm_kernel=(
                c.int8_mm_cuda_kernel()
                if c.with_cuda and hasattr(c, "int8_mm_cuda_kernel") and torch.cuda.is_available()
                else None
            ),
        )
    return {
        "greenops": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": _triton_version(),
        "triton_interpreter": _backend.triton_interpreting(),
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "extension": ext,
        "backends": {op: {"cpu": _serving(op, "cpu"), "cuda": _serving(op, "cuda")} for op in OPS},
    }


def format_info(d: dict) -> str:
    ext = d["extension"]
    lines = [
        f"greenops {d['greenops']}  (python {d['python']}, {d['machine']})",
        f"torch    {d['torch']}"
        + (f"  (CUDA {d['torch_cuda']})" if d["torch_cuda"] else "  (CPU build)"),
        f"triton   {d['triton'] or 'not installed'}"
        + ("  (interpreter: TRITON_INTERPRET=1)" if d["triton_interpreter"] else ""),
        f"GPU      {d['gpu'] or 'none visible'}",
    ]
    if ext["loaded"]:
        lines += [
            f"CPU ISA  {ext['cpu_isa']} (detected: {ext['cpu_isa_detected']})",
            "CUDA     "
            + (
                f"C++ kernels {', '.join(ext['cuda_kernels']) or 'none'} built for "
                f"{ext['cuda_archs']} (backend='cuda'; 'auto' stays Triton until measured)"
                + (
                    f"; int8_mm on {ext['cuda_int8_mm_kernel']} here"
                    if ext.get("cuda_int8_mm_kernel")
                    else ""
                )
                if ext["cuda_built"]
                else "no CUDA C++ kernels built (CUDA ops run on Triton)"
            ),
        ]
    else:
        lines.append(f"extension NOT LOADED: {ext['error']}")
    lines.append("backends (auto)    cpu        cuda")
    for op, b in d["backends"].items():
        lines.append(f"  {op:<16} {b['cpu']:<10} {b['cuda']}")
    return "\n".join(lines)
