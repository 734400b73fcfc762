"""Tolerances and numerical helpers shared by the op tests (one table, tests/numerics.py)."""

import torch

import greenops

HAS_CUDA = torch.cuda.is_available()

# Relative error bounds (max |out - ref| / max |ref|) against a float64 reference of the same
# math. Low-precision outputs are judged by flash-attention's rule instead: at most 2x the
# error of torch's own same-dtype computation (see assert_close_to_ref).
RTOL = {torch.float32: 1e-5}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.double()
    denom = ref.abs().max().clamp_min(1e-30)
    return ((out.double() - ref).abs().max() / denom).item()


def assert_close_to_ref(
    out: torch.Tensor, ref: torch.Tensor, torch_same_dtype: torch.Tensor | None = None
):
    """fp32: rel_err <= RTOL; fp16/bf16: rel_err <= 2 * torch's own rel_err (+ one ulp of slack
    where torch's own error is ~0)."""
    assert out.shape == ref.shape, (out.shape, ref.shape)
    if out.numel() == 0:
        return
    err = rel_err(out, ref)
    if out.dtype in RTOL:
        assert err <= RTOL[out.dtype], f"rel err {err:.3g} > {RTOL[out.dtype]:.1g}"
    else:
        assert torch_same_dtype is not None and torch_same_dtype.dtype == out.dtype
        bound = 2 * rel_err(torch_same_dtype, ref) + torch.finfo(out.dtype).eps
        assert err <= bound, f"rel err {err:.3g} > 2x torch's own ({bound:.3g})"


def sqnr_db(signal: torch.Tensor, approx: torch.Tensor) -> float:
    s = signal.double()
    noise = (s - approx.double()).norm()
    return (20 * torch.log10(s.norm() / noise.clamp_min(1e-30))).item()


def cpu_isas() -> list[str]:
    """The CPU ISA paths this machine can run, for tests that run each."""
    order = ["scalar", "avx2", "avx512_vnni", "avx512_bf16", "avx512_amx"]
    if not greenops._ext.available():
        return []
    best = greenops._ext.load().cpu_isa_detected()
    return order[: order.index(best) + 1]


def run_candidate(fn, *args):
    """fn(*args) for a Triton config under test, or None when the config does not fit this GPU
    (Triton's OutOfResources: the tuner skips such candidates too)."""
    from triton.runtime.errors import OutOfResources

    try:
        return fn(*args)
    except OutOfResources:
        return None
