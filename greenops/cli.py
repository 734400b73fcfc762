"""The `greenops` command."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="greenops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="versions, what was built, which backend serves each op")
    p_info.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_demo = sub.add_parser(
        "demo", help="quantize a matrix, run int8 matmuls, time them against float"
    )
    p_demo.add_argument("--size", type=int, default=4096, help="N = K of the weight (default 4096)")
    p_demo.add_argument(
        "--tokens", type=int, default=16, help="M, rows of the activation (default 16)"
    )
    args = parser.parse_args(argv)

    if args.command == "info":
        from .info import format_info, info

        d = info()
        print(json.dumps(d, indent=2) if args.json else format_info(d))
        return 0
    if args.command == "demo":
        from .demo import run

        return run(size=args.size, tokens=args.tokens)
    return 2


if __name__ == "__main__":
    sys.exit(main())
