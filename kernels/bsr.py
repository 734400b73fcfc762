"""Block-sparse Triton kernels: DSD forward (x @ W.T), transposed DSD (dY @ W, for dX) and SDD
(dValues = dY^T @ X at the nonzero blocks). W [N, K] in BSR blocks (BN, BK); format:
docs/kernels.md. fp32 accumulation; IEEE: full fp32 dots for fp32 inputs; UPCAST: fp32 dots
under the interpreter for bf16 (its bf16 dot multiplies raw bit patterns, Triton 3.9).

Values are addressed with 32-bit block offsets (nnz * bn * bk < 2**31 elements).

Work split: one program per (m-block, block row) / (m-block, block column) / block; a row with
many blocks is one program's loop. Rows (columns) are launched longest first (`order`: block
rows by decreasing block count, made once per pattern from crow), so the long loops start in
the first wave and the short ones fill in behind them (longest-processing-time-first).

Configs (rows of x per program, warps, pipeline depth) per block size: `fixed_config`, or on a
GPU the fastest of `candidate_configs`, timed once per (GPU, op, M bucket, block, dtype, N, K,
nnz) by the launchers (greenops/ops/bsr.py).
"""

import triton
import triton.language as tl


@triton.jit
def _dot(a, b, acc, IEEE: tl.constexpr, UPCAST: tl.constexpr):
    if IEEE:
        return tl.dot(a, b, acc, input_precision="ieee")
    elif UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
    else:
        return tl.dot(a, b, acc)


@triton.jit
def bsr_mm_kernel(
    x_ptr,
    v_ptr,
    crow_ptr,
    col_ptr,
    order_ptr,
    bias_ptr,
    scale_ptr,
    x_scale_ptr,
    out_ptr,
    M,
    N,
    K,
    HAS_BIAS: tl.constexpr,
    HAS_SCALES: tl.constexpr,
    INT8_X: tl.constexpr,
    IEEE: tl.constexpr,
    UPCAST: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """out [M, N] = x [M, K] @ W.T (+ bias): program (m-block, block row order[j]). HAS_SCALES: int8
    blocks, W[n, :] = values * scale[n] (converted to x's dtype in registers, the scale applied
    to the fp32 sum). INT8_X (with HAS_SCALES): int8 x too (W8A8), an int8 dot into int32, then
    times x_scale[m] * scale[n] in fp32."""
    pid_m = tl.program_id(0)
    r = tl.load(order_ptr + tl.program_id(1))
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_i = tl.arange(0, BN)
    offs_k = tl.arange(0, BK)
    mask_m = offs_m < M
    if INT8_X:
        acc = tl.zeros((BLOCK_M, BN), dtype=tl.int32)
    else:
        acc = tl.zeros((BLOCK_M, BN), dtype=tl.float32)
    b0 = tl.load(crow_ptr + r)
    b1 = tl.load(crow_ptr + r + 1)
    for b in range(b0, b1):
        c = tl.load(col_ptr + b)
        x = tl.load(
            x_ptr + offs_m[:, None].to(tl.int64) * K + c * BK + offs_k[None, :],
            mask=mask_m[:, None],
            other=0.0,
        )
        # V_b transposed: [BK, BN], element (k, i) = values[b, i, k]
        vt = tl.load(v_ptr + b * (BN * BK) + offs_i[None, :] * BK + offs_k[:, None])
        if HAS_SCALES and not INT8_X:  # via fp32: the interpreter's int8 -> bf16 is wrong (3.9)
            vt = vt.to(tl.float32).to(x.dtype)
        acc = _dot(x, vt, acc, IEEE, UPCAST)
    if INT8_X:
        acc = acc.to(tl.float32) * tl.load(x_scale_ptr + offs_m, mask=mask_m, other=0.0)[:, None]
    if HAS_SCALES:
        acc *= tl.load(scale_ptr + r * BN + offs_i)[None, :]
    if HAS_BIAS:
        acc += tl.load(bias_ptr + r * BN + offs_i).to(tl.float32)[None, :]
    out = out_ptr + offs_m[:, None].to(tl.int64) * N + r * BN + offs_i[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None])


@triton.jit
def bsr_mm_t_kernel(
    dy_ptr,
    v_ptr,
    t_crow_ptr,
    t_blocks_ptr,
    order_ptr,
    dx_ptr,
    M,
    N,
    K,
    NNZ,
    IEEE: tl.constexpr,
    UPCAST: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """dx [M, K] = dy [M, N] @ W: program (m-block, block column order[j]), over the column's
    blocks (t_blocks [2, NNZ]: block index, block row)."""
    pid_m = tl.program_id(0)
    c = tl.load(order_ptr + tl.program_id(1))
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_i = tl.arange(0, BN)
    offs_k = tl.arange(0, BK)
    mask_m = offs_m < M
    acc = tl.zeros((BLOCK_M, BK), dtype=tl.float32)
    j0 = tl.load(t_crow_ptr + c)
    j1 = tl.load(t_crow_ptr + c + 1)
    for j in range(j0, j1):
        b = tl.load(t_blocks_ptr + j)
        r = tl.load(t_blocks_ptr + NNZ + j)
        dy = tl.load(
            dy_ptr + offs_m[:, None].to(tl.int64) * N + r * BN + offs_i[None, :],
            mask=mask_m[:, None],
            other=0.0,
        )
        v = tl.load(v_ptr + b * (BN * BK) + offs_i[:, None] * BK + offs_k[None, :])
        acc = _dot(dy, v, acc, IEEE, UPCAST)
    out = dx_ptr + offs_m[:, None].to(tl.int64) * K + c * BK + offs_k[None, :]
    tl.store(out, acc.to(dx_ptr.dtype.element_ty), mask=mask_m[:, None])


@triton.jit
def bsr_sddmm_kernel(
    dy_ptr,
    x_ptr,
    rows_ptr,
    col_ptr,
    dv_ptr,
    M,
    N,
    K,
    IEEE: tl.constexpr,
    UPCAST: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """dv [NNZ, BN, BK]: program per block b, dy[:, r*BN:]^T @ x[:, c*BK:] over M."""
    b = tl.program_id(0)
    r = tl.load(rows_ptr + b)
    c = tl.load(col_ptr + b)
    offs_i = tl.arange(0, BN)
    offs_k = tl.arange(0, BK)
    acc = tl.zeros((BN, BK), dtype=tl.float32)
    for m0 in range(0, M, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        mask_m = offs_m < M
        dyt = tl.load(  # [BN, BLOCK_M]
            dy_ptr + offs_m[None, :].to(tl.int64) * N + r * BN + offs_i[:, None],
            mask=mask_m[None, :],
            other=0.0,
        )
        x = tl.load(
            x_ptr + offs_m[:, None].to(tl.int64) * K + c * BK + offs_k[None, :],
            mask=mask_m[:, None],
            other=0.0,
        )
        acc = _dot(dyt, x, acc, IEEE, UPCAST)
    out = dv_ptr + b.to(tl.int64) * BN * BK + offs_i[:, None] * BK + offs_k[None, :]
    tl.store(out, acc.to(dv_ptr.dtype.element_ty))


def fixed_config(bn: int, bk: int, interpreting: bool) -> dict:
    """The launch config without tuning (CPU tests; GPU with autotuning off), by block size:
    16 rows of x per program under the interpreter (numpy's work), 64 on a GPU; 128-wide blocks
    take 8 warps and a shallower pipeline (their tiles are 4x the shared memory of 64-wide)."""
    if interpreting:
        return {"BLOCK_M": 16}
    big = max(bn, bk) >= 128
    return {"BLOCK_M": 64, "num_warps": 8 if big else 4, "num_stages": 2 if big else 3}


def candidate_configs(M: int, bn: int, bk: int, capability: tuple[int, int]) -> list[dict]:
    """What the tuner times (greenops.ops._backend.tuned) for one block size: rows of x per
    program: the three largest of 16..128 not beyond M's power-of-two bucket; 4 or 8 warps (8
    for blocks of 64 and up); pipeline depth 2-3 on sm_80, 3-4 on sm_90 (228 KB of shared memory
    a block against 164). Candidates that do not fit are skipped at tuning time."""
    depths = (3, 4) if capability >= (9, 0) else (2, 3)
    warps = (4, 8) if max(bn, bk) >= 64 else (4,)
    rows = [bm for bm in (16, 32, 64, 128) if bm <= max(M, 16)][-3:]  # at most 12 in all
    return [
        {"BLOCK_M": bm, "num_warps": w, "num_stages": st}
        for bm in rows
        for w in warps
        for st in depths
    ]
