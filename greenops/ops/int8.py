"""int8 ops: quantize_int8, int8_mm (W8A8, per-token x per-channel), int8_weight_mm (W8A16).

Schemas: csrc/registration.cpp. CPU impl: csrc/cpu/int8.cpp. CUDA impl: the Triton launchers
below (kernels/int8.py), registered for the CUDA dispatch key. Numerics: docs/kernels.md.
"""

from __future__ import annotations

import math

import torch

from . import _backend
from ._checks import FLOAT_DTYPES, check, check_dtype, check_same_device, check_shape

OPS = ("quantize_int8", "int8_mm", "int8_weight_mm")


# --- checks: mirror csrc/include/int8_checks.h ------------------------------------------------


def _check_int8_weight(op, w_q, w_scale, bias, K) -> int:
    check_dtype(op, "w_q", w_q, (torch.int8,))
    check(w_q.dim() == 2, op, f"w_q must be 2-D [N, K], got shape {list(w_q.shape)}")
    N = w_q.shape[0]
    check(
        w_q.shape[1] == K,
        op,
        f"the activation has K={K} but w_q has K={w_q.shape[1]} "
        f"(w_q is [N, K] = {list(w_q.shape)})",
    )
    check_dtype(op, "w_scale", w_scale, (torch.float32,))
    check_shape(op, "w_scale", w_scale, [N], "one scale per output channel of w_q")
    if bias is not None:
        check_dtype(op, "bias", bias, FLOAT_DTYPES)
        check_shape(op, "bias", bias, [N], "one value per output channel")
    return N


def _check_int8_mm(a_q, a_scale, w_q, w_scale, bias, out_dtype) -> None:
    op = "int8_mm"
    check_dtype(op, "a_q", a_q, (torch.int8,))
    check(a_q.dim() >= 1, op, "a_q must have at least 1 dim [..., K]")
    check_same_device(op, a_q=a_q, a_scale=a_scale, w_q=w_q, w_scale=w_scale, bias=bias)
    _check_int8_weight(op, w_q, w_scale, bias, a_q.shape[-1])
    check_dtype(op, "a_scale", a_scale, (torch.float32,))
    check_shape(
        op,
        "a_scale",
        a_scale,
        a_q.shape[:-1],
        "a_q's shape without its last dim: one scale per row",
    )
    if out_dtype is not None and out_dtype not in FLOAT_DTYPES:
        raise TypeError(
            "greenops.int8_mm: out_dtype must be torch.float32 or torch.float16 or "
            f"torch.bfloat16, got {out_dtype}"
        )


def _check_int8_weight_mm(x, w_q, w_scale, bias) -> None:
    op = "int8_weight_mm"
    check_dtype(op, "x", x, FLOAT_DTYPES)
    check(x.dim() >= 1, op, "x must have at least 1 dim [..., K]")
    check_same_device(op, x=x, w_q=w_q, w_scale=w_scale, bias=bias)
    _check_int8_weight(op, w_q, w_scale, bias, x.shape[-1])


def _check_quantize_int8(x, dim) -> int:
    check_dtype("quantize_int8", "x", x, FLOAT_DTYPES)
    check(x.dim() >= 1, "quantize_int8", "x must have at least 1 dim")
    if not -x.dim() <= dim < x.dim():
        raise IndexError(
            f"greenops.quantize_int8: dim {dim} is out of range for a {x.dim()}-D tensor"
        )
    return dim % x.dim()


# --- fake impls: shapes and dtypes only, for torch.compile / torch.export ------------------


def _quantize_int8_fake(x, dim=-1):
    d = _check_quantize_int8(x, dim)
    scale_shape = x.shape[:d] + x.shape[d + 1 :]
    return x.new_empty(x.shape, dtype=torch.int8), x.new_empty(scale_shape, dtype=torch.float32)


def _int8_mm_fake(a_q, a_scale, w_q, w_scale, bias=None, out_dtype=None):
    _check_int8_mm(a_q, a_scale, w_q, w_scale, bias, out_dtype)
    return a_q.new_empty((*a_q.shape[:-1], w_q.shape[0]), dtype=out_dtype or torch.float32)


def _int8_weight_mm_fake(x, w_q, w_scale, bias=None):
    _check_int8_weight_mm(x, w_q, w_scale, bias)
    return x.new_empty((*x.shape[:-1], w_q.shape[0]))


# --- Triton launchers: the CUDA impls, and CPU under the interpreter --------------------------


def _next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _kernels():
    from greenops.kernels import int8 as k  # lazy: TRITON_INTERPRET is read at this import

    return k


def _launch_gemm(kernel_name, M, N, *args, **flags):
    k = _kernels()
    m_bucket = _next_pow2(max(M, 1))
    if _backend.triton_autotune():

        def grid(meta):
            return (_backend.cdiv(M, meta["BLOCK_M"]) * _backend.cdiv(N, meta["BLOCK_N"]),)

        getattr(k, f"{kernel_name}_autotuned")[grid](*args, m_bucket, **flags)
    else:
        cfg = k.fixed_config(M, _backend.triton_interpreting())
        grid = (_backend.cdiv(M, cfg["BLOCK_M"]) * _backend.cdiv(N, cfg["BLOCK_N"]),)
        getattr(k, f"{kernel_name}_kernel")[grid](*args, m_bucket, **flags, **cfg)


def quantize_int8_triton(x: torch.Tensor, dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    d = _check_quantize_int8(x, dim)
    xt = x.movedim(d, -1).contiguous()
    K = xt.shape[-1]
    q = torch.empty(xt.shape, dtype=torch.int8, device=x.device)
    scale = torch.empty(xt.shape[:-1], dtype=torch.float32, device=x.device)
    if scale.numel():
        # One pass with the row in registers up to 8192 elements; beyond, two passes.
        block = _next_pow2(max(min(K, 8192), 16))
        _kernels().quantize_int8_kernel[(scale.numel(),)](
            xt, q, scale, K, BLOCK_K=block, ONE_PASS=K <= 8192, num_warps=8 if block >= 4096 else 4
        )
    return q.movedim(-1, d).contiguous(), scale


def int8_mm_triton(a_q, a_scale, w_q, w_scale, bias=None, out_dtype=None) -> torch.Tensor:
    _check_int8_mm(a_q, a_scale, w_q, w_scale, bias, out_dtype)
    K, N = a_q.shape[-1], w_q.shape[0]
    a = a_q.reshape(math.prod(a_q.shape[:-1]), K).contiguous()  # -1 is ambiguous at K=0
    M = a.shape[0]
    out = torch.empty((M, N), dtype=out_dtype or torch.float32, device=a_q.device)
    if M and N:
        _launch_gemm(
            "int8_mm",
            M,
            N,
            a,
            a_scale.reshape(M).contiguous(),
            w_q.contiguous(),
            w_scale.contiguous(),
            out if bias is None else bias.contiguous(),
            out,
            M,
            N,
            K,
            HAS_BIAS=bias is not None,
        )
    return out.view(*a_q.shape[:-1], N)


def int8_weight_mm_triton(x, w_q, w_scale, bias=None) -> torch.Tensor:
    _check_int8_weight_mm(x, w_q, w_scale, bias)
    K, N = x.shape[-1], w_q.shape[0]
    x2 = x.reshape(math.prod(x.shape[:-1]), K).contiguous()
    M = x2.shape[0]
    out = torch.empty((M, N), dtype=x.dtype, device=x.device)
    if M and N:
        _launch_gemm(
            "int8_weight_mm",
            M,
            N,
            x2,
            w_q.contiguous(),
            w_scale.contiguous(),
            out if bias is None else bias.contiguous(),
            out,
            M,
            N,
            K,
            HAS_BIAS=bias is not None,
            IEEE=x.dtype == torch.float32,
            UPCAST=_backend.triton_interpreting() and x.dtype == torch.bfloat16,
        )
    return out.view(*x.shape[:-1], N)


TRITON_IMPLS = {
    "quantize_int8": quantize_int8_triton,
    "int8_mm": int8_mm_triton,
    "int8_weight_mm": int8_weight_mm_triton,
}


# --- autograd: int8_weight_mm is differentiable in x and bias ---------------------------------


def _weight_mm_setup(ctx, inputs, output):
    x, w_q, w_scale, bias = inputs
    ctx.save_for_backward(w_q, w_scale)
    ctx.x_dtype = x.dtype
    ctx.bias_dtype = None if bias is None else bias.dtype


def _weight_mm_backward(ctx, grad):
    w_q, w_scale = ctx.saved_tensors
    grad_x = grad_bias = None
    if ctx.needs_input_grad[0]:
        # dX = (dY * w_scale) @ w_q, in fp32, then x's dtype.
        grad_x = ((grad.float() * w_scale) @ w_q.float()).to(ctx.x_dtype)
    if ctx.bias_dtype is not None and ctx.needs_input_grad[3]:
        grad_bias = grad.reshape(math.prod(grad.shape[:-1]), grad.shape[-1]).float().sum(0)
        grad_bias = grad_bias.to(ctx.bias_dtype)
    return grad_x, None, None, grad_bias


def _cuda_takes(a_q, a_scale, w_q, *args) -> bool:
    """What the CUDA C++ int8_mm takes: K % 16 == 0 and 16-byte aligned int8 rows (cp.async)."""
    return a_q.shape[-1] % 16 == 0 and a_q.data_ptr() % 16 == 0 and w_q.data_ptr() % 16 == 0


def register() -> None:
    """Fake impls, CUDA impls and autograd for the schemas that greenops._C defined."""
    torch.library.register_fake("greenops::quantize_int8")(_quantize_int8_fake)
    torch.library.register_fake("greenops::int8_mm")(_int8_mm_fake)
    torch.library.register_fake("greenops::int8_weight_mm")(_int8_weight_mm_fake)
    cpp = _backend.cuda_cpp_impls(OPS)  # the bindings themselves (csrc/cuda/bindings.cpp)
    for op, fn in TRITON_IMPLS.items():
        _backend.register_cuda_impl(op, fn, cpp.get(op), _backend.rows, _cuda_takes)
    _backend.register_autograd(
        "int8_weight_mm", _weight_mm_backward, setup_context=_weight_mm_setup
    )


# --- public API ------------------------------------------------------------------------------


def _call(op: str, device: torch.device, backend: str | None, *args):
    return _backend.call(op, device, backend, {"triton": TRITON_IMPLS[op]}, *args)


def quantize_int8(
    x: torch.Tensor, dim: int = -1, *, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantization with one fp32 scale per slice along `dim`.

    scale = max(amax, 1e-12) / 127 and q = clamp(round_half_even(x / scale), -127, 127), with
    amax taken over `dim` (dim=-1: per token for activations [..., K]; per output channel for
    weights [N, K]). Returns q (int8, x's shape, contiguous) and scale (x's shape without `dim`).
    A slice holding NaN or +-Inf gets scale NaN and q = 0, so NaN propagates to every int8_mm
    output that uses it instead of hiding in a clamped value.
    """
    return _call("quantize_int8", x.device, backend, x, dim)


def int8_mm(
    a_q: torch.Tensor,
    a_scale: torch.Tensor,
    w_q: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """W8A8 matmul: (a_q @ w_q.T) * a_scale[..., None] * w_scale + bias, int32 accumulation.

    a_q [..., K] int8 with a_scale [...] fp32 (per token); w_q [N, K] int8 with w_scale [N] fp32
    (per output channel); bias [N] any float dtype. Scales, bias and the cast to out_dtype
    (float32 by default, or float16 / bfloat16) are fused into the GEMM's epilogue.
    """
    return _call("int8_mm", a_q.device, backend, a_q, a_scale, w_q, w_scale, bias, out_dtype)


def int8_weight_mm(
    x: torch.Tensor,
    w_q: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """W8A16 matmul: x @ (w_q * w_scale[:, None]).T + bias in x's dtype (fp32/fp16/bf16).

    The float weight is never materialized: int8 tiles are converted in registers (or, for
    large M on CPU, a cache-sized tile at a time) and w_scale is applied once per output.
    Differentiable in x and bias.
    """
    return _call("int8_weight_mm", x.device, backend, x, w_q, w_scale, bias)
