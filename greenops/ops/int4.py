"""int4 ops: quantize_int4, dequantize_int4, int4_weight_mm (group-wise W4A16).

Schemas: csrc/registration.cpp. CPU impls: csrc/cpu/int4.cpp. CUDA impls: quantize/dequantize
in torch ops below (offline, once per weight), int4_weight_mm through the Triton kernel
(kernels/int4.py). Layout and numerics: docs/kernels.md.
"""

from __future__ import annotations

import math

import torch

from .. import _ext
from . import _backend
from ._checks import FLOAT_DTYPES, check, check_dtype, check_same_device, check_shape

OPS = ("quantize_int4", "dequantize_int4", "int4_weight_mm")
GROUP_SIZES = (32, 64, 128, 256)


def per_channel(group_size: int | None, K: int) -> int:
    """The module-level spelling of a group size: -1 or None means one group per row (K)."""
    return K if group_size in (-1, None) else group_size


# --- checks: mirror csrc/include/int4_checks.h ------------------------------------------------


def _check_group(op: str, K: int, group_size: int) -> None:
    check(K % 2 == 0, op, f"K must be even (two int4 values per byte), got K={K}")
    check(
        group_size in GROUP_SIZES or (group_size == K and K > 0),
        op,
        f"group_size must be 32, 64, 128, 256 or K (={K}, per channel), got {group_size}",
    )
    check(K % group_size == 0, op, f"K={K} is not a multiple of group_size={group_size}")


def _check_weight(op, packed, scales, zeros, group_size, K) -> int:
    check_dtype(op, "packed", packed, (torch.uint8,))
    check(packed.dim() == 2, op, f"packed must be 2-D [N, K/2], got shape {list(packed.shape)}")
    _check_group(op, K, group_size)
    N = packed.shape[0]
    check(
        packed.shape[1] * 2 == K,
        op,
        f"the activation has K={K} but packed holds K={packed.shape[1] * 2} "
        f"(packed is [N, K/2] = {list(packed.shape)})",
    )
    G = K // group_size
    check_dtype(op, "scales", scales, (torch.float32,))
    check_shape(op, "scales", scales, [N, G], "[N, K/group_size]: one scale per group")
    if zeros is not None:
        check_dtype(op, "zeros", zeros, (torch.float32,))
        check_shape(op, "zeros", zeros, [N, G], "[N, K/group_size]: one zero point per group")
    return N


def _check_quantize(w, group_size) -> None:
    check_dtype("quantize_int4", "w", w, FLOAT_DTYPES)
    check(w.dim() == 2, "quantize_int4", f"w must be 2-D [N, K], got shape {list(w.shape)}")
    _check_group("quantize_int4", w.shape[1], group_size)


def _check_dequantize(packed, scales, zeros, group_size) -> int:
    check_dtype("dequantize_int4", "packed", packed, (torch.uint8,))
    check(
        packed.dim() == 2,
        "dequantize_int4",
        f"packed must be 2-D [N, K/2], got shape {list(packed.shape)}",
    )
    return _check_weight("dequantize_int4", packed, scales, zeros, group_size, packed.shape[1] * 2)


def _check_mm(x, packed, scales, zeros, group_size, bias) -> int:
    op = "int4_weight_mm"
    check_dtype(op, "x", x, FLOAT_DTYPES)
    check(x.dim() >= 1, op, "x must have at least 1 dim [..., K]")
    check_same_device(op, x=x, packed=packed, scales=scales, zeros=zeros, bias=bias)
    N = _check_weight(op, packed, scales, zeros, group_size, x.shape[-1])
    if bias is not None:
        check_dtype(op, "bias", bias, FLOAT_DTYPES)
        check_shape(op, "bias", bias, [N], "one value per output channel")
    return N


# --- fake impls -------------------------------------------------------------------------------


def _quantize_fake(w, group_size=128, symmetric=False):
    _check_quantize(w, group_size)
    N, K = w.shape
    G = K // group_size
    f32 = torch.float32
    return (
        w.new_empty((N, K // 2), dtype=torch.uint8),
        w.new_empty((N, G), dtype=f32),
        w.new_empty((0, 0) if symmetric else (N, G), dtype=f32),
    )


def _dequantize_fake(packed, scales, zeros, group_size):
    N = _check_dequantize(packed, scales, zeros, group_size)
    return scales.new_empty((N, packed.shape[1] * 2))


def _mm_fake(x, packed, scales, zeros, group_size, bias=None):
    N = _check_mm(x, packed, scales, zeros, group_size, bias)
    return x.new_empty((*x.shape[:-1], N))


# --- CUDA impls -------------------------------------------------------------------------------


def quantize_int4_torch(w, group_size=128, symmetric=False):
    """The quantization contract in torch ops (the CUDA impl; csrc/cpu/int4_scalar.cpp's
    quantize_rows is its CPU twin, op for op, so both give identical bits)."""
    _check_quantize(w, group_size)
    N, K = w.shape
    wf = w.float().reshape(N, K // group_size, group_size)
    bad = ~torch.isfinite(wf).all(-1)
    if symmetric:
        s = wf.abs().amax(-1) / 7
        s = torch.where(s == 0, 1.0, s)
        q = torch.round(wf / s[..., None]) + 8
        z = None
    else:
        lo, hi = wf.amin(-1), wf.amax(-1)
        s = (hi - lo) / 15
        # hi - lo beyond fp32's range: the range pulled in by 2^-20, then the scale without
        # overflow (the C++ twin says why); * 1.0 elsewhere is exact
        shrink = torch.where(torch.isinf(s), 1 - 2**-20, 1.0)
        lo, hi = lo * shrink, hi * shrink
        s = torch.where(torch.isinf(s), hi / 15 - lo / 15, s)
        s = torch.where(s == 0, 1.0, s)
        z = -lo / s
        q = torch.round(wf / s[..., None] + z[..., None])
    q = torch.where(bad[..., None], 0, q.clamp(0, 15)).to(torch.uint8).reshape(N, K)
    s = torch.where(bad, torch.nan, s)
    packed = q[:, 0::2] | (q[:, 1::2] << 4)
    zeros = (
        torch.where(bad, torch.nan, z)
        if z is not None
        else w.new_empty((0, 0), dtype=torch.float32)
    )
    return packed.contiguous(), s.contiguous(), zeros.contiguous()


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """q in 0..15 as uint8 [N, K] from packed [N, K/2]."""
    N, half = packed.shape  # not reshape(N, -1): ambiguous for N = 0
    return torch.stack([packed & 15, packed >> 4], dim=-1).reshape(N, 2 * half)


def dequantize_int4_torch(packed, scales, zeros, group_size):
    _check_dequantize(packed, scales, zeros, group_size)
    q = unpack_int4(packed).float()
    s = scales.repeat_interleave(group_size, dim=1)
    z = 8.0 if zeros is None else zeros.repeat_interleave(group_size, dim=1)
    return (q - z) * s


def beyond_half(scales: torch.Tensor, zeros: torch.Tensor | None) -> bool:
    """Whether some dequantized weight (q - z) * s, q in 0..15, may exceed fp16's range
    (65504), so that fp16 kernels must not round the weight to fp16 (as csrc/cpu/op_utils.h's
    beyond_half). Once per weight (a reduction and a host copy)."""

    def bound(sz):
        s, z = sz
        if s.numel() == 0:
            return False
        zmax = 8.0 if z is None else torch.maximum(z.abs(), (15 - z).abs())
        return bool((s.abs() * zmax).max() > 65504)

    return _backend.once_per_tensor("int4 beyond_half", (scales, zeros), bound)


def _kernels():
    from greenops.kernels import int4 as k  # lazy: TRITON_INTERPRET is read at this import

    return k


def int4_weight_mm_triton(x, packed, scales, zeros, group_size, bias=None):
    N = _check_mm(x, packed, scales, zeros, group_size, bias)
    K = x.shape[-1]
    x2 = x.reshape(math.prod(x.shape[:-1]), K).contiguous()
    M = x2.shape[0]
    if M == 0 or N == 0:
        return x.new_empty((*x.shape[:-1], N))
    zeros = None if zeros is None else zeros.contiguous()
    args = (x2, packed.contiguous(), scales.contiguous(), zeros, bias, group_size)
    return _launch(*args, _triton_config(args)).view(*x.shape[:-1], N)


def _triton_config(args: tuple) -> dict:
    """fixed_config, or on a GPU with autotuning on the fastest of candidate_configs for this
    (GPU, M bucket, N, K, group, dtype, zeros), timed on first use (_backend.tuned). args:
    _launch's, less the config."""
    k = _kernels()
    x2, packed, _, zeros, _, group_size = args
    M, K = x2.shape
    N = packed.shape[0]
    sms = torch.cuda.get_device_properties(x2.device).multi_processor_count if x2.is_cuda else 132
    if not (_backend.triton_autotune() and x2.is_cuda):
        return k.fixed_config(M, N, K, group_size, _backend.triton_interpreting(), sms)
    import triton.testing

    cap = torch.cuda.get_device_capability(x2.device)
    bucket = 1 << max(M - 1, 0).bit_length()
    key = (
        "int4_weight_mm",
        torch.cuda.get_device_name(x2.device),
        bucket,
        N,
        K,
        group_size,
        x2.dtype,
        zeros is None,
    )
    cands = k.candidate_configs(bucket, N, K, group_size, cap, sms)
    return _backend.tuned(
        key, cands, lambda cfg: triton.testing.do_bench(lambda: _launch(*args, cfg))
    )


def _launch(x2, packed, scales, zeros, bias, group_size, cfg) -> torch.Tensor:
    """x2 [M, K] @ W.T (+ bias) with one config; out [M, N] in x's dtype. SPLIT_K > 1: fp32
    partials [SPLIT_K, M, N], summed here (deterministic) with the bias."""
    k = _kernels()
    M, K = x2.shape
    N = packed.shape[0]
    split = cfg["SPLIT_K"]
    out = torch.empty(
        (split, M, N) if split > 1 else (M, N),
        dtype=torch.float32 if split > 1 else x2.dtype,
        device=x2.device,
    )
    grid = (_backend.cdiv(M, cfg["BLOCK_M"]) * _backend.cdiv(N, cfg["BLOCK_N"]), split)
    k.int4_weight_mm_kernel[grid](
        x2,
        packed,
        scales,
        scales if zeros is None else zeros,
        out if bias is None else bias.contiguous(),
        out,
        M,
        N,
        K,
        group_size,
        HAS_ZEROS=zeros is not None,
        HAS_BIAS=bias is not None and split == 1,
        IEEE=x2.dtype == torch.float32,
        UPCAST=_backend.triton_interpreting() and x2.dtype == torch.bfloat16,
        WIDE=x2.dtype == torch.float16 and beyond_half(scales, zeros),
        **cfg,
    )
    if split > 1:
        out = out.sum(0)
        if bias is not None:
            out += bias.float()
        out = out.to(x2.dtype)
    return out


TRITON_IMPLS = {"int4_weight_mm": int4_weight_mm_triton}


# --- CUDA C++: the prepacked layout (csrc/cuda/int4_layout.h) ---------------------------------


def _tile_map(device) -> torch.Tensor:
    """[32, 4, 8]: for lane, word j, nibble i of a tile, its row * 128 + k in the 8 x 128 tile
    (int4_layout.h's nibble_coord, element for element; tests compare the two layouts)."""
    lane = torch.arange(32, device=device)[:, None, None]
    j = torch.arange(4, device=device)[None, :, None]
    i = torch.arange(8, device=device)[None, None, :]
    e, high, t = i & 3, i >> 2, lane & 3
    k = 16 * (2 * j + (e >> 1)) + 2 * t + 8 * (e & 1) + high
    return (lane >> 2) * 128 + k


def prepack_cuda(packed: torch.Tensor) -> torch.Tensor:
    """The CUDA C++ int4_weight_mm's layout of a plain packed weight [N, K/2] uint8: int32
    [N/8, K/128, 32, 4], 8 x 128 tiles of one 16-byte load per lane (csrc/cuda/int4_layout.h).
    Made once per weight (on any device); needs N % 8 == 0 and K % 128 == 0."""
    if packed.dtype != torch.uint8 or packed.dim() != 2:
        raise TypeError(
            f"greenops.prepack_cuda: packed must be uint8 [N, K/2], got {packed.dtype} "
            f"{tuple(packed.shape)}"
        )
    N, K = packed.shape[0], packed.shape[1] * 2
    if N % 8 or K % 128:
        raise ValueError(
            f"greenops.prepack_cuda: the CUDA int4 kernel needs N % 8 == 0 and K % 128 == 0, "
            f"got N={N}, K={K} (use backend='triton')"
        )
    tile_map = _tile_map(packed.device)
    shifts = 4 * torch.arange(8, device=packed.device, dtype=torch.int64)
    out = torch.empty((N // 8, K // 128, 32, 4), dtype=torch.int32, device=packed.device)
    for r in range(0, N // 8, 256):  # 2048 rows at a time bounds the int64 temporaries
        q = unpack_int4(packed[8 * r : 8 * (r + 256)]).to(torch.int64)
        tiles = q.reshape(-1, 8, K // 128, 128).transpose(1, 2).reshape(-1, K // 128, 1024)
        words = (tiles[:, :, tile_map] << shifts).sum(-1)  # < 2**32
        out[r : r + tiles.shape[0]] = torch.where(words >= 2**31, words - 2**32, words).to(
            torch.int32
        )
    return out


def _prepacked_for(packed: torch.Tensor) -> torch.Tensor:
    """The "cuda" backend's layout of a weight, made once per weight tensor."""
    return _backend.once_per_tensor("int4 prepack_cuda", packed, prepack_cuda)


def int4_weight_mm_cuda(x, packed, scales, zeros, group_size, bias=None):
    """The CUDA C++ kernel (csrc/cuda/int4_weight_mm.cu) on the weight's prepacked layout,
    made once per weight tensor (see _prepacked_for). fp16/bf16 x; it dequantizes in x's
    dtype, so fp16 x needs a weight within fp16's range."""
    _check_mm(x, packed, scales, zeros, group_size, bias)
    if x.dtype == torch.float16 and beyond_half(scales, zeros):
        raise ValueError(
            "greenops.int4_weight_mm: the CUDA C++ kernel dequantizes in fp16, and this "
            "weight's values exceed fp16's range (65504); use bf16 x or backend='triton'"
        )
    C = _ext.load()
    return C.int4_weight_mm_cuda(x, _prepacked_for(packed), scales, zeros, group_size, bias)


def _cuda_takes(x, packed, scales, zeros, group_size, bias=None) -> bool:
    """What the CUDA C++ kernel takes: fp16/bf16 x, N % 8 == 0, K % 128 == 0, group % 32, and
    for fp16 x a weight within fp16's range."""
    return (
        x.dtype in (torch.float16, torch.bfloat16)
        and packed.shape[0] % 8 == 0
        and x.shape[-1] % 128 == 0
        and group_size % 32 == 0
        and not (x.dtype == torch.float16 and beyond_half(scales, zeros))
    )


TORCH_IMPLS = {"quantize_int4": quantize_int4_torch, "dequantize_int4": dequantize_int4_torch}


# --- autograd: int4_weight_mm is differentiable in x and bias ---------------------------------


def _mm_setup(ctx, inputs, output):
    x, packed, scales, zeros, group_size, bias = inputs
    ctx.save_for_backward(packed, scales, zeros)
    ctx.group_size = group_size
    ctx.x_dtype = x.dtype
    ctx.bias_dtype = None if bias is None else bias.dtype


def _mm_backward(ctx, grad):
    packed, scales, zeros = ctx.saved_tensors
    grad_x = grad_bias = None
    if ctx.needs_input_grad[0]:
        # dX = dY @ W: the backward dequantizes W once (fp32); training int4 weights is QAT's job.
        w = torch.ops.greenops.dequantize_int4(packed, scales, zeros, ctx.group_size)
        grad_x = (grad.float() @ w).to(ctx.x_dtype)
    if ctx.bias_dtype is not None and ctx.needs_input_grad[5]:
        grad_bias = grad.reshape(math.prod(grad.shape[:-1]), grad.shape[-1]).float().sum(0)
        grad_bias = grad_bias.to(ctx.bias_dtype)
    return grad_x, None, None, None, None, grad_bias


def register() -> None:
    torch.library.register_fake("greenops::quantize_int4")(_quantize_fake)
    torch.library.register_fake("greenops::dequantize_int4")(_dequantize_fake)
    torch.library.register_fake("greenops::int4_weight_mm")(_mm_fake)
    for op, fn in TORCH_IMPLS.items():
        torch.library.register_kernel(f"greenops::{op}", "cuda", fn)
        _backend.register_cuda(op, ("torch",), auto="torch")
    built = _backend.cuda_cpp_impls(["int4_weight_mm"])
    _backend.register_cuda_impl(
        "int4_weight_mm",
        int4_weight_mm_triton,
        int4_weight_mm_cuda if built else None,
        _backend.rows,
        _cuda_takes,
    )
    _backend.register_autograd("int4_weight_mm", _mm_backward, setup_context=_mm_setup)


# --- public API ------------------------------------------------------------------------------


def _call(op: str, device: torch.device, backend: str | None, *args):
    # quantize/dequantize run once per weight: their non-C++ impl is plain torch ops, which
    # backend="triton" reaches on CPU (under the interpreter) like the kernels.
    impl = TRITON_IMPLS.get(op) or TORCH_IMPLS[op]
    return _backend.call(op, device, backend, {"triton": impl}, *args)


def quantize_int4(
    w: torch.Tensor, group_size: int = 128, symmetric: bool = False, *, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Group-wise int4 quantization of a weight w [N, K] (fp32/fp16/bf16), per group of
    `group_size` along K (32, 64, 128, 256, or K for per channel).

    Asymmetric (default, min/max fit): s = (max - min) / 15, z = -min / s (a float zero point),
    q = clamp(round_half_even(w / s + z), 0, 15); where max - min overflows fp32, min and max
    are first scaled by 1 - 2**-20 and s = max / 15 - min / 15, so that every level
    dequantizes to a finite value. Symmetric: s = amax / 7, z = 8 implied,
    q = clamp(round_half_even(w / s) + 8, 0, 15). A constant group gets s = 1 (exact); a group
    holding NaN or +-Inf gets s = z = NaN and q = 0. Returns (packed uint8 [N, K/2], scales fp32
    [N, K/group_size], zeros fp32 like scales, or None when symmetric); element 2j of a row sits
    in the low nibble of byte j, 2j + 1 in the high one."""
    packed, scales, zeros = _call("quantize_int4", w.device, backend, w, group_size, symmetric)
    return packed, scales, (None if symmetric else zeros)


def dequantize_int4(
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    group_size: int,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """w [N, K] fp32 = (q - z) * s per group (z = 8 when zeros is None)."""
    return _call("dequantize_int4", packed.device, backend, packed, scales, zeros, group_size)


def int4_weight_mm(
    x: torch.Tensor,
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    group_size: int,
    bias: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """W4A16 matmul: x @ dequantize_int4(packed, scales, zeros, group_size).T + bias, in x's
    dtype (fp32/fp16/bf16), fp32 accumulation. The weight is dequantized in registers (on CPU
    for M > 16, a cache-sized tile at a time in x's dtype), never as a whole. Leading dims of x
    are flattened. Differentiable in x and bias."""
    return _call("int4_weight_mm", x.device, backend, x, packed, scales, zeros, group_size, bias)
