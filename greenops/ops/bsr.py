"""Block-sparse ops: bsr_mm (x @ W.T + bias, W in BSR blocks), and its backward pieces
bsr_mm_t (dY @ W through the transpose's metadata) and bsr_sddmm (dValues = dY^T @ X sampled
at the nonzero blocks).

Schemas: csrc/registration.cpp. CPU impls: csrc/cpu/bsr.cpp. CUDA impls: the Triton kernels
(kernels/bsr.py), through the launchers below. The torch-op versions (`*_torch`, gathered per
block, never a dense W) are kept as a second, independent implementation for tests.
Format and numerics: docs/kernels.md; the weight class: greenops/sparse.py.
"""

from __future__ import annotations

import math

import torch

from .. import _ext
from . import _backend
from ._checks import FLOAT_DTYPES, check, check_dtype, check_same_device, check_shape

OPS = ("bsr_mm", "bsr_mm_t", "bsr_sddmm")
BLOCK_SIZES = (16, 32, 64, 128)


# --- checks: shapes and dtypes (mirror csrc/include/bsr_checks.h; the C++ side also bounds
# every index, and greenops.sparse validates sortedness) ----------------------------------------


def _check_bsr(op, values, crow, col, K) -> int:
    check(
        values.dim() == 3, op, f"values must be 3-D [nnz, bn, bk], got shape {list(values.shape)}"
    )
    nnz, bn, bk = values.shape
    check(
        bn in BLOCK_SIZES and bk in BLOCK_SIZES,
        op,
        f"blocks must be 16, 32, 64 or 128 on each side, got ({bn}, {bk})",
    )
    check_dtype(op, "crow_indices", crow, (torch.int64,))
    check_dtype(op, "col_indices", col, (torch.int64,))
    check(
        crow.dim() == 1 and crow.numel() >= 1,
        op,
        f"crow_indices must be 1-D [N/bn + 1], got shape {list(crow.shape)}",
    )
    check_shape(op, "col_indices", col, [nnz], "one block column per block of values")
    check(K % bk == 0, op, f"K={K} is not a multiple of the block's bk={bk}")
    return crow.numel() - 1


def check_weight_k(op, t_crow, K, bk) -> None:
    """The weight's K from the transpose's metadata t_crow [K_w/bk + 1] against x's K (the
    forward alone cannot see a narrower weight: its column indices are all in range)."""
    if t_crow is None:
        return
    C = t_crow.shape[0] - 1
    check(
        C * bk == K,
        op,
        f"x has K={K} but the weight has K={C * bk} ({C} block columns of bk={bk}, from "
        f"t_crow's length {t_crow.shape[0]})",
    )


def has_data(t: torch.Tensor) -> bool:
    """False for meta and fake tensors (shapes only: tracing, torch.compile, meta init)."""
    from torch._subclasses.fake_tensor import FakeTensor

    return t.device.type != "meta" and not isinstance(t, FakeTensor)


def check_indices(op: str, crow: torch.Tensor, col: torch.Tensor, num_col_blocks: int) -> None:
    """Every index in range (the C++ twin is check_bsr): crow runs monotonically from 0 to nnz
    and each column index lies in [0, K/bk). O(R + nnz), one host copy; skipped for tensors
    without data. Sortedness and uniqueness are BlockSparseWeight.validate's."""
    if not (has_data(crow) and has_data(col)):
        return
    nnz, cr, cc = col.shape[0], crow.cpu(), col.cpu()
    R = cr.shape[0] - 1
    check(
        cr[0] == 0 and cr[R] == nnz,
        op,
        f"crow_indices must run from 0 to nnz={nnz}, got {int(cr[0])} .. {int(cr[R])}",
    )
    down = torch.nonzero(cr[1:] < cr[:-1])
    if down.numel():
        r = int(down[0])
        raise ValueError(
            f"greenops.{op}: crow_indices must not decrease (row {r}: {int(cr[r])} > "
            f"{int(cr[r + 1])})"
        )
    out = torch.nonzero((cc < 0) | (cc >= num_col_blocks))
    if out.numel():
        b = int(out[0])
        raise ValueError(
            f"greenops.{op}: col_indices[{b}] = {int(cc[b])} is out of range for K/bk = "
            f"{num_col_blocks} block columns"
        )


def _check_floats(op, a, an, b, bn_):
    check_dtype(op, an, a, (*FLOAT_DTYPES, torch.float64))  # float64: CPU, for gradcheck
    if a.dtype != b.dtype:
        raise TypeError(
            f"greenops.{op}: {an} and {bn_} must have one dtype, got {a.dtype} and {b.dtype}"
        )


def _check_mm(x, values, crow, col, bias, scales=None, x_scales=None, t_crow=None) -> int:
    op = "bsr_mm"
    check(x.dim() >= 1, op, "x must have at least 1 dim [..., K]")
    check_same_device(
        op,
        x=x,
        values=values,
        crow_indices=crow,
        col_indices=col,
        bias=bias,
        scales=scales,
        x_scales=x_scales,
    )
    R = _check_bsr(op, values, crow, col, x.shape[-1])
    check_weight_k(op, t_crow, x.shape[-1], values.shape[2])
    N = R * values.shape[1]
    if x.dtype == torch.int8 or x_scales is not None:  # W8A8: x * x_scales per row
        check_dtype(op, "x", x, (torch.int8,))
        check(
            x_scales is not None,
            op,
            "int8 x needs x_scales (one per row of x, x's shape without its last dim)",
        )
        check_dtype(op, "x_scales", x_scales, (torch.float32,))
        check_shape(op, "x_scales", x_scales, list(x.shape[:-1]), "one scale per row of x")
        if values.dtype != torch.int8:
            raise TypeError(
                f"greenops.bsr_mm: int8 x goes with int8 values, got {values.dtype} values"
            )
    if values.dtype == torch.int8:  # W[n, :] = values * scales[n]
        check_dtype(op, "x", x, (*FLOAT_DTYPES, torch.float64, torch.int8))
        check(scales is not None, op, "int8 values need scales (one per output channel, [N])")
        check_dtype(op, "scales", scales, (torch.float32,))
        check_shape(op, "scales", scales, [N], "one scale per output channel")
    else:
        _check_floats(op, x, "x", values, "values")
        check(scales is None, op, f"scales go with int8 values only, got {values.dtype} values")
    if bias is not None:
        check_dtype(op, "bias", bias, (*FLOAT_DTYPES, torch.float64))
        check_shape(op, "bias", bias, [N], "one value per output channel")
    return N


# --- fake impls -------------------------------------------------------------------------------


def _mm_fake(
    x, values, crow, col, bias=None, t_crow=None, t_blocks=None, scales=None, x_scales=None
):
    N = _check_mm(x, values, crow, col, bias, scales, x_scales, t_crow)
    return x.new_empty((*x.shape[:-1], N), dtype=_out_dtype(x))


def _out_dtype(x):
    """x's dtype; fp32 for int8 x (W8A8)."""
    return torch.float32 if x.dtype == torch.int8 else x.dtype


def _dequantize_x(x, x_scales):
    """W8A8 off the int8 path: x * x_scales in fp32 (exact: an int8 times an fp32 scale)."""
    return x.float() * x_scales[..., None] if x.dtype == torch.int8 else x


def _mm_t_fake(dy, values, t_crow, t_blocks):
    _check_floats("bsr_mm_t", dy, "dy", values, "values")
    return dy.new_empty((dy.shape[0], (t_crow.shape[0] - 1) * values.shape[2]))


def _sddmm_fake(dy, x, crow, col, bn, bk):
    _check_floats("bsr_sddmm", dy, "dy", x, "x")
    return x.new_empty((col.shape[0], bn, bk))


# --- CUDA impls: torch ops over gathered blocks (fp32 accumulation) ---------------------------


def block_rows(crow: torch.Tensor, nnz: int) -> torch.Tensor:
    """The block row of every block, from crow_indices."""
    counts = crow[1:] - crow[:-1]
    return torch.repeat_interleave(
        torch.arange(crow.numel() - 1, device=crow.device), counts, output_size=nnz
    )


def transpose_metadata(crow: torch.Tensor, col: torch.Tensor, num_col_blocks: int):
    """(t_crow [K/bk + 1], t_blocks [2, nnz]: block index and block row, in column order).
    The indices are bounds-checked first (check_indices): torch's repeat_interleave and
    bincount would read or write out of bounds on bad ones. Meta/fake tensors: shapes only."""
    nnz = col.numel()
    if not (has_data(crow) and has_data(col)):
        t_crow = torch.empty(num_col_blocks + 1, dtype=torch.int64, device=col.device)
        return t_crow, torch.empty(2, nnz, dtype=torch.int64, device=col.device)
    check_indices("bsr_mm", crow, col, num_col_blocks)
    rows = block_rows(crow, nnz)
    order = torch.argsort(col * max(crow.numel() - 1, 1) + rows, stable=True)
    counts = torch.bincount(col, minlength=num_col_blocks)
    t_crow = torch.zeros(num_col_blocks + 1, dtype=torch.int64, device=col.device)
    t_crow[1:] = torch.cumsum(counts, 0)
    return t_crow, torch.stack([order, rows[order]])


def dequantize_blocks(values, scales, crow, dtype=torch.float32):
    """int8 blocks times their rows' scales (float blocks as they are), in `dtype`: the
    product in fp32 (fp64 for float64), rounded to `dtype` once (a scale rounded to fp16 first
    would lose most of its bits where it is subnormal there)."""
    if values.dtype != torch.int8:
        return values.to(dtype)
    nnz, bn, _ = values.shape
    wide = torch.float64 if dtype == torch.float64 else torch.float32
    s = scales.to(wide).view(-1, bn)[block_rows(crow, nnz)]  # [nnz, bn]
    return (values.to(wide) * s[:, :, None]).to(dtype)


def bsr_mm_torch(
    x, values, crow, col, bias=None, t_crow=None, t_blocks=None, scales=None, x_scales=None
):
    N = _check_mm(x, values, crow, col, bias, scales, x_scales, t_crow)
    x = _dequantize_x(x, x_scales)
    values = dequantize_blocks(values, scales, crow)
    nnz, bn, bk = values.shape
    K = x.shape[-1]
    x2 = x.reshape(math.prod(x.shape[:-1]), K).float()
    M = x2.shape[0]
    out = torch.zeros(M, N // bn if bn else 0, bn, device=x.device)
    if nnz and M:
        xb = x2.view(M, K // bk, bk)[:, col]  # [M, nnz, bk]
        prod = torch.einsum("mzk,znk->mzn", xb, values.float())
        out.index_add_(1, block_rows(crow, nnz), prod)
    out = out.reshape(M, N)
    if bias is not None:
        out += bias.float()
    return out.to(x.dtype).view(*x.shape[:-1], N)


def bsr_mm_t_torch(dy, values, t_crow, t_blocks):
    nnz, bn, bk = values.shape
    M, N = dy.shape
    C = t_crow.numel() - 1
    dx = torch.zeros(M, C, bk, device=dy.device)
    if nnz and M:
        blk, row = t_blocks[0], t_blocks[1]
        dyb = dy.float().view(M, N // bn, bn)[:, row]  # [M, nnz, bn]
        prod = torch.einsum("mzn,znk->mzk", dyb, values.float()[blk])
        dx.index_add_(1, block_rows(t_crow, nnz), prod)
    return dx.reshape(M, C * bk).to(dy.dtype)


def bsr_sddmm_torch(dy, x, crow, col, bn, bk):
    nnz = col.numel()
    M, N = dy.shape
    K = x.shape[1]
    dyb = dy.float().view(M, N // bn, bn)[:, block_rows(crow, nnz)]  # [M, nnz, bn]
    xb = x.float().view(M, K // bk, bk)[:, col]
    return torch.einsum("mzn,mzk->znk", dyb, xb).to(x.dtype)


TORCH_IMPLS = {"bsr_mm": bsr_mm_torch, "bsr_mm_t": bsr_mm_t_torch, "bsr_sddmm": bsr_sddmm_torch}


# --- Triton launchers (the CUDA impls; CPU under the interpreter) -----------------------------


def _kernels():
    from greenops.kernels import bsr as k  # lazy: TRITON_INTERPRET is read at this import

    return k


def _flags(dtype):
    return {
        "IEEE": dtype == torch.float32,
        "UPCAST": _backend.triton_interpreting() and dtype == torch.bfloat16,
    }


def longest_first(ptr: torch.Tensor) -> torch.Tensor:
    """Rows (or columns) of a CSR pointer ordered by decreasing length (ties by index): the
    Triton kernels' launch order, so long loops start in the first wave. Once per pattern."""
    return _backend.once_per_tensor(
        "bsr longest_first",
        ptr,
        lambda p: torch.argsort(p[1:] - p[:-1], descending=True, stable=True),
    )


def _run(op: str, device, M: int, bn: int, bk: int, dtype, shape: tuple, launch) -> None:
    """launch(cfg) with fixed_config, or on a GPU with autotuning on the fastest of
    candidate_configs for this (GPU, op, M bucket, block, dtype, shape), timed on first use."""
    k = _kernels()
    if not (_backend.triton_autotune() and device.type == "cuda"):
        return launch(k.fixed_config(bn, bk, _backend.triton_interpreting()))
    import triton.testing

    bucket = 1 << max(M - 1, 0).bit_length()
    key = (op, torch.cuda.get_device_name(device), bucket, bn, bk, dtype, *shape)
    cands = k.candidate_configs(bucket, bn, bk, torch.cuda.get_device_capability(device))
    cfg = _backend.tuned(key, cands, lambda c: triton.testing.do_bench(lambda: launch(c)))
    return launch(cfg)


def bsr_mm_triton(
    x, values, crow, col, bias=None, t_crow=None, t_blocks=None, scales=None, x_scales=None
):
    """int8 x (W8A8): an int8 dot into int32 for blocks of 32 or more along K (int8 tensor-core
    MMAs take 32 k's); 16-wide blocks run as x * x_scales in fp32 against the int8 blocks."""
    N = _check_mm(x, values, crow, col, bias, scales, x_scales, t_crow)
    nnz, bn, bk = values.shape
    if bk < 32:
        x, x_scales = _dequantize_x(x, x_scales), None
    K = x.shape[-1]
    x2 = x.reshape(math.prod(x.shape[:-1]), K).contiguous()
    M = x2.shape[0]
    out = torch.empty(M, N, dtype=_out_dtype(x), device=x.device)
    if M and N:
        args = (
            x2,
            values.contiguous(),
            crow.contiguous(),
            col.contiguous(),
            longest_first(crow),
            out if bias is None else bias.contiguous(),
            out if scales is None else scales.contiguous(),
            out if x_scales is None else x_scales.reshape(M).contiguous(),
            out,
            M,
            N,
            K,
        )
        flags = dict(
            HAS_BIAS=bias is not None,
            HAS_SCALES=scales is not None,
            INT8_X=x_scales is not None,
            BN=bn,
            BK=bk,
        )
        flags.update(_flags(x.dtype))

        def launch(cfg):
            grid = (_backend.cdiv(M, cfg["BLOCK_M"]), N // bn)
            _kernels().bsr_mm_kernel[grid](*args, **flags, **cfg)

        _run("bsr_mm", x.device, M, bn, bk, x.dtype, (N, K, nnz, scales is None), launch)
    return out.view(*x.shape[:-1], N)


def bsr_mm_t_triton(dy, values, t_crow, t_blocks):
    _check_floats("bsr_mm_t", dy, "dy", values, "values")
    nnz, bn, bk = values.shape
    M, N = dy.shape
    C = t_crow.numel() - 1
    dx = torch.empty(M, C * bk, dtype=dy.dtype, device=dy.device)
    if M and C:
        args = (
            dy.contiguous(),
            values.contiguous(),
            t_crow.contiguous(),
            t_blocks.contiguous(),
            longest_first(t_crow),
            dx,
            M,
            N,
            C * bk,
            nnz,
        )

        def launch(cfg):
            grid = (_backend.cdiv(M, cfg["BLOCK_M"]), C)
            _kernels().bsr_mm_t_kernel[grid](*args, BN=bn, BK=bk, **_flags(dy.dtype), **cfg)

        _run("bsr_mm_t", dy.device, M, bn, bk, dy.dtype, (N, C * bk, nnz), launch)
    return dx


def bsr_sddmm_triton(dy, x, crow, col, bn, bk):
    _check_floats("bsr_sddmm", dy, "dy", x, "x")
    nnz = col.numel()
    M, N = dy.shape
    dv = torch.empty(nnz, bn, bk, dtype=x.dtype, device=x.device)
    if nnz:
        args = (
            dy.contiguous(),
            x.contiguous(),
            block_rows(crow, nnz).contiguous(),
            col.contiguous(),
            dv,
            M,
            N,
            x.shape[1],
        )

        def launch(cfg):
            _kernels().bsr_sddmm_kernel[(nnz,)](*args, BN=bn, BK=bk, **_flags(x.dtype), **cfg)

        _run("bsr_sddmm", x.device, M, bn, bk, x.dtype, (N, x.shape[1], nnz), launch)
    return dv


TRITON_IMPLS = {"bsr_mm": bsr_mm_triton, "bsr_mm_t": bsr_mm_t_triton, "bsr_sddmm": bsr_sddmm_triton}


# --- autograd: bsr_mm is differentiable in x, values and bias ---------------------------------


def _mm_setup(ctx, inputs, output):
    x, values, crow, col, bias, t_crow, t_blocks, scales, _ = inputs  # int8 x: no gradient
    ctx.save_for_backward(x, values, crow, col, t_crow, t_blocks, scales)
    ctx.bias_dtype = None if bias is None else bias.dtype


def _mm_backward(ctx, grad):
    x, values, crow, col, t_crow, t_blocks, scales = ctx.saved_tensors
    nnz, bn, bk = values.shape
    K = x.shape[-1]
    g2 = grad.reshape(math.prod(grad.shape[:-1]), grad.shape[-1])  # -1 is ambiguous at N = 0
    grad_x = grad_v = grad_b = None
    if ctx.needs_input_grad[0]:
        if t_crow is None or t_blocks is None:
            t_crow, t_blocks = transpose_metadata(crow, col, K // bk)
        # int8 blocks: dX through their dequantized copy (int8 weights are not trained), in
        # fp32 for fp16 x where a block value would pass fp16's range
        v = values
        if scales is not None:
            wide = x.dtype == torch.float16 and _beyond_half(scales)
            v = dequantize_blocks(values, scales, crow, torch.float32 if wide else x.dtype)
        grad_x = torch.ops.greenops.bsr_mm_t(g2.to(v.dtype), v, t_crow, t_blocks)
        grad_x = grad_x.to(x.dtype).view(x.shape)
    if ctx.needs_input_grad[1]:
        x2 = x.reshape(g2.shape[0], K)
        grad_v = torch.ops.greenops.bsr_sddmm(g2.to(x.dtype), x2, crow, col, bn, bk)
    if ctx.bias_dtype is not None and ctx.needs_input_grad[4]:
        grad_b = g2.float().sum(0).to(ctx.bias_dtype)
    return grad_x, grad_v, None, None, grad_b, None, None, None, None


def _beyond_half(scales: torch.Tensor) -> bool:
    """Whether an int8 block value (|q| <= 127) times its row's scale may exceed fp16's range;
    once per scales tensor."""
    return _backend.once_per_tensor(
        "bsr beyond_half", scales, lambda s: s.numel() > 0 and bool(s.abs().max() * 127 > 65504)
    )


def bsr_mm_cuda(
    x, values, crow, col, bias=None, t_crow=None, t_blocks=None, scales=None, x_scales=None
):
    """The CUDA C++ forward (tensor cores; fp16/bf16 values, blocks of 32 or 64)."""
    _check_mm(x, values, crow, col, bias, scales, x_scales, t_crow)
    return _ext.load().bsr_mm_cuda(x, values, crow, col, bias)


def _cuda_takes(x, values, *args) -> bool:
    """What the CUDA C++ kernel takes: fp16/bf16, blocks 32 or 64 a side, 16-byte aligned."""
    return (
        x.dtype in (torch.float16, torch.bfloat16)
        and values.dtype == x.dtype
        and values.dim() == 3
        and values.shape[1] in (32, 64)
        and values.shape[2] in (32, 64)
        and x.data_ptr() % 16 == 0
        and values.data_ptr() % 16 == 0
    )


def register() -> None:
    torch.library.register_fake("greenops::bsr_mm")(_mm_fake)
    torch.library.register_fake("greenops::bsr_mm_t")(_mm_t_fake)
    torch.library.register_fake("greenops::bsr_sddmm")(_sddmm_fake)
    cpp = {"bsr_mm": bsr_mm_cuda} if _backend.cuda_cpp_impls(["bsr_mm"]) else {}
    for op, fn in TRITON_IMPLS.items():
        _backend.register_cuda_impl(op, fn, cpp.get(op), _backend.rows, _cuda_takes)
    _backend.register_autograd("bsr_mm", _mm_backward, setup_context=_mm_setup)
