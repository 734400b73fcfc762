"""Quantized matmuls against plain bf16 and fp32 at every batch size, on CPU: the table of
docs/kernels.md "Batch sizes" (issue: every quantized path >= 1.0x bf16 matmul at every M).

    python bench/bench_batch.py                       # M in {1, 16, 32, 128, 256, 2048}, 4096^2
    python bench/bench_batch.py --shapes 11008x4096 --m 1 32 256 --json out.json

Every row of one shape is timed round-robin in the same run (greenops.bench.core.time_steady:
repeats that spread beyond its bound are retried, then marked noisy), with the machine's
ceilings measured at the start and the end (a drift beyond CEILING_DRIFT marks the run
DISTURBED). Ratios are against bf16 (torch's oneDNN path, the best library path for the
dtype) and fp32 (MKL); "% peak" against the hardware peak of the dtype class the row computes
in (its register-resident loop, greenops.bench.core.hardware_peaks).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

import greenops
from greenops import ops
from greenops.bench.core import (
    CEILING_DRIFT,
    Case,
    ceilings,
    drift,
    environment,
    peak_of,
    time_steady,
)

GROUP = 128


def cases(M: int, N: int, K: int) -> list[Case]:
    torch.manual_seed(0)
    x, w = torch.randn(M, K), torch.randn(N, K)
    xb, wb = x.bfloat16(), w.bfloat16()
    w_q, w_s = ops.quantize_int8(w)
    packed, scales, zeros = ops.quantize_int4(w, GROUP)
    mac = 2 * M * N * K

    def case(name, fn, peak):
        return Case("batch", name, fn, mac, 0, peak, baseline=name.endswith("matmul"))

    def fp32_as_bf16(fn):  # the user's opt-in for bf16 in fp32 matmuls (docs/kernels.md)
        def run():
            old = torch.backends.mkldnn.matmul.fp32_precision
            torch.backends.mkldnn.matmul.fp32_precision = "bf16"
            try:
                return fn()
            finally:
                torch.backends.mkldnn.matmul.fp32_precision = old

        return run

    return [
        case("fp32 matmul", lambda: x @ w.T, "fp32"),
        case("bf16 matmul", lambda: xb @ wb.T, "bf16"),
        case(
            "W8A8 (quantize + int8_mm, bf16 out)",
            lambda: ops.int8_mm(*ops.quantize_int8(xb), w_q, w_s, out_dtype=torch.bfloat16),
            "int8",
        ),
        case("W8A16, bf16 x", lambda: ops.int8_weight_mm(xb, w_q, w_s), "bf16"),
        case(
            "W4A16 g128, bf16 x",
            lambda: ops.int4_weight_mm(xb, packed, scales, zeros, GROUP),
            "bf16",
        ),
        case(
            "W4A16 g128, fp32 x",
            lambda: ops.int4_weight_mm(x, packed, scales, zeros, GROUP),
            "fp32",
        ),
        case(
            "W4A16 g128, fp32 x as bf16",
            fp32_as_bf16(lambda: ops.int4_weight_mm(x, packed, scales, zeros, GROUP)),
            "bf16",
        ),
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", nargs="+", default=["4096x4096"], help="NxK weight shapes")
    p.add_argument("--m", nargs="+", type=int, default=[1, 16, 32, 128, 256, 2048])
    p.add_argument("--budget", type=float, default=3.0, help="seconds of timing per shape")
    p.add_argument("--json", help="write the rows and ceilings here")
    a = p.parse_args(argv)
    start = ceilings("cpu")
    rows = []
    for shape in a.shapes:
        N, K = (int(v) for v in shape.split("x"))
        for M in a.m:
            cs = cases(M, N, K)
            t, spreads, noisy = time_steady(cs, "cpu", a.budget)
            for c in cs:
                rows.append(
                    {
                        "M": M,
                        "N": N,
                        "K": K,
                        "impl": c.name,
                        "ms": t[c.name] * 1e3,
                        "frac_peak": c.ops / t[c.name] / 1e9 / peak_of(start, c.peak),
                        "x_bf16": t["bf16 matmul"] / t[c.name],
                        "x_fp32": t["fp32 matmul"] / t[c.name],
                        "spread": spreads[c.name],
                        "noisy": noisy,
                    }
                )
            print(f"M={M} N={N} K={K} done", file=sys.stderr, flush=True)
    end = ceilings("cpu")
    moved = drift(start, end)
    disturbed = any(abs(v) > CEILING_DRIFT for v in moved.values())
    env = environment("cpu")
    print(
        f"{env['machine']['processor']}, {env['machine']['cpu_threads']} threads, CPU path "
        f"{greenops._ext.load().cpu_isa()}, torch {torch.__version__}; hardware peaks: "
        + ", ".join(
            f"{c} {start[f'hw_{c}_gops']:.0f} GOP/s ({start[f'hw_{c}_path']})"
            for c in ("int8", "bf16", "fp32")
            if start.get(f"hw_{c}_gops")
        )
        + f"; read {start['read_gbps']:.1f} GB/s"
    )
    if disturbed:
        print(f"**DISTURBED RUN** (ceilings moved: {moved}); rerun on a quiet machine")
    print(
        "\n| M | N x K | impl | ms | x bf16 | x fp32 | % peak |\n|---:|---|---|---:|---:|---:|---:|"
    )
    for r in rows:
        ratio = "noisy" if r["noisy"] else None
        print(
            f"| {r['M']} | {r['N']}x{r['K']} | {r['impl']} | {r['ms']:.3f} | "
            f"{ratio or format(r['x_bf16'], '.2f')} | {ratio or format(r['x_fp32'], '.2f')} | "
            f"{100 * r['frac_peak']:.0f} |"
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {
                    "environment": env,
                    "ceilings": start,
                    "ceilings_end": end,
                    "drift": moved,
                    "disturbed": disturbed,
                    "rows": rows,
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
