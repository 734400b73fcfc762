"""Block-sparse benchmark cases: greenops.bsr_mm against dense torch.matmul (same dtype) and
torch's own BSR matmul (W.to_sparse_bsr(...) @ x.T), on one pruned weight per case set; also
W8A8 (int8 x and blocks) against torch's dense int8 GEMM (torch._int_mm) with the same per-row
quantization of x."""

from __future__ import annotations

import dataclasses

import torch

from ..ops import _backend
from ..sparse import BlockSparseWeight, bsr_mm
from .core import Case, Shape

FAMILY = "bsr"


@dataclasses.dataclass(frozen=True)
class SparseShape(Shape):
    block: int = 32
    sparsity: float = 0.5

    def __str__(self) -> str:
        return f"{super().__str__()}-b{self.block}-s{round(100 * self.sparsity)}"


def cases(s: SparseShape, device: str) -> list[Case]:
    torch.manual_seed(0)
    M, N, K, b = s.M, s.N, s.K, s.block
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    x = torch.randn(M, K, device=device, dtype=dtype)
    w = torch.randn(N, K, device=device, dtype=dtype)
    sw = BlockSparseWeight.from_dense(w, b, sparsity=s.sparsity)
    wd = sw.to_dense()
    nnz = sw.nnz_blocks * b * b
    esz = x.element_size()
    peak = "fp32" if dtype == torch.float32 else "bf16"

    def case(name, fn, dense, versus=None, w_esz=None, x_esz=None, ceiling=None):
        weights = N * K if dense else nnz
        return Case(
            FAMILY,
            f"{s}:{name}",
            fn,
            2 * M * weights,  # multiply-adds actually done
            M * K * (x_esz or esz) + M * N * esz + weights * (w_esz or esz),
            ceiling or peak,
            baseline=versus is None,
            versus=versus,
        )

    q = sw.quantize_int8()  # int8 blocks, per-channel scales: 1/4 (fp32) or 1/2 (bf16) the bytes
    out = [
        case("dense_matmul", lambda: x @ wd.T, True),
        case("greenops.bsr_mm", lambda: bsr_mm(x, sw), False, "dense_matmul"),
        case("greenops.bsr_mm_int8", lambda: bsr_mm(x, q), False, "dense_matmul", w_esz=1),
    ]
    # W8A8: x quantized per row in the call, as BlockSparseLinear(int8_act=True) does
    quant = torch.ops.greenops.quantize_int8
    w_q, w_s = quant(w, -1)
    w_qt = w_q.t()

    def w8a8():
        x_q, x_s = quant(x, -1)
        return bsr_mm(x_q, q, x_scales=x_s)

    def int_mm():  # torch's dense W8A8: its int8 GEMM (oneDNN / cuBLASLt), the same scalings
        x_q, x_s = quant(x, -1)
        return torch._int_mm(x_q, w_qt) * x_s[:, None] * w_s

    out.append(case("greenops.bsr_mm_w8a8", w8a8, False, "torch_int_mm", 1, 1, "int8"))
    try:
        int_mm()
        out.append(case("torch_int_mm", int_mm, True, None, 1, 1, "int8"))
    except RuntimeError:  # shapes its kernel does not take (CUDA: M <= 16)
        pass
    if (
        device != "cpu" and "bsr_mm" in _backend.CUDA_CPP and b in (32, 64)
    ):  # the CUDA C++ forward too
        out.append(
            case(
                "greenops.bsr_mm[cuda]",
                lambda: bsr_mm(x, sw, backend="cuda"),
                False,
                "dense_matmul",
            )
        )
    try:
        tb = wd.to_sparse_bsr((b, b))
        fn = lambda: (tb @ x.T).T  # noqa: E731
        fn()
        out.append(case("torch_bsr", fn, False))
    except (RuntimeError, NotImplementedError):
        pass
    return out
