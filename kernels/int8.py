"""int8 Triton kernels: per-row quantization, W8A8 GEMM with fused epilogue, W8A16 GEMM.

Numerics (the contract every backend meets, docs/kernels.md):
  scale = max(amax, EPS) / 127;  q = clamp(round_half_even(x / scale), -127, 127)
  int8_mm:        out = cast(float(a_q @ w_q.T) * a_scale[:, None] * w_scale[None, :] + bias)
  int8_weight_mm: out = cast((x @ w_q.T) * w_scale[None, :] + bias), fp32 accumulation
"""

import triton
import triton.language as tl

EPS = tl.constexpr(1e-12)
# Adding then subtracting 1.5 * 2**23 rounds an fp32 |y| < 2**22 to the nearest integer, ties to
# even (IEEE round-to-nearest), with plain adds: libdevice.rint is not available under the
# Triton interpreter, and this is exact on both.
_RINT_MAGIC = tl.constexpr(12582912.0)


@triton.jit
def _quantize(x, scale):
    y = tl.math.div_rn(x, scale)  # IEEE division: `/` may lower to an approximate div on GPU
    y = tl.minimum(tl.maximum(y, -127.0), 127.0)
    return ((y + _RINT_MAGIC) - _RINT_MAGIC).to(tl.int8)


@triton.jit
def quantize_int8_kernel(x_ptr, q_ptr, scale_ptr, K, BLOCK_K: tl.constexpr, ONE_PASS: tl.constexpr):
    """One program per row of a contiguous [rows, K] x. ONE_PASS: the row fits in one block and
    is read once; otherwise amax is found in a first loop and the row is read again."""
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * K
    q_row = q_ptr + row * K
    offs = tl.arange(0, BLOCK_K)
    if ONE_PASS:
        x = tl.load(x_row + offs, mask=offs < K, other=0.0).to(tl.float32)
        amax = tl.max(tl.abs(x), axis=0)
        poison = tl.sum(x * 0.0, axis=0)  # NaN exactly when the row holds NaN or +-Inf
    else:
        vmax = tl.zeros([BLOCK_K], dtype=tl.float32)
        vpoison = tl.zeros([BLOCK_K], dtype=tl.float32)
        for k in range(0, K, BLOCK_K):
            x = tl.load(x_row + k + offs, mask=k + offs < K, other=0.0).to(tl.float32)
            vmax = tl.maximum(vmax, tl.abs(x))
            vpoison += x * 0.0
        amax = tl.max(vmax, axis=0)
        poison = tl.sum(vpoison, axis=0)
    bad = poison != poison
    scale = tl.maximum(amax, EPS) / 127.0
    scale = tl.where(bad, poison, scale)  # NaN scale for a poisoned row
    tl.store(scale_ptr + row, scale)
    if ONE_PASS:
        q = tl.where(bad, 0, _quantize(x, scale))
        tl.store(q_row + offs, q, mask=offs < K)
    else:
        for k in range(0, K, BLOCK_K):
            x = tl.load(x_row + k + offs, mask=k + offs < K, other=0.0).to(tl.float32)
            q = tl.where(bad, 0, _quantize(x, scale))
            tl.store(q_row + k + offs, q, mask=k + offs < K)


@triton.jit
def _tile_offsets(M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """Grouped launch order: GROUP_M row-blocks share each column-block while it is in L2."""
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    group = GROUP_M * num_n
    first_m = (pid // group) * GROUP_M
    size_m = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % size_m
    pid_n = (pid % group) // size_m
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    return offs_m, offs_n


@triton.jit
def int8_mm_kernel(
    a_ptr,
    a_scale_ptr,
    w_ptr,
    w_scale_ptr,
    bias_ptr,
    out_ptr,
    M,
    N,
    K,
    M_BUCKET,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    """a [M, K] int8, w [N, K] int8 (both contiguous), int32 tl.dot accumulation; epilogue
    (scales, bias, cast to out's dtype) fused. M_BUCKET is only an autotune key."""
    offs_m, offs_n = _tile_offsets(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N
    a_ptrs = a_ptr + offs_m[:, None].to(tl.int64) * K + offs_k[None, :]
    w_ptrs = w_ptr + offs_n[None, :].to(tl.int64) * K + offs_k[:, None]  # [BLOCK_K, BLOCK_N] of w.T
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for k in range(0, K, BLOCK_K):
        a = tl.load(a_ptrs, mask=mask_m[:, None] & (k + offs_k[None, :] < K), other=0)
        w = tl.load(w_ptrs, mask=mask_n[None, :] & (k + offs_k[:, None] < K), other=0)
        acc = tl.dot(a, w, acc, out_dtype=tl.int32)
        a_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    a_scale = tl.load(a_scale_ptr + offs_m, mask=mask_m, other=0.0)
    w_scale = tl.load(w_scale_ptr + offs_n, mask=mask_n, other=0.0)
    out = acc.to(tl.float32) * a_scale[:, None] * w_scale[None, :]
    if HAS_BIAS:
        out += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    out_ptrs = out_ptr + offs_m[:, None].to(tl.int64) * N + offs_n[None, :]
    tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def int8_weight_mm_kernel(
    x_ptr,
    w_ptr,
    w_scale_ptr,
    bias_ptr,
    out_ptr,
    M,
    N,
    K,
    M_BUCKET,
    HAS_BIAS: tl.constexpr,
    IEEE: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    """x [M, K] float, w [N, K] int8 (contiguous). The int8 tile is converted to x's dtype in
    registers (exact: |q| <= 128 fits fp16/bf16 mantissas), tl.dot accumulates in fp32, the
    per-channel scale is applied once in the epilogue. IEEE: full fp32 dot for fp32 x (no tf32).
    The conversion goes through fp32 because Triton 3.9's interpreter turns int8 -> bf16 into
    garbage (bit patterns, not values); on GPU the two converts cost the same as one.
    UPCAST: dot in fp32; set by the launcher only under the interpreter, whose bf16 tl.dot
    multiplies raw bit patterns (Triton 3.9)."""
    offs_m, offs_n = _tile_offsets(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N
    x_ptrs = x_ptr + offs_m[:, None].to(tl.int64) * K + offs_k[None, :]
    w_ptrs = w_ptr + offs_n[None, :].to(tl.int64) * K + offs_k[:, None]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        x = tl.load(x_ptrs, mask=mask_m[:, None] & (k + offs_k[None, :] < K), other=0.0)
        w = tl.load(w_ptrs, mask=mask_n[None, :] & (k + offs_k[:, None] < K), other=0)
        if IEEE:
            acc = tl.dot(x, w.to(tl.float32), acc, input_precision="ieee")
        elif UPCAST:
            acc = tl.dot(x.to(tl.float32), w.to(tl.float32), acc)
        else:
            acc = tl.dot(x, w.to(tl.float32).to(x.dtype), acc)
        x_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    w_scale = tl.load(w_scale_ptr + offs_n, mask=mask_n, other=0.0)
    out = acc * w_scale[None, :]
    if HAS_BIAS:
        out += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    out_ptrs = out_ptr + offs_m[:, None].to(tl.int64) * N + offs_n[None, :]
    tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


def _configs(shapes):
    return [
        triton.Config(
            {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "GROUP_M": 8}, num_warps=w, num_stages=s
        )
        for m, n, k, w, s in shapes
    ]


# (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages). Large tiles with deep pipelines for sm_90
# (228 KB smem) and sm_80 (164 KB); 16/32-row tiles for decode-sized M, where the weight
# stream dominates and more programs along N keep every SM busy.
INT8_MM_CONFIGS = _configs(
    [
        (128, 256, 128, 8, 3),
        (256, 128, 128, 8, 3),
        (128, 128, 128, 4, 4),
        (128, 128, 64, 4, 4),
        (64, 128, 128, 4, 4),
        (64, 64, 128, 4, 4),
        (32, 64, 256, 4, 4),
        (16, 64, 256, 4, 4),
        (16, 128, 128, 4, 5),
    ]
)
INT8_WEIGHT_MM_CONFIGS = _configs(
    [
        (128, 256, 64, 8, 3),
        (256, 128, 64, 8, 3),
        (128, 128, 64, 4, 4),
        (64, 128, 64, 4, 4),
        (64, 64, 64, 4, 4),
        (32, 64, 128, 4, 4),
        (16, 64, 128, 4, 4),
        (16, 128, 128, 4, 5),
    ]
)
_KEY = ["M_BUCKET", "N", "K"]
int8_mm_autotuned = triton.autotune(configs=INT8_MM_CONFIGS, key=_KEY)(int8_mm_kernel)
int8_weight_mm_autotuned = triton.autotune(configs=INT8_WEIGHT_MM_CONFIGS, key=_KEY)(
    int8_weight_mm_kernel
)


def fixed_config(M: int, interpreting: bool) -> dict:
    """The config used without autotuning. Under the interpreter (CPU tests) one small tile
    keeps numpy's work low; on GPU, a decode-sized and a prefill-sized tile."""
    if interpreting:
        return {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32, "GROUP_M": 4}
    if M <= 32:
        return {
            "BLOCK_M": 16,
            "BLOCK_N": 64,
            "BLOCK_K": 128,
            "GROUP_M": 8,
            "num_warps": 4,
            "num_stages": 4,
        }
    return {
        "BLOCK_M": 128,
        "BLOCK_N": 128,
        "BLOCK_K": 64,
        "GROUP_M": 8,
        "num_warps": 4,
        "num_stages": 4,
    }
