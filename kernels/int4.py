"""int4 Triton kernel: group-wise W4A16 GEMM (decode-sized M with split-K, and prefill-sized M).

Layout and numerics (docs/kernels.md): packed [N, K/2] uint8, element 2j of a row in the low
nibble of byte j, 2j + 1 in the high one; w = (q - z) * s per group (z = 8 without zeros), fp32.
The packed tile is loaded as bytes and dequantized in registers; the even and odd elements of
K meet the activation's even and odd columns in two tl.dots, so no nibble interleave is needed.
"""

import triton
import triton.language as tl


@triton.jit
def int4_weight_mm_kernel(
    x_ptr,
    w_ptr,
    scales_ptr,
    zeros_ptr,
    bias_ptr,
    out_ptr,
    M,
    N,
    K,
    GROUP,
    K_PER_SPLIT,
    HAS_ZEROS: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    GROUP_ALIGNED: tl.constexpr,
    IEEE: tl.constexpr,
    UPCAST: tl.constexpr,
    WIDE: tl.constexpr,
    SPLIT_K: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """x [M, K] float, w [N, K/2] uint8, scales/zeros [N, K/GROUP] fp32, all contiguous.
    Grid (m-blocks * n-blocks, SPLIT_K). SPLIT_K == 1: out [M, N] in x's dtype with the bias;
    otherwise out is fp32 [SPLIT_K, M, N] partial sums (the launcher adds them and the bias).
    GROUP_ALIGNED: GROUP is a multiple of BLOCK_K, so a k-block has one scale per column.
    IEEE / UPCAST: as in the int8 kernels (full fp32 dot; fp32 dot under the interpreter).
    WIDE: fp16 x with a weight beyond fp16's range: the dot takes x and w in fp32 (tf32 on
    tensor cores: fp16's mantissa, fp32's range), since w rounded to fp16 would be inf."""
    pid = tl.program_id(0)
    pid_k = tl.program_id(1)
    num_n = tl.cdiv(N, BLOCK_N)
    offs_m = (pid // num_n) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = (pid % num_n) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_j = tl.arange(0, BLOCK_K // 2)  # byte j of the block: elements 2j and 2j + 1
    mask_m = offs_m < M
    mask_n = offs_n < N
    G = K // GROUP
    k_begin = pid_k * K_PER_SPLIT
    k_end = tl.minimum(k_begin + K_PER_SPLIT, K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(k_begin, k_end, BLOCK_K):
        kk = k + 2 * offs_j
        mask_k = kk < k_end
        xe = tl.load(
            x_ptr + offs_m[:, None].to(tl.int64) * K + kk[None, :],
            mask=mask_m[:, None] & mask_k[None, :],
            other=0.0,
        )
        xo = tl.load(
            x_ptr + offs_m[:, None].to(tl.int64) * K + kk[None, :] + 1,
            mask=mask_m[:, None] & mask_k[None, :],
            other=0.0,
        )
        b = tl.load(
            w_ptr + offs_n[None, :].to(tl.int64) * (K // 2) + (kk // 2)[:, None],
            mask=mask_n[None, :] & mask_k[:, None],
            other=0,
        ).to(tl.int32)  # [BLOCK_K/2, BLOCK_N] of w.T, as bytes
        if GROUP_ALIGNED:
            gi = offs_n.to(tl.int64) * G + k // GROUP
            s = tl.load(scales_ptr + gi, mask=mask_n, other=0.0)[None, :]
            z = tl.load(zeros_ptr + gi, mask=mask_n, other=0.0)[None, :] if HAS_ZEROS else 8.0
        else:
            gi = offs_n[None, :].to(tl.int64) * G + (kk // GROUP)[:, None]
            gmask = mask_n[None, :] & mask_k[:, None]
            s = tl.load(scales_ptr + gi, mask=gmask, other=0.0)
            z = tl.load(zeros_ptr + gi, mask=gmask, other=0.0) if HAS_ZEROS else 8.0
        w_lo = ((b & 15).to(tl.float32) - z) * s
        w_hi = ((b >> 4).to(tl.float32) - z) * s
        if IEEE:
            acc = tl.dot(xe, w_lo, acc, input_precision="ieee")
            acc = tl.dot(xo, w_hi, acc, input_precision="ieee")
        elif UPCAST or WIDE:
            acc = tl.dot(xe.to(tl.float32), w_lo, acc)
            acc = tl.dot(xo.to(tl.float32), w_hi, acc)
        else:
            acc = tl.dot(xe, w_lo.to(xe.dtype), acc)
            acc = tl.dot(xo, w_hi.to(xo.dtype), acc)
    mask = mask_m[:, None] & mask_n[None, :]
    if SPLIT_K == 1:
        if HAS_BIAS:
            acc += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
        out_ptrs = out_ptr + offs_m[:, None].to(tl.int64) * N + offs_n[None, :]
        tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        out_ptrs = out_ptr + (pid_k * M + offs_m[:, None].to(tl.int64)) * N + offs_n[None, :]
        tl.store(out_ptrs, acc, mask=mask)


def _finish(cfg: dict, K: int, group: int, split: int) -> dict:
    """cfg with the split-K fields: whole BLOCK_K blocks per split, and GROUP_ALIGNED."""
    bk = cfg["BLOCK_K"]
    k_per_split = triton.cdiv(triton.cdiv(K, split), bk) * bk
    return {
        **cfg,
        "SPLIT_K": triton.cdiv(K, k_per_split) if K else 1,
        "K_PER_SPLIT": k_per_split,
        "GROUP_ALIGNED": group % bk == 0,  # k-blocks start at multiples of BLOCK_K
    }


def _fill_split(N: int, K: int, block_n: int, block_k: int, sms: int, per_sm: int) -> int:
    """K splits so that about per_sm programs per SM stream weights (at most 16, whole blocks)."""
    return max(1, min(triton.cdiv(per_sm * sms, triton.cdiv(N, block_n)), K // block_k, 16))


def fixed_config(M: int, N: int, K: int, group: int, interpreting: bool, sms: int = 132) -> dict:
    """The launch config without tuning (CPU tests, and GPU with autotuning off), chosen by M.

    M <= 16 (decode): the weight stream dominates; 16-row tiles, and K split so that about two
    programs per SM stream weights (the partial sums are added by the launcher). Larger M: a
    64x128 tile over the whole K. Under the interpreter (CPU tests) small tiles, and split-K for
    M <= 16 so that both paths are exercised."""
    if interpreting:
        cfg = {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32}
        split = 2 if M <= 16 and K >= 64 else 1
    elif M <= 16:
        cfg = {"BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 128, "num_warps": 4, "num_stages": 4}
        split = _fill_split(N, K, 64, 128, sms, 2)
    else:
        cfg = {"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 4}
        split = 1
    return _finish(cfg, K, group, split)


def candidate_configs(
    M: int, N: int, K: int, group: int, capability: tuple[int, int], sms: int
) -> list[dict]:
    """What the tuner times (greenops.ops._backend.tuned), per size class and architecture,
    kept to about eight per class so that tuning a shape costs seconds, not minutes. Pipeline
    depth by shared memory: sm_90 (H100: 228 KB a block) one stage deeper than sm_80 (A100:
    164 KB), and the 128x256 tile on sm_90 only. Decode (M <= 16): the weight stream is
    everything, so tiles stay 16 rows and the K split fills the SMs 2 or 4 programs deep.
    Candidates that do not fit are skipped at tuning time (Triton's OutOfResources)."""
    hopper = capability >= (9, 0)

    def cfg(bm, bn, bk, warps=4):
        stages = (4 if bk > 64 else 5) if hopper else (3 if bk > 64 else 4)
        return {
            "BLOCK_M": bm,
            "BLOCK_N": bn,
            "BLOCK_K": bk,
            "num_warps": warps,
            "num_stages": stages,
        }

    out = []
    if M <= 16:
        for bn, bk in ((32, 128), (64, 128), (64, 256), (128, 128)):
            for per_sm in (2, 4):
                out.append(
                    _finish(cfg(16, bn, bk), K, group, _fill_split(N, K, bn, bk, sms, per_sm))
                )
    elif M <= 64:
        for bm, bn, bk in ((32, 64, 128), (32, 128, 64), (64, 64, 128), (64, 128, 64)):
            out += [_finish(cfg(bm, bn, bk), K, group, split) for split in (1, 2)]
    else:
        tiles = [(64, 128, 64, 4), (128, 64, 64, 4), (128, 128, 64, 8), (128, 128, 32, 4)]
        if hopper:
            tiles.append((128, 256, 64, 8))
        out = [_finish(cfg(*t), K, group, 1) for t in tiles]
    unique = {tuple(sorted(c.items())): c for c in out}  # small N or K collapses splits
    return list(unique.values())
