"""The training demonstration at full length (greenops.train_demo.compare): float, QAT int8,
QAT int4 (LSQ), PTQ int4 and 75% block-sparse on one MLP and task; accuracy, train-step and
inference time, energy (NVML on a GPU, the simulated device elsewhere), weight bytes.

    python bench/bench_train.py [--steps 1200] [--finetune 600] [--hidden 1024] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from greenops import train_demo


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--finetune", type=int, default=600)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--group-size", type=int, default=32)
    ap.add_argument("--json", help="write the rows here")
    a = ap.parse_args(argv)
    rows, label = train_demo.compare(
        steps=a.steps, finetune=a.finetune, hidden=a.hidden, group_size=a.group_size
    )
    print(train_demo.format_rows(rows, label))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"energy": label, "rows": [dataclasses.asdict(r) for r in rows]}, f, indent=1)
    return 0


def test_bench_train_smoke(tmp_path):
    assert (
        main(
            [
                "--steps",
                "20",
                "--finetune",
                "10",
                "--hidden",
                "64",
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    assert len(json.load(open(tmp_path / "r.json"))["rows"]) == 5


if __name__ == "__main__":
    sys.exit(main())
