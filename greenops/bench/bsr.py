"""Block-sparse benchmark cases: greenops.bsr_mm against dense torch.matmul (same dtype) and
torch's own BSR matmul (W.to_sparse_bsr(...) @ x.T), on one pruned weight per case set."""

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

    def case(name, fn, dense, versus=None, w_esz=None):
        weights = N * K if dense else nnz
        return Case(
            FAMILY,
            f"{s}:{name}",
            fn,
            2 * M * weights,  # multiply-adds actually done
            (M * K + M * N) * esz + weights * (w_esz or esz),
            peak,
            baseline=versus is None,
            versus=versus,
        )

    q = sw.quantize_int8()  # int8 blocks, per-channel scales: 1/4 (fp32) or 1/2 (bf16) the bytes
    out = [
        case("dense_matmul", lambda: x @ wd.T, True),
        case("greenops.bsr_mm", lambda: bsr_mm(x, sw), False, "dense_matmul"),
        case("greenops.bsr_mm_int8", lambda: bsr_mm(x, q), False, "dense_matmul", w_esz=1),
    ]
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
