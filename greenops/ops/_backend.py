"""Which implementation serves an op call: explicit, documented, default "auto".

Backends:
  "cpp"    C++ CPU kernels (csrc/cpu), for CPU tensors
  "triton" Triton kernels (kernels/), for CUDA tensors; for CPU tensors only under the Triton
           interpreter (TRITON_INTERPRET=1 set before triton is imported), which is how CI
           tests every Triton kernel on a machine without a GPU
  "cuda"   CUDA C++ kernels (csrc/cuda), for CUDA tensors, where built for the op
  "auto"   CPU tensors -> "cpp"; CUDA tensors -> the op's entry in CUDA_AUTO: "triton", or,
           where this build has the op's CUDA C++ kernel too, "measured": per call, the
           backend greenops/ops/cuda_auto.json (made by the GPU benchmark) picks for its M

Choose per call (`backend=` on every op function) or for a block of code
(`with greenops.use_backend("triton"): ...`); the argument wins over the context.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterator

import torch

BACKENDS = ("auto", "cpp", "triton", "cuda")

# op -> the backend "auto" picks on CUDA tensors ("measured": by M, from cuda_auto.json)
CUDA_AUTO: dict[str, str] = {}
# op -> backends implemented for CUDA tensors
CUDA_IMPLS: dict[str, tuple[str, ...]] = {}
# op -> its CUDA C++ impl (the "cuda" backend), where this build has one (register_cuda_impl)
CUDA_CPP: dict[str, Callable] = {}


class BackendError(RuntimeError):
    """The requested backend cannot serve this op on this device."""


_local = threading.local()


def current_backend() -> str:
    return getattr(_local, "backend", "auto")


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Runs the block with every greenops op on backend `name` (see module doc)."""
    _validate(name)
    previous = current_backend()
    _local.backend = name
    try:
        yield
    finally:
        _local.backend = previous


def _validate(name: str) -> None:
    if name not in BACKENDS:
        raise ValueError(
            f"greenops: unknown backend {name!r}; expected one of {', '.join(BACKENDS)}"
        )


def triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# GREENOPS_TRITON_AUTOTUNE=0 starts with it off (gpu_check.sh --quick).
_autotune = os.environ.get("GREENOPS_TRITON_AUTOTUNE", "1") != "0"


def set_triton_autotune(enabled: bool) -> None:
    """Autotuning picks the best Triton config per (M bucket, N, K, ...) on GPU (the default;
    each new shape is timed over a dozen candidates or fewer on first use). Off, each kernel
    uses one fixed config per size class (kernels/*.py `fixed_config`): the GPU test suite
    turns it off so that dozens of shapes compile a handful of kernels, not hundreds."""
    global _autotune
    _autotune = bool(enabled)


def triton_autotune() -> bool:
    return _autotune and not triton_interpreting()


def register_cuda(op: str, backends: tuple[str, ...], auto: str) -> None:
    CUDA_IMPLS[op] = backends
    CUDA_AUTO[op] = auto


def resolve(op: str, device: torch.device, backend: str | None) -> str:
    """The backend that serves `op` for tensors on `device`, or BackendError saying why none."""
    name = current_backend() if backend is None else backend
    _validate(name)
    if device.type == "cpu":
        if name in ("auto", "cpp"):
            return "cpp"
        if name == "triton":
            if not triton_interpreting():
                raise BackendError(
                    f"greenops.{op}: the Triton backend takes CPU tensors only under the Triton "
                    "interpreter; set TRITON_INTERPRET=1 before triton is imported, or move the "
                    "tensors to a CUDA device"
                )
            return "triton"
        raise BackendError(f"greenops.{op}: the CUDA C++ backend needs CUDA tensors, got CPU ones")
    if device.type == "cuda":
        impls = CUDA_IMPLS.get(op, ())
        if name == "auto":
            if op not in CUDA_AUTO:
                raise BackendError(f"greenops.{op}: no CUDA implementation is registered")
            return CUDA_AUTO[op]
        if name == "cpp":
            raise BackendError(
                f"greenops.{op}: the C++ CPU backend needs CPU tensors, got CUDA ones"
            )
        if name not in impls:
            raise BackendError(
                f"greenops.{op}: no {name!r} implementation for CUDA tensors "
                f"(available: {', '.join(impls) or 'none'})"
            )
        return name
    raise BackendError(f"greenops.{op}: tensors on {device.type!r} are not supported (cpu or cuda)")


_auto_table: dict | None = None


def auto_table() -> dict:
    """greenops/ops/cuda_auto.json: per op, rules [{"max_m": M, "backend": "cuda"|"triton"}]
    measured on a GPU by the benchmark (scripts/cuda_auto_table.py)."""
    global _auto_table
    if _auto_table is None:
        import json

        with open(os.path.join(os.path.dirname(__file__), "cuda_auto.json")) as f:
            _auto_table = json.load(f)
    return _auto_table


def measured_backend(op: str, m: int) -> str:
    """The backend the measured table picks for `op` at M rows (triton without a rule)."""
    for rule in auto_table()["ops"].get(op, ()):
        if m <= rule["max_m"]:
            return rule["backend"]
    return "triton"


def measured_dispatch(op: str, impls: dict, rows_of, cuda_takes) -> Callable:
    """The CUDA impl registered for an op that has both Triton and CUDA C++ kernels: per call,
    the backend the measured table picks for its M (`rows_of(*args)`), Triton where the C++
    kernel cannot take the arguments (`cuda_takes(*args)` false: a dtype or shape it lacks)."""

    def impl(*args):
        name = measured_backend(op, rows_of(*args))
        if name == "cuda" and not cuda_takes(*args):
            name = "triton"
        return impls[name](*args)

    return impl


def register_cuda_impl(op, triton_fn, cpp_fn=None, rows_of=None, cuda_takes=None) -> None:
    """Registers the op's one CUDA impl: the Triton kernel, or, where this build has the op's
    CUDA C++ kernel too (cpp_fn), the measured dispatch between them (measured_dispatch)."""
    if cpp_fn is None:
        torch.library.register_kernel(f"greenops::{op}", "cuda", triton_fn)
        register_cuda(op, ("triton",), auto="triton")
        return
    CUDA_CPP[op] = cpp_fn
    impls = {"triton": triton_fn, "cuda": cpp_fn}
    torch.library.register_kernel(
        f"greenops::{op}", "cuda", measured_dispatch(op, impls, rows_of, cuda_takes)
    )
    register_cuda(op, ("triton", "cuda"), auto="measured")


def rows(x, *args) -> int:
    """M of an op whose first argument is the activation [..., K]."""
    return math.prod(x.shape[:-1])


def cuda_cpp_impls(ops) -> dict:
    """{op: callable} for the ops of `ops` that this build's greenops._C has CUDA C++ kernels
    for (csrc/cuda/bindings.cpp binds them as `<op>_cuda`); empty in a CPU-only build."""
    from .. import _ext

    C = _ext.load()
    return {op: getattr(C, f"{op}_cuda") for op in ops if op in getattr(C, "cuda_kernels", ())}


# (what, ids of the tensors) -> (weakrefs to them, their versions, the value); see once_per_tensor
_DERIVED: dict = {}


def once_per_tensor(what: str, t, fn: Callable):
    """fn(t), computed once per tensor (or tuple of tensors, None allowed) and reused while
    they live unmodified (a new or changed tensor, or a reused id, misses): layouts, orders and
    bounds derived from a weight, so that the per-call path does not redo them."""
    ts = t if isinstance(t, tuple) else (t,)
    key = (what, *map(id, ts))
    hit = _DERIVED.get(key)
    if hit is not None and all(
        (r is None and u is None) or (r is not None and r() is u and v == u._version)
        for r, v, u in zip(hit[0], hit[1], ts, strict=True)
    ):
        return hit[2]
    for k in [k for k, v in _DERIVED.items() if any(r is not None and r() is None for r in v[0])]:
        del _DERIVED[k]  # tensors that are gone
    value = fn(t)
    refs = tuple(None if u is None else weakref.ref(u) for u in ts)
    _DERIVED[key] = (refs, tuple(None if u is None else u._version for u in ts), value)
    return value


# key -> the chosen config; see tuned
_TUNED: dict = {}


def tuned(key: tuple, candidates: list[dict], time_ms: Callable[[dict], float]) -> dict:
    """The fastest of `candidates` for `key`, timed once per key and process: time_ms(cfg) runs
    the kernel with cfg and returns ms (a candidate that does not fit the GPU raises Triton's
    OutOfResources and is skipped). For kernels whose launch needs more than triton.autotune
    can vary (int4's split-K workspace depends on the config's split), so the launcher owns it."""
    hit = _TUNED.get(key)
    if hit is not None:
        return hit
    from triton.runtime.errors import OutOfResources

    best, best_ms = None, math.inf
    for cfg in candidates:
        try:
            ms = time_ms(cfg)
        except OutOfResources:
            continue
        if ms < best_ms:
            best, best_ms = cfg, ms
    if best is None:
        raise RuntimeError(f"greenops: no candidate config fits this GPU for {key}")
    _TUNED[key] = best
    return best


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


# op -> (setup_context, backward) of its autograd formula; see register_autograd
AUTOGRAD: dict[str, tuple[Callable, Callable]] = {}


def register_autograd(op: str, backward: Callable, setup_context: Callable) -> None:
    """The op's autograd formula, for the dispatcher and for the eager non-default backends
    (call), so that every backend trains the same."""
    torch.library.register_autograd(f"greenops::{op}", backward, setup_context=setup_context)
    AUTOGRAD[op] = (setup_context, backward)


class _Eager(torch.autograd.Function):
    """A non-default backend's impl under its op's own autograd formula: the forward runs the
    impl eagerly; the backward is the op's registered one (its pieces, e.g. bsr_mm_t, run on
    the device's default backend). The last input is (impl, setup_context, backward), so the
    op's formula sees its own inputs at their own positions."""

    @staticmethod
    def forward(*inputs):
        *args, (impl, _, _) = inputs
        return impl(*args)

    @staticmethod
    def setup_context(ctx, inputs, output):
        *args, (_, setup, backward) = inputs
        ctx.greenops_backward = backward
        setup(ctx, tuple(args), output)

    @staticmethod
    def backward(ctx, *grads):
        return (*ctx.greenops_backward(ctx, *grads), None)


def call(op: str, device: torch.device, backend: str | None, alternatives: dict, *args):
    """Runs `op` on the backend `backend` (or the current one) picks for `device`: the
    registered op through the dispatcher (compile/export-friendly) when that is the device's
    default, and for meta tensors (its fake impl); otherwise the named alternative impl (e.g.
    {"triton": launcher}; the op's CUDA C++ impl, where built, is always the "cuda" one),
    eagerly, under the op's autograd formula when an input needs a gradient."""
    from .. import _ext

    _ext.load()  # a clear ExtensionError (with the rebuild command) if _C is missing or stale
    if device.type == "meta":
        _validate(current_backend() if backend is None else backend)
        return getattr(torch.ops.greenops, op)(*args)
    chosen = resolve(op, device, backend)
    if chosen == default_backend(op, device):
        return getattr(torch.ops.greenops, op)(*args)
    if op in CUDA_CPP:
        alternatives = {**alternatives, "cuda": CUDA_CPP[op]}
    if chosen not in alternatives:
        raise BackendError(f"greenops.{op}: no {chosen!r} implementation")
    impl = alternatives[chosen]
    if op in AUTOGRAD and torch.is_grad_enabled():
        if any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            return _Eager.apply(*args, (impl, *AUTOGRAD[op]))
    return impl(*args)


def default_backend(op: str, device: torch.device) -> str:
    """What the registered op (torch.ops.greenops.<op>) itself runs for this device."""
    return "cpp" if device.type == "cpu" else CUDA_AUTO.get(op, "")


@contextlib.contextmanager
def use_cpu_isa(name: str) -> Iterator[None]:
    """Caps the CPU kernels' ISA path for the block: "avx512_amx" (AVX-512 VNNI with AMX tiles),
    "avx512_bf16" (AVX-512 VNNI and BF16 without AMX: the bf16 dot-product GEMM, as on AMD Zen 4/5),
    "avx512_vnni", "avx2" or "scalar" (each must be supported by this CPU; "auto" = the detected
    best). Process-wide, not per thread:
    for tests and benchmarks that compare paths, not for production code."""
    from .. import _ext

    c = _ext.load()
    previous = c.cpu_isa()
    c.set_cpu_isa(name)
    try:
        yield
    finally:
        c.set_cpu_isa(previous)
