"""Writes greenops/ops/cuda_auto.json from a GPU benchmark run (`greenops bench --device cuda
--json results.json`, bench/gpu_check.sh): for each op with both a Triton and a CUDA C++
kernel, the faster one at each measured M (the majority over that M's (N, K) shapes; a tie
keeps Triton), as rules {max_m, backend} in M order. 'auto' then follows them per call.

    python scripts/cuda_auto_table.py results.json [--out greenops/ops/cuda_auto.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# op -> (the Triton case, the CUDA C++ case) in the benchmark's rows
PAIRS = {
    "int8_mm": ("greenops.int8_mm", "greenops.int8_mm[cuda]"),
    "int4_weight_mm": ("greenops.int4_weight_mm_bf16", "greenops.int4_weight_mm_bf16[cuda]"),
    "bsr_mm": ("greenops.bsr_mm", "greenops.bsr_mm[cuda]"),
}


def rules_from(results: dict) -> dict:
    ms = {}
    for row in results["rows"]:
        ms[(row["shape"], row["impl"])] = row["ms"]
    table = {}
    for op, (tri, cpp) in PAIRS.items():
        votes = collections.defaultdict(lambda: [0, 0])  # M -> [triton wins, cuda wins]
        for shape, impl in ms:
            if impl != cpp or (shape, tri) not in ms:
                continue
            m = int(re.match(r"M(\d+)", shape).group(1))
            votes[m][ms[(shape, cpp)] < ms[(shape, tri)]] += 1
        rules = []
        for m in sorted(votes):
            backend = "cuda" if votes[m][1] > votes[m][0] else "triton"
            if rules and rules[-1]["backend"] == backend:
                rules[-1]["max_m"] = m
            else:
                rules.append({"max_m": m, "backend": backend})
        if rules:
            table[op] = rules
    return table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    bundled = os.path.join(ROOT, "greenops", "ops", "cuda_auto.json")
    ap.add_argument("--out", default=bundled)
    a = ap.parse_args(argv)
    with open(a.results) as f:
        results = json.load(f)
    env = results.get("environment", {})
    with open(bundled) as f:
        doc = json.load(f)
    gpu = env.get("machine", {}).get("gpu", "?")
    doc["source"] = f"greenops bench on {gpu}, {env.get('date', '?')}, commit {env.get('git_sha')}"
    doc["ops"] = rules_from(results)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(json.dumps(doc["ops"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
