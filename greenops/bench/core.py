"""Benchmark machinery shared by `greenops bench`, bench/*.py and bench/gpu_check.sh: cases,
timers (CPU: round-robin medians; GPU: triton.testing.do_bench medians), the machine's
measured ceilings, energy per op (GPU, NVML counter, read-only), results as JSON/Markdown/PNG."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from .._optional import pyplot

SCHEMA = "greenops-bench/1"


@dataclasses.dataclass(frozen=True)
class Shape:
    M: int
    N: int
    K: int

    def __str__(self) -> str:
        return f"M{self.M}-N{self.N}-K{self.K}"


@dataclasses.dataclass
class Case:
    """One timed callable. `peak` names the ceiling its GOP/s is compared with ("int8", "bf16",
    "fp32"); `bytes` is the memory it must move at least (weights + activations + output);
    `versus`, for our cases, the baseline that computes the same thing (the plotted ratio)."""

    family: str
    name: str
    fn: Callable[[], object]
    ops: int  # multiply-adds x 2
    bytes: int
    peak: str
    baseline: bool
    versus: str | None = None


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# A timing whose repeats spread more than this (interquartile range / median) is noise: on a
# shared 2-core machine, descheduled threads made baselines "collapse" to 8.0 or 16.0 ms (whole
# scheduler ticks) and printed 150-830x "speedups". A quiet 2-vCPU VM spreads up to ~0.2
# (measured on the AMD EPYC Zen 3 VM for a 16x4096x4096 fp32 matmul beside greenops' ops).
NOISE_SPREAD = 0.5
# The same ceiling measured at the start and the end of a run moving by more than this: the
# machine's speed changed under the run, and every ratio in it is suspect.
CEILING_DRIFT = 0.25


def _spread(samples: list[float]) -> float:
    q = statistics.quantiles(samples, n=4) if len(samples) >= 2 else [samples[0]] * 3
    return (q[2] - q[0]) / q[1] if q[1] > 0 else 0.0


def time_cases(
    cases: list[Case], device: str, budget_s: float, spreads: dict | None = None
) -> dict[str, float]:
    """Median seconds per case (and, into `spreads`, each case's interquartile range over its
    median). On CPU the cases run round-robin, so that drift in a shared machine's speed (seen
    here: +-30% over minutes) hits ours and the baselines alike."""
    if device == "cuda":
        from triton.testing import do_bench

        rep_ms = max(25, int(budget_s * 1000 / max(len(cases), 1)))
        out = {}
        for c in cases:
            q1, med, q3 = do_bench(c.fn, rep=rep_ms, quantiles=[0.25, 0.5, 0.75])
            out[c.name] = med / 1e3
            if spreads is not None:
                spreads[c.name] = (q3 - q1) / med if med > 0 else 0.0
        return out
    for c in cases:
        c.fn()  # warm-up: first-call allocations, thread pool start
    times: dict[str, list[float]] = {c.name: [] for c in cases}
    start = time.perf_counter()
    while min(len(t) for t in times.values()) < 3 or (
        time.perf_counter() - start < budget_s and min(len(t) for t in times.values()) < 50
    ):
        for c in cases:
            t0 = time.perf_counter()
            c.fn()
            times[c.name].append(time.perf_counter() - t0)
    if spreads is not None:
        spreads.update({name: _spread(t) for name, t in times.items()})
    return {name: statistics.median(t) for name, t in times.items()}


def time_steady(cases: list[Case], device: str, budget_s: float, retries: int = 2):
    """(medians, spreads, noisy): time_cases repeated up to `retries` more times while any
    case spreads beyond NOISE_SPREAD, keeping the steadiest attempt; noisy says whether even
    that one did."""
    best = None
    for _ in range(retries + 1):
        spreads: dict[str, float] = {}
        t = time_cases(cases, device, budget_s, spreads)
        worst = max(spreads.values(), default=0.0)
        if best is None or worst < best[2]:
            best = (t, spreads, worst)
        if worst <= NOISE_SPREAD:
            break
    t, spreads, worst = best
    return t, spreads, worst > NOISE_SPREAD


def drift(start: dict, end: dict) -> dict[str, float]:
    """Relative change of each measured ceiling between the start and the end of a run."""
    keys = ("copy_gbps", "read_gbps", "int8_gops", "bf16_gops", "fp32_gops")
    keys += tuple(f"hw_{k}_gops" for k in ("int8", "bf16", "fp32"))
    return {k: end[k] / start[k] - 1 for k in keys if start.get(k) and end.get(k)}


# The instruction whose register-resident loop is the CPU's ceiling per dtype class, best first
# (csrc/cpu/peaks.cpp); a class none of them serves has no hardware ceiling (None).
_HW_PEAKS = {"int8": ("amx_int8", "vnni"), "bf16": ("amx_bf16", "bf16dot"), "fp32": ("fma",)}


def _llc_bytes() -> int:
    """The last-level cache's size from sysfs (0 where unknown)."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    for entry in os.listdir(base) if os.path.isdir(base) else []:
        try:
            with open(f"{base}/{entry}/size") as f:
                text = f.read().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        best = max(best, int(digits) * scale if digits.isdigit() else 0)
    return best


def hardware_peaks(seconds: float = 0.5) -> dict:
    """{"hw_<class>_gops": GOP/s, "hw_<class>_path": instruction} of the CPU's best instruction
    per dtype class on all threads, None where it has none (or the extension is not built)."""
    from .. import _ext

    out: dict = {}
    for cls, kinds in _HW_PEAKS.items():
        out[f"hw_{cls}_gops"] = out[f"hw_{cls}_path"] = None
        if not _ext.available():
            continue
        for kind in kinds:
            g = _ext.load().cpu_peak_gops(kind, seconds)
            if g > 0:
                out[f"hw_{cls}_gops"], out[f"hw_{cls}_path"] = g, kind
                break
    return out


def ceilings(device: str, quick: bool = False) -> dict[str, float]:
    """The machine's measured ceilings, in the same run: copy bandwidth (read + write bytes of
    a DRAM-sized copy), read bandwidth beyond the last-level cache (a sum over a buffer at
    least twice its size), the best library matmul per dtype class, and on CPU the hardware's
    arithmetic peak per dtype class (hardware_peaks)."""
    n = 1024 if quick else (8192 if device == "cuda" else 2048)
    copy_elems = 2**22 if quick else (2**28 if device == "cuda" else 2**27)  # fp32 elements
    read_bytes = 2**25 if quick else min(2**31, max(2**28, 2 * _llc_bytes()))
    src = torch.empty(copy_elems, device=device)
    big = torch.ones(read_bytes // 4, device=device)
    a8 = torch.randint(-127, 128, (n, n), dtype=torch.int8, device=device)
    af = torch.randn(n, n, device=device)
    ab = af.bfloat16()
    mk = [
        Case("ceiling", "copy", lambda: src.clone(), 0, 2 * src.numel() * 4, "", True),
        Case("ceiling", "read", lambda: big.sum(), 0, read_bytes, "", True),
        Case("ceiling", "int8", lambda: torch._int_mm(a8, a8), 2 * n**3, 0, "", True),
        Case("ceiling", "bf16", lambda: ab @ ab, 2 * n**3, 0, "", True),
        Case("ceiling", "fp32", lambda: af @ af, 2 * n**3, 0, "", True),
    ]
    t = time_cases(mk, device, budget_s=2 if quick else 10)
    g = {c.name: c for c in mk}
    out = {
        "copy_gbps": g["copy"].bytes / t["copy"] / 1e9,
        "read_gbps": read_bytes / t["read"] / 1e9,
        "int8_gops": g["int8"].ops / t["int8"] / 1e9,
        "bf16_gops": g["bf16"].ops / t["bf16"] / 1e9,
        "fp32_gops": g["fp32"].ops / t["fp32"] / 1e9,
        "matmul_size": n,
        "copy_bytes": g["copy"].bytes,
        "read_bytes": read_bytes,
    }
    if device == "cpu":
        out.update(hardware_peaks(0.1 if quick else 0.5))
    return out


def peak_of(ceil: dict, peak: str) -> float:
    """The ceiling a case of dtype class `peak` is a fraction of: the hardware's where measured,
    else the best library matmul's (GPUs; a CPU class without an instruction of its own)."""
    return ceil.get(f"hw_{peak}_gops") or ceil[f"{peak}_gops"]


def energy_per_call_j(
    fn: Callable[[], object], device: str, seconds: float = 1.0
) -> tuple[float | None, str | None]:
    """(joules per call, basis) over about `seconds` of calls: on CUDA from NVML's energy
    counter (read-only; basis "measured", or (None, None) without one); on CPU from the CPU's
    energy domains (power.cpus("meter"): RAPL package + DRAM, basis "measured", or the
    labelled estimate, basis "estimated")."""
    if device == "cpu":
        return _cpu_energy_per_call_j(fn, seconds)
    if device != "cuda":
        return None, None
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(_nvml_index())
        read_mj = lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # noqa: E731
        read_mj()
    except Exception:  # no NVML, no counter: the figure is absent, not guessed
        return None, None
    fn()
    sync(device)
    t0 = time.perf_counter()
    calls = 0
    e0 = read_mj()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            fn()
        calls += 10
        sync(device)
    return (read_mj() - e0) / 1e3 / calls, "measured"


def _cpu_energy_per_call_j(fn, seconds: float) -> tuple[float | None, str | None]:
    from ..power import EnergyMeter, cpus

    meter = EnergyMeter(cpus("meter"))
    fn()
    calls = 0
    meter.begin("op")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        calls += 1
    m = meter.end("op")
    if m.energy_j is not None:
        return m.energy_j / calls, "measured"
    return m.estimated_energy_j / calls, "estimated"


def _nvml_index() -> int:
    """NVML index of the current CUDA device (CUDA_VISIBLE_DEVICES maps by UUID)."""
    import pynvml

    uuid = str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)
    for i in range(pynvml.nvmlDeviceGetCount()):
        nvml_uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i))
        if isinstance(nvml_uuid, bytes):
            nvml_uuid = nvml_uuid.decode()
        if nvml_uuid.removeprefix("GPU-") == uuid.removeprefix("GPU-"):
            return i
    return torch.cuda.current_device()


def _git_sha() -> str | None:
    """HEAD of the checkout greenops runs from, "-dirty" when it has uncommitted changes."""
    here = os.path.dirname(os.path.abspath(__file__))

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""

    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("-dirty" if dirty else "")) or None


def environment(device: str) -> dict:
    from ..info import info

    i = info()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": _git_sha(),
        "device": device,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_threads": torch.get_num_threads(),
            "cpu_isa": i["extension"].get("cpu_isa"),
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        },
        "versions": {
            "greenops": i["greenops"],
            "torch": i["torch"],
            "triton": i["triton"],
            "python": i["python"],
        },
    }


def measure(
    case_sets: list[list[Case]],
    device: str,
    budget_s: float,
    ceil: dict,
    energy: bool,
    progress: bool = True,
    energy_s: float = 1.0,
) -> list[dict]:
    """Times every set (one shape of one family, ours and baselines together) and returns
    result rows with ratios to each baseline of the same set."""
    rows = []
    for i, cases in enumerate(case_sets):
        label = f"{cases[0].family} {cases[0].name.split(':')[0]}"
        if progress:
            print(f"\r[{i + 1}/{len(case_sets)}] {label:<48}", end="", file=sys.stderr, flush=True)
        t, spreads, noisy = time_steady(cases, device, budget_s)
        for c in cases:
            sec = t[c.name]
            gops = c.ops / sec / 1e9
            gbps = c.bytes / sec / 1e9
            row = {
                "family": c.family,
                "shape": c.name.split(":")[0],
                "impl": c.name.split(":")[1],
                "baseline": c.baseline,
                "ms": sec * 1e3,
                "gops": gops,
                "gbps": gbps,
                "frac_peak": gops / peak_of(ceil, c.peak) if c.peak else None,
                "frac_bw": gbps / ceil.get("read_gbps", ceil["copy_gbps"]),
                "speedup": {b.name.split(":")[1]: t[b.name] / sec for b in cases if b.baseline},
                "versus": c.versus,
                "spread": spreads[c.name],
                "noisy": noisy,  # ratios of this set are not results (markdown says "noisy")
            }
            row["energy_j"], row["energy_basis"] = (
                energy_per_call_j(c.fn, device, energy_s) if energy else (None, None)
            )
            # per token: each row of the activation is one token (or sample) of a model's batch
            m = _rows_of(row["shape"])
            row["energy_per_token_j"] = row["energy_j"] / m if row["energy_j"] and m else None
            rows.append(row)
    if progress:
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr, flush=True)
    return rows


def _rows_of(shape: str) -> int | None:
    """M of a shape label "M16-N4096-K4096"."""
    head = shape.split("-")[0]
    return int(head[1:]) if head[:1] == "M" and head[1:].isdigit() else None


def markdown(results: dict) -> str:
    env, ceil = results["environment"], results["ceilings"]
    m = env["machine"]
    out = [
        f"greenops bench on {m['gpu'] or m['processor']} ({env['device']}, "
        f"{m['cpu_threads']} CPU threads, CPU path {m['cpu_isa']}), torch "
        f"{env['versions']['torch']}, triton {env['versions']['triton']}, {env['date']}, "
        f"git {env['git_sha']}",
        f"ceilings (same run): read {ceil['read_gbps']:.1f} GB/s ({ceil['read_bytes'] >> 20} MiB, "
        f"the % BW reference), copy {ceil['copy_gbps']:.1f} GB/s ({ceil['copy_bytes'] >> 20} MiB "
        f"read+written); library matmul {ceil['matmul_size']}^3: int8 {ceil['int8_gops']:.0f} "
        f"GOP/s, bf16 {ceil['bf16_gops']:.0f} GFLOP/s, fp32 {ceil['fp32_gops']:.0f} GFLOP/s",
    ]
    hw = [
        f"{cls} {ceil[f'hw_{cls}_gops']:.0f} ({ceil[f'hw_{cls}_path']})"
        for cls in _HW_PEAKS
        if ceil.get(f"hw_{cls}_gops")
    ]
    if hw:
        out.append(
            "hardware peaks (register-resident loops, all threads; the % peak reference, a "
            "class without one is % of its library matmul): " + ", ".join(hw) + " GOP/s"
        )
    noise = results.get("noise") or {}
    if noise.get("disturbed"):
        moved = ", ".join(f"{k} {v:+.0%}" for k, v in noise["ceiling_drift"].items())
        out.append(
            f"**DISTURBED RUN**: the ceilings moved during it ({moved}; bound "
            f"{CEILING_DRIFT:.0%}): something else ran; rerun on a quiet machine"
        )
    if noise.get("noisy_sets"):
        out.append(
            f"{noise['noisy_sets']} shape(s) stayed noisy after retries (repeats spread beyond "
            f"{NOISE_SPREAD:.0%} of the median): their ratios read `noisy`, not a number"
        )
    if env["device"] == "cpu":
        out.append(
            "CPU inputs are reused across calls and stay in a large L3: % BW above 100 "
            "means data served from cache faster than DRAM copies (on GPU, do_bench "
            "flushes L2 before every run)."
        )
    for family in dict.fromkeys(r["family"] for r in results["rows"]):
        rows = [r for r in results["rows"] if r["family"] == family]
        bases = list(dict.fromkeys(b for r in rows for b in r["speedup"]))
        energy = any(r["energy_j"] is not None for r in rows)
        out += [
            "",
            f"### {family}",
            "",
            "| shape | impl | ms | "
            + " | ".join(f"x {b}" for b in bases)
            + " | GOP/s | % peak | GB/s | % BW |"
            + (" mJ/call | µJ/token |" if energy else ""),
            "|---|---|---:|" + "---:|" * (len(bases) + 4) + ("---:|---:|" if energy else ""),
        ]
        for r in rows:
            ratios = " | ".join(
                ("noisy" if r.get("noisy") else f"{r['speedup'][b]:.2f}")
                if b in r["speedup"]
                else ""
                for b in bases
            )
            peak = f"{100 * r['frac_peak']:.0f}" if r["frac_peak"] is not None else ""
            est = " (est.)" if r.get("energy_basis") == "estimated" else ""
            tok = r.get("energy_per_token_j")
            e = (
                f" {1e3 * r['energy_j']:.3f}{est} | "
                + (f"{1e6 * tok:.2f}{est}" if tok is not None else "")
                + " |"
                if energy and r["energy_j"] is not None
                else (" | |" if energy else "")
            )
            out.append(
                f"| {r['shape']} | {'' if r['baseline'] else '**'}{r['impl']}"
                f"{'' if r['baseline'] else '**'} | {r['ms']:.3f} | {ratios} | "
                f"{r['gops']:.0f} | {peak} | {r['gbps']:.1f} | "
                f"{100 * r['frac_bw']:.0f} |{e}"
            )
    return "\n".join(out)


def plot(results: dict, path: str) -> None:
    """Speedup of each greenops impl against the baseline that computes the same thing, per
    shape, one panel per family."""
    plt = pyplot("greenops.bench.plot")

    families = list(dict.fromkeys(r["family"] for r in results["rows"]))
    fig, axes = plt.subplots(len(families), 1, figsize=(11, 4 * len(families)), squeeze=False)
    for ax, family in zip(axes[:, 0], families, strict=True):
        rows = [r for r in results["rows"] if r["family"] == family and not r["baseline"]]
        shapes = list(dict.fromkeys(r["shape"] for r in rows))
        series = list(dict.fromkeys((r["impl"], r["versus"]) for r in rows if r["versus"]))
        width = 0.8 / max(len(series), 1)
        for j, (impl, base) in enumerate(series):
            ys = [
                next(
                    (
                        0 if r.get("noisy") else r["speedup"].get(base, 0)  # no bar for noise
                        for r in rows
                        if r["shape"] == s and r["impl"] == impl
                    ),
                    0,
                )
                for s in shapes
            ]
            ax.bar(
                [i + j * width for i in range(len(shapes))], ys, width, label=f"{impl} vs {base}"
            )
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(shapes))], shapes, fontsize=8)
        ax.set_ylabel("speedup (x)")
        ax.set_title(f"{family} on {results['environment']['device']}")
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def dump_json(results: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


def pytest_benchmark_case(benchmark, cases_fn, shape, impl: str, max_rounds: int = 50) -> None:
    """One case of a family under pytest-benchmark (bench/bench_*.py): the case named `impl` at
    `shape` (skipped where the family does not time it), rounds sized to about two seconds,
    grouped by shape."""
    import pytest

    by_name = {c.name.split(":")[1]: c for c in cases_fn(shape, "cpu")}
    if impl not in by_name:
        pytest.skip(f"{impl} is not timed at {shape}")
    fn = by_name[impl].fn
    t0 = time.perf_counter()
    fn()
    rounds = max(3, min(max_rounds, int(2.0 / max(time.perf_counter() - t0, 1e-6))))
    benchmark.group = str(shape)
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1)
