"""Block-sparse matmul against dense and torch's BSR on CPU (fp32), with pytest-benchmark.

    pytest bench/bench_bsr.py --benchmark-only
    greenops bench --ops bsr --shapes llm          # the same cases as one ratio table
    python bench/bench_bsr.py [--budget S]         # int8 blocks vs fp32 blocks vs dense, W8A8
    python bench/bench_bsr.py --bf16               # bf16 x and blocks vs dense bf16
    python bench/bench_bsr.py --train              # a bf16 training step's three products

Shapes: N = K = 4096; M in {1, 256, 2048}; sparsity 50 / 75 / 90%; blocks 32 and 64
(greenops/bench/bsr.py). Baselines in the same run: dense torch.matmul in the same dtype and
torch's own BSR (W.to_sparse_bsr((b, b)) @ x.T). Ours also with int8 blocks (per-channel scales),
and W8A8 (x quantized per row in the call) against torch's dense int8 GEMM (torch._int_mm) with
the same quantization.
"""

import pytest

import greenops
from greenops.bench import shapes_for
from greenops.bench.bsr import cases
from greenops.bench.core import pytest_benchmark_case

SHAPES = shapes_for("bsr", "llm")
IMPLS = [
    "dense_matmul",
    "greenops.bsr_mm",
    "greenops.bsr_mm_int8",
    "greenops.bsr_mm_w8a8",
    "torch_bsr",
    "torch_int_mm",
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("impl", IMPLS)
def test_bsr(benchmark, shape, impl):
    pytest_benchmark_case(benchmark, cases, shape, impl, max_rounds=30)


def int8_table(budget_s: float = 3.0, ms=(1, 4, 256)) -> str:
    """int8 blocks against fp32 blocks and dense (fp32 x), and W8A8 against torch's dense int8
    GEMM, timed in the same rounds."""
    from greenops.bench.bsr import SparseShape
    from greenops.bench.core import time_cases

    lines = [
        "| M, block, sparsity | dense ms | fp32 blocks ms (x dense) | int8 blocks ms (x dense) "
        "| int8 vs fp32 blocks | W8A8 ms (x dense) | torch._int_mm W8A8 ms | W8A8 x _int_mm |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for M in ms:
        for b in (32, 64):
            for sp in (0.5, 0.9):
                shape = SparseShape(M, 4096, 4096, b, sp)
                cs = [c for c in cases(shape, "cpu") if "torch_bsr" not in c.name]
                t = time_cases(cs, "cpu", budget_s)
                ms_ = {c.name.split(":")[1]: t[c.name] * 1e3 for c in cs}
                d, f, q = ms_["dense_matmul"], ms_["greenops.bsr_mm"], ms_["greenops.bsr_mm_int8"]
                a8, im = ms_["greenops.bsr_mm_w8a8"], ms_.get("torch_int_mm", float("nan"))
                lines.append(
                    f"| M={M}, b{b}, {sp:.0%} | {d:.2f} | {f:.2f} ({d / f:.2f}) | {q:.2f} "
                    f"({d / q:.2f}) | {f / q:.2f}x | {a8:.2f} ({d / a8:.2f}) | {im:.2f} "
                    f"| {im / a8:.2f}x |"
                )
                print(lines[-1], flush=True)
    return "\n".join(lines)


def bf16_table(budget_s: float = 3.0, ms=(1, 256, 2048)) -> str:
    """bf16 x and blocks (AMX tiles where the CPU has them) against dense bf16 torch.matmul (AMX
    through oneDNN here), timed in the same rounds."""
    import torch

    from greenops.bench.core import Case, time_cases
    from greenops.sparse import BlockSparseWeight, bsr_mm

    lines = [
        f"CPU path {greenops._ext.load().cpu_isa()}",
        "| M, block, sparsity | dense bf16 ms | ours bf16 ms | x dense bf16 |",
        "|---|---:|---:|---:|",
    ]
    torch.manual_seed(0)
    w = torch.randn(4096, 4096)
    for M in ms:
        x = torch.randn(M, 4096).bfloat16()
        for b in (32, 64):
            for sp in (0.5, 0.9):
                sw = BlockSparseWeight.from_dense(w, (b, b), sparsity=sp).to(dtype=torch.bfloat16)
                wd = sw.to_dense()
                cs = [
                    Case("bsr", "dense", lambda x=x, wd=wd: x @ wd.T, 0, 0, "bf16", True),
                    Case("bsr", "ours", lambda x=x, sw=sw: bsr_mm(x, sw), 0, 0, "bf16", False),
                ]
                t = time_cases(cs, "cpu", budget_s)
                d, o = t["dense"] * 1e3, t["ours"] * 1e3
                lines.append(f"| M={M}, b{b}, {sp:.0%} | {d:.2f} | {o:.2f} | {d / o:.2f} |")
                print(lines[-1], flush=True)
    return "\n".join(lines)


def train_table(budget_s: float = 3.0, ms=(256, 2048)) -> str:
    """One bf16 training step's three products, block-sparse (bsr_mm, bsr_mm_t, bsr_sddmm: AMX
    tiles where the CPU has them) against dense bf16 (x W^T, dY W, dY^T X), timed in the same
    rounds; 32 x 32 blocks, N = K = 4096."""
    import torch

    from greenops.bench.core import Case, time_cases
    from greenops.sparse import BlockSparseWeight

    lines = [
        f"CPU path {greenops._ext.load().cpu_isa()}",
        "| M, sparsity | dense fwd / dX / dW ms | ours fwd / dX / dV ms | step x dense |",
        "|---|---:|---:|---:|",
    ]
    torch.manual_seed(0)
    w = torch.randn(4096, 4096)
    ops = torch.ops.greenops
    for M in ms:
        x, dy = torch.randn(M, 4096).bfloat16(), torch.randn(M, 4096).bfloat16()
        for sp in (0.5, 0.9):
            sw = BlockSparseWeight.from_dense(w, (32, 32), sparsity=sp).to(dtype=torch.bfloat16)
            wd, (tc, tb) = sw.to_dense(), sw.transpose
            v, cr, cc = sw.values, sw.crow_indices, sw.col_indices
            fns = {
                "d_fwd": lambda x=x, wd=wd: x @ wd.T,
                "d_dx": lambda dy=dy, wd=wd: dy @ wd,
                "d_dw": lambda dy=dy, x=x: dy.T @ x,
                "fwd": lambda x=x, v=v, cr=cr, cc=cc: ops.bsr_mm(x, v, cr, cc),
                "dx": lambda dy=dy, v=v, tc=tc, tb=tb: ops.bsr_mm_t(dy, v, tc, tb),
                "dv": lambda dy=dy, x=x, cr=cr, cc=cc: ops.bsr_sddmm(dy, x, cr, cc, 32, 32),
            }
            cs = [Case("bsr", n, f, 0, 0, "bf16", n.startswith("d_")) for n, f in fns.items()]
            t = {n: s * 1e3 for n, s in time_cases(cs, "cpu", budget_s).items()}
            dense, ours = t["d_fwd"] + t["d_dx"] + t["d_dw"], t["fwd"] + t["dx"] + t["dv"]
            lines.append(
                f"| M={M}, {sp:.0%} | {t['d_fwd']:.1f} / {t['d_dx']:.1f} / {t['d_dw']:.1f} | "
                f"{t['fwd']:.1f} / {t['dx']:.1f} / {t['dv']:.1f} | {dense / ours:.2f} |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="block-sparse tables on CPU: int8 / W8A8, or bf16")
    ap.add_argument("--budget", type=float, default=3.0, help="seconds per shape")
    ap.add_argument("--bf16", action="store_true", help="bf16 x and blocks vs dense bf16 instead")
    ap.add_argument("--train", action="store_true", help="a bf16 training step's products instead")
    args = ap.parse_args()
    (train_table if args.train else bf16_table if args.bf16 else int8_table)(args.budget)
