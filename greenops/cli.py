"""The `greenops` command."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="greenops", description=__doc__)
    sub = parser.add_subparsers(dest="command_name", required=True)
    p_info = sub.add_parser("info", help="versions, what was built, which backend serves each op")
    p_info.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_demo = sub.add_parser(
        "demo",
        help="quantize and sparsify a matrix and a small model, time them against float, "
        "report energy and carbon",
    )
    p_demo.add_argument("--size", type=int, default=4096, help="N = K of the weight (default 4096)")
    p_demo.add_argument(
        "--tokens", type=int, default=16, help="M, rows of the activation (default 16)"
    )
    p_demo.add_argument(
        "--train-steps",
        type=int,
        default=300,
        help="float training steps of the model comparison; each variant fine-tunes half as "
        "many (default 300; 0 skips it)",
    )
    p_bench = sub.add_parser("bench", help="time every op family against its baselines")
    p_bench.add_argument(
        "--ops", default="int8,int4,bsr", help="comma-separated families (default: all)"
    )
    p_bench.add_argument(
        "--shapes",
        default=None,
        choices=["tiny", "small", "llm"],
        help="shape set (default: small; tiny with --quick)",
    )
    p_bench.add_argument(
        "--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available"
    )
    p_bench.add_argument("--quick", action="store_true", help="smoke run: short timings")
    p_bench.add_argument("--budget", type=float, default=None, help="seconds per shape")
    p_bench.add_argument(
        "--no-energy",
        action="store_true",
        help="skip energy per op (NVML on GPU; on CPU RAPL, or the labelled estimate)",
    )
    p_bench.add_argument("--json", metavar="FILE", help="write results JSON")
    p_bench.add_argument("--markdown", metavar="FILE", help="write the tables as Markdown")
    p_bench.add_argument("--plot", metavar="FILE.png", help="write a speedup plot")
    from .carbon import cli as carbon_cli
    from .carbon import run_cli
    from .power import cli as power_cli

    power_cli.add_parsers(sub)
    run_cli.add_parser(sub)
    carbon_cli.add_parser(sub)
    args = parser.parse_args(argv)

    if args.command_name == "carbon":
        return carbon_cli.main(args)
    if args.command_name == "power":
        return power_cli.main(args)
    if args.command_name == "run":
        return run_cli.main(args)
    if args.command_name == "info":
        from .info import format_info, info

        d = info()
        print(json.dumps(d, indent=2) if args.json else format_info(d))
        return 0
    if args.command_name == "demo":
        from .demo import run

        return run(size=args.size, tokens=args.tokens, train_steps=args.train_steps)
    if args.command_name == "bench":
        return _bench(args)
    return 2


def _bench(args) -> int:
    import torch

    from . import bench

    if args.plot:  # before the run, not after it
        from ._optional import cli_needs_pyplot

        cli_needs_pyplot("greenops bench --plot")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    shapes = args.shapes or ("tiny" if args.quick else "small")
    results = bench.run(
        [o for o in args.ops.split(",") if o],
        shapes,
        device,
        quick=args.quick,
        energy=not args.no_energy,
        budget_s=args.budget,
        progress=sys.stderr.isatty(),
    )
    table = bench.markdown(results)
    if args.json:
        bench.dump_json(results, args.json)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    if args.plot:
        bench.plot(results, args.plot)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
