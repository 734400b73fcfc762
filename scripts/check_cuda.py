"""Compiles every torch-free CUDA source in csrc/cuda with plain nvcc for sm_80 and sm_90a and
reads ptxas's report: fails if a kernel spills registers or uses a stack frame, if ptxas says it
serialized a kernel's wgmma or injected waits into it (accumulators touched while a wgmma
runs), or if a kernel source includes a torch header (only bindings.cpp may). Needs nvcc only
(no GPU, no torch).

    python scripts/check_cuda.py [--nvcc PATH] [--json FILE]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHS = {
    "sm_80": "-gencode=arch=compute_80,code=sm_80",
    # sm_90a, not sm_90: Hopper's own instructions (wgmma, setmaxnreg) need the "a" target
    "sm_90a": "-gencode=arch=compute_90a,code=sm_90a",
}
TORCH_INCLUDE = re.compile(r"#\s*include\s*[<\"](torch|ATen|c10)/")
ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(\w+)'")
PROPS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
REGS = re.compile(r"Used (\d+) registers")
# ptxas's C75xx notes that it made a kernel's wgmma wait: "(C7510) Potential Performance Loss:
# wgmma.mma_async instructions are serialized due to ... in the function '<name>'", "(C7517)
# warpgroup.wait is injected ... to allow use of registers defined by GMMA in function '<name>'"
SERIALIZED = re.compile(r"\(C75\d\d\)[^\n]*?(?:wgmma|warpgroup|GMMA)[^\n]*?function '([^']+)'")


def parse_ptxas(text: str) -> list[dict]:
    """One row per kernel (entry function) of ptxas -v's report."""
    rows, cur = [], None
    for line in text.splitlines():
        if m := SERIALIZED.search(line):
            hit = [r for r in rows if r["kernel"] == m.group(1)]
            for r in hit or [{"kernel": m.group(1)}]:
                r["wgmma_serialized"] = True
                if not hit:
                    rows.append(r)
        elif m := ENTRY.search(line):
            cur = {"kernel": m.group(1), "arch": m.group(2)}
            rows.append(cur)
        elif cur is not None and (m := PROPS.search(line)):
            cur.update(
                stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3))
            )
        elif cur is not None and (m := REGS.search(line)):
            cur["registers"] = int(m.group(1))
    return rows


def short_name(mangled: str) -> str:
    """`int8_mm_kernel<float>` from the mangled name (c++filt where there is one)."""
    try:
        name = subprocess.run(
            ["c++filt", mangled], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return mangled
    name = re.sub(r"(\w+::|\(anonymous namespace\)::)", "", name).removeprefix("void ")
    return name.split("(")[0]


def kernel_sources() -> list[str]:
    return sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")))


def torch_free_violations() -> list[str]:
    bad = []
    for path in sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*"))):
        if os.path.basename(path) == "bindings.cpp":
            continue
        with open(path) as f:
            if TORCH_INCLUDE.search(f.read()):
                bad.append(os.path.relpath(path, ROOT))
    return bad


def compile_one(nvcc: str, src: str, arch: str, flag: str, tmp: str) -> list[dict]:
    out = os.path.join(tmp, f"{os.path.basename(src)}.{arch}.o")
    cmd = [
        nvcc,
        "-std=c++17",
        "-O3",
        flag,
        "-Xptxas",
        "-v",
        "-c",
        src,
        "-o",
        out,
        "-I",
        os.path.join(ROOT, "csrc", "include"),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"nvcc failed for {src} ({arch}):\n{r.stdout}{r.stderr}")
    rows = parse_ptxas(r.stdout + r.stderr)
    for row in rows:
        row["source"] = os.path.relpath(src, ROOT)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nvcc", default=shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")
    ap.add_argument("--json", help="write the per-kernel report here")
    a = ap.parse_args(argv)
    bad = torch_free_violations()
    if bad:
        print("torch headers in kernel sources (only bindings.cpp may include them):", *bad)
        return 1
    if not os.path.exists(a.nvcc):
        print(f"nvcc not found ({a.nvcc})")
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for src in kernel_sources():
            for arch, flag in ARCHS.items():
                got = compile_one(a.nvcc, src, arch, flag, tmp)
                if not got:
                    print(f"{src} ({arch}): no kernel in ptxas's report")
                    return 1
                rows += got
    failed = [
        r
        for r in rows
        if r.get("stack", 1)
        or r.get("spill_stores", 1)
        or r.get("spill_loads", 1)
        or r.get("wgmma_serialized")
    ]
    print(f"{'kernel':<60} {'arch':<7} {'regs':>4} {'stack':>5} {'spills':>6}")
    for r in rows:
        name = f"{os.path.basename(r['source'])}: {short_name(r['kernel'])}"[:60]
        print(
            f"{name:<60} {r['arch']:<7} {r.get('registers', '?'):>4} {r.get('stack', '?'):>5} "
            f"{r.get('spill_stores', 0) + r.get('spill_loads', 0):>6}"
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    if failed:
        for r in failed:
            if r.get("wgmma_serialized"):
                print(f"{short_name(r['kernel'])}: ptxas serialized its wgmma instructions")
        print(
            f"{len(failed)} kernel(s) spill, use a stack frame or serialize wgmma: the build fails"
        )
        return 1
    print(f"ok: {len(rows)} kernels, no spills, no stack frames ({', '.join(ARCHS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
