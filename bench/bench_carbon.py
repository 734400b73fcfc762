"""Carbon-aware capping, replayed over a week of real grid intensity (GB and FR, January 2020,
greenops/carbon/traces/) on simulated V100s fitted to Zeus's power-limit sweeps (ResNet-50, BERT).

For each trace and workload, a job of JOB_DAYS of uncapped work starts on Monday 00:00 UTC and
runs under: uncapped (the fastest cap), the best static cap that meets the deadline, the
reactive policy (carbon.Reactive, eta 0.5, referenced to the week's mean), and the planner's
schedule (the trace as a perfect forecast) for deadlines of 1.025x ... 1.5x the uncapped time,
plus the planner given the reactive policy's own completion time. Every schedule is replayed
on the simulated device with the runtime's EnergyMeter (greenops.carbon.replay); ratios are
to uncapped.

    python bench/bench_carbon.py [--markdown FILE] [--json FILE] [--plot FILE.png]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from greenops.carbon import Curve, Reactive, bundled_trace, load_trace, plan
from greenops.carbon.replay import replay

TRACES = {"GB": bundled_trace("gb-2020-01"), "FR": bundled_trace("fr-2020-01")}
WORKLOADS = ("v100-resnet50", "v100-bert")
START = dt.datetime(2020, 1, 6, tzinfo=dt.timezone.utc)
JOB_DAYS = 6.0
SLACKS = (1.025, 1.05, 1.10, 1.25, 1.5)


def run_case(trace: str, workload: str, job_days: float = JOB_DAYS, slacks=SLACKS) -> dict:
    curve = Curve.of(workload)
    forecast = [p for p in load_trace(trace) if p.time >= START]
    work = job_days * 86400 / curve.at(curve.fastest_w)[0]
    mean = sum(p.intensity_g_per_kwh for p in forecast) / len(forecast)
    # what runs when nobody caps: the device's default limit (on some GPUs slower, and more
    # energy, than the fastest cap: A40 with BERT)
    default = replay(workload, trace, work, curve.default_limit_w, START, "default limit")
    out = {"default limit": default}
    out["uncapped"] = replay(workload, trace, work, curve.fastest_w, START, "uncapped")
    base = out["uncapped"]
    deadline_s = base.time_s * slacks[0]
    in_time = [w for w in curve.limits_w if work * curve.at(w)[0] <= deadline_s * (1 + 1e-9)]
    statics = [replay(workload, trace, work, w, START, f"static {w:g} W") for w in in_time]
    out["best static"] = min(statics, key=lambda r: r.gco2_eq)
    out["reactive"] = replay(workload, trace, work, Reactive(0.5, mean), START, "reactive")
    plans = {}
    for s in slacks:
        p = plan(curve, forecast, work, dt.timedelta(seconds=base.time_s * s), START)
        plans[s] = p
        out[f"planned {s:g}x"] = replay(workload, trace, work, p, START, f"planned {s:g}x")
        out[f"planned {s:g}x"].expected_gco2 = p.outcome.carbon_g
    t_re = out["reactive"].time_s
    p = plan(curve, forecast, work, dt.timedelta(seconds=t_re), START)
    out["planned, reactive's time"] = replay(workload, trace, work, p, START, "planned @reactive")
    out["planned, reactive's time"].expected_gco2 = p.outcome.carbon_g
    return {"rows": out, "plan": plans[slacks[0]], "curve": curve}


def table(name: str, rows: dict) -> str:
    base = rows["uncapped"]
    lines = [
        f"### {name}",
        "",
        "| schedule | time h | energy kWh | kgCO2eq | time × | energy × | carbon × |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in rows.items():
        q = r.ratios(base)
        label = key if key != "best static" else f"best static ({r.name.split()[1]} W)"
        lines.append(
            f"| {label} | {r.time_s / 3600:.1f} | {r.energy_j / 3.6e6:.2f} | "
            f"{r.gco2_eq / 1000:.3f} | {q['time']:.3f} | {q['energy']:.3f} | {q['carbon']:.3f} |"
        )
    return "\n".join(lines)


def plot(case: dict, trace_name: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = case["rows"]
    pts = [p for p in load_trace(TRACES[trace_name]) if p.time >= START]
    hours = lambda t: (t - START).total_seconds() / 3600  # noqa: E731
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    ax1.step([hours(p.time) for p in pts], [p.intensity_g_per_kwh for p in pts], where="post")
    ax1.set_ylabel("gCO2eq/kWh")
    ax1.set_title(
        f"{trace_name} grid intensity, January 2020 (Let's Wait Awhile trace)", fontsize=9
    )
    for key, style in [("planned 1.025x", "-"), ("reactive", ":"), ("best static", "--")]:
        caps = rows[key].caps
        xs = [hours(t) for t, _ in caps] + [rows[key].time_s / 3600]
        ys = [w for _, w in caps] + [caps[-1][1]]
        ax2.step(xs, ys, where="post", linestyle=style, label=key)
    ax2.set_ylabel("power cap (W)")
    ax2.set_xlim(0, max(r.time_s for r in rows.values() if r.name != "planned 1.5x") / 3600 + 6)
    ax2.set_xlabel("hours from Monday 2020-01-06 00:00 UTC")
    ax2.legend(fontsize=8, loc="lower right")
    ax2.set_title(f"{case['curve'].name} (SIMULATED V100 from the Zeus sweep)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", metavar="FILE")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--plot", metavar="FILE.png", help="GB ResNet-50 schedule over the trace")
    args = ap.parse_args(argv)
    parts, results = [], {}
    for tname, trace in TRACES.items():
        for wl in WORKLOADS:
            case = run_case(trace, wl)
            rows = case["rows"]
            parts.append(table(f"{tname}, {wl} (SIMULATED), {JOB_DAYS:g}-day job", rows))
            dev = max(
                abs(r.gco2_eq / r.expected_gco2 - 1)
                for r in rows.values()
                if hasattr(r, "expected_gco2")
            )
            parts.append(f"\nplanner's expected vs replayed carbon: max deviation {dev:.2%}\n")
            results[f"{tname}/{wl}"] = {
                k: {
                    "time_s": r.time_s,
                    "energy_j": r.energy_j,
                    "gco2_eq": r.gco2_eq,
                    "name": r.name,
                }
                for k, r in rows.items()
            }
            if args.plot and tname == "GB" and wl == "v100-resnet50":
                plot(case, tname, args.plot)
    text = "\n".join(parts)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"schema": "greenops-bench-carbon/1", "results": results}, f, indent=1)
    return 0


def test_bench_carbon_smoke():
    """A short job through every schedule: the replays agree with the planner's expectation,
    and the plan is never worse than the best static cap."""
    case = run_case(TRACES["GB"], "v100-resnet50", job_days=0.5, slacks=(1.025, 1.25))
    rows = case["rows"]
    for key in ("planned 1.025x", "planned 1.25x", "planned, reactive's time"):
        assert abs(rows[key].gco2_eq / rows[key].expected_gco2 - 1) < 2e-3
    assert rows["planned 1.025x"].gco2_eq <= rows["best static"].gco2_eq * (1 + 2e-3)
    assert rows["planned, reactive's time"].gco2_eq <= rows["reactive"].gco2_eq * (1 + 2e-3)


if __name__ == "__main__":
    sys.exit(main())
