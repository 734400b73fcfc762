"""`greenops power status|cap|restore` and `greenops run`."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time


def add_parsers(sub) -> None:
    p = sub.add_parser("power", help="GPU power limits: status, cap a command, restore")
    psub = p.add_subparsers(dest="power_command", required=True)
    s = psub.add_parser("status", help="limits, constraints, draw and energy of each device")
    s.add_argument("--json", action="store_true")
    c = psub.add_parser("cap", help="run COMMAND under a power cap, restored afterwards")
    c.add_argument("watts", type=float, help="watts, or a fraction (<= 1) of the default limit")
    c.add_argument("--devices", help="comma-separated device indices (default: all visible)")
    c.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    psub.add_parser("restore", help="put back limits left by processes that were killed")
    pr = psub.add_parser(
        "profile",
        help="sweep power limits over a built-in workload and "
        "choose one (simulated devices: the profiled job; GPUs: bf16 matmuls)",
    )
    pr.add_argument("--limits", help="comma-separated watts (default: max to min, 25 W steps)")
    pr.add_argument("--steps", type=int, default=10, help="measured steps per limit")
    pr.add_argument("--warmup", type=int, default=2, help="warm-up steps per limit")
    pr.add_argument(
        "--slowdown",
        type=float,
        default=0.10,
        help="choose the least energy within this slowdown (default 0.10)",
    )
    pr.add_argument("--eta", type=float, default=0.5, help="eta of the Zeus cost shown")
    pr.add_argument("--json", metavar="FILE")
    pr.add_argument("--plot", metavar="FILE.png")

    from ..carbon.cli import SOURCES, add_source_options

    r = sub.add_parser(
        "run",
        help="run COMMAND under a static or carbon-aware cap; print its energy and emissions",
    )
    r.add_argument("--cap", type=float, help="watts, or a fraction (<= 1) of the default limit")
    r.add_argument(
        "--carbon",
        choices=SOURCES,
        help="intensity source: without --cap the cap follows it (carbon-aware); with --cap "
        "it only accounts the emissions",
    )
    add_source_options(r)
    r.add_argument(
        "--profile",
        help="the job's power profile: `power profile --json` output or a Zeus CSV "
        "(default on simulated devices: their own)",
    )
    r.add_argument("--period", type=float, default=300.0, help="seconds between decisions")
    r.add_argument("--eta", type=float, default=0.5, help="reactive policy's energy weight")
    r.add_argument(
        "--deadline",
        type=float,
        metavar="HOURS",
        help="plan against the source's forecast to finish by then (needs --work-hours)",
    )
    r.add_argument(
        "--work-hours", type=float, help="how long the job takes uncapped (with --deadline)"
    )
    r.add_argument("--devices", help="comma-separated device indices (default: all visible)")
    r.add_argument("--json", metavar="FILE", help="write energy and emissions as JSON")
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")


def _indices(spec: str | None) -> list[int] | None:
    return None if not spec else [int(i) for i in spec.split(",")]


def _command(args) -> list[str]:
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        raise SystemExit("greenops: give the command to run after --")
    return cmd


def _run_child(cmd: list[str], devs) -> tuple[int, float]:
    """Runs the command to its end, forwarding SIGINT/SIGTERM to it; (exit code, seconds).
    Simulated devices are another process's GPU to the model: it takes them as busy at the
    cap in force, accrued every 0.1 s so that cap changes during the run count."""
    from .simulated import SimulatedDevice

    sims = [d for d in devs if isinstance(d, SimulatedDevice)]
    t0 = last = time.monotonic()
    proc = subprocess.Popen(cmd)

    def forward(signum, frame):
        proc.send_signal(signum)

    def accrue():
        nonlocal last
        now = time.monotonic()
        for d in sims:
            d.run_step((now - last) / d.step_time_s())
        last = now

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                rc = proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                accrue()
        accrue()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return rc, time.monotonic() - t0


def main(args) -> int:
    from . import cap, devices, restore_stale

    if args.command_name == "power" and args.power_command == "status":
        rows = [d.describe() for d in devices()]
        if args.json:
            print(json.dumps(rows, indent=2))
        for r in [] if args.json else rows:
            sim = "  (SIMULATED)" if r["simulated"] else ""
            print(
                f"[{r['index']}] {r['name']} {r['uuid']}{sim}\n"
                f"    limit {r['limit_w']:.0f} W (min {r['min_limit_w']:.0f}, max "
                f"{r['max_limit_w']:.0f}, default {r['default_limit_w']:.0f}); draw "
                f"{r['power_w']:.1f} W; energy counter "
                + (f"{r['energy_j']:.1f} J" if r["energy_j"] is not None else "none")
            )
        return 0
    if args.command_name == "power" and args.power_command == "restore":
        done = restore_stale()
        for e in done:
            print(f"restored {e['uuid']} to {e['previous_limit_w']:g} W (left by pid {e['pid']})")
        if not done:
            print("nothing to restore")
        return 0

    if args.command_name == "power" and args.power_command == "profile":
        return _profile(args)

    if args.command_name == "run":
        return _run(args)
    cmd = _command(args)
    devs = devices(_indices(args.devices))
    with cap(args.watts, devs, mode="hardware"):
        rc, _ = _run_child(cmd, devs)
    return rc


def _run(args) -> int:
    """`greenops run`: the command under no cap, a static cap or a carbon-aware one; prints
    (and with --json writes) its energy and, given a source, its emissions."""
    from ..carbon.cli import source_from_args
    from . import EnergyMeter, cap, carbon_aware, devices, dry_run

    cmd = _command(args)
    if args.deadline is not None and args.work_hours is None:
        raise SystemExit("greenops run: --deadline needs --work-hours (the job's uncapped length)")
    if args.deadline is not None and (args.carbon is None or args.cap is not None):
        raise SystemExit("greenops run: --deadline plans a carbon-aware cap: give --carbon")
    devs = devices(_indices(args.devices))
    source = source_from_args(args.carbon, args) if args.carbon else None
    controller = None
    if args.cap is not None or source is None:
        meter = EnergyMeter(devs, carbon=source)
        with cap(args.cap, devs, mode="hardware") if args.cap is not None else _nothing():
            meter.begin("run")
            rc, _ = _run_child(cmd, devs)
            m = meter.end("run")
        how = f"under a {args.cap:g} cap" if args.cap is not None else "uncapped"
    else:
        policy = _policy(args, devs, source)
        controller = carbon_aware(
            source, args.profile, policy, devs, period_s=args.period, mode="hardware"
        )
        with controller:
            rc, _ = _run_child(cmd, devs)
        m = controller.measurement
        how = f"carbon-aware ({type(policy).__name__.lower()}, every {args.period:g} s)"
    sim = ", SIMULATED devices: modelled as busy for the program's wall time" if m.simulated else ""
    co2 = f", {m.gco2_eq:.3f} gCO2eq ({source.name})" if m.gco2_eq is not None else ""
    print(
        f"greenops run: exit {rc}; {m.energy_j:.1f} J over {m.time_s:.2f} s on "
        f"{len(devs)} device(s), {m.avg_power_w:.1f} W average{co2}, {how}{sim}"
        + (" (DRY RUN: no limit was changed)" if dry_run() else ""),
        file=sys.stderr,
    )
    if args.json:
        out = {
            "schema": "greenops-run/1",
            "command": cmd,
            "exit_code": rc,
            "time_s": m.time_s,
            "energy_j": m.energy_j,
            "energy_by_device_j": m.energy_by_device_j,
            "avg_power_w": m.avg_power_w,
            "gco2_eq": m.gco2_eq,
            "carbon_source": source.name if source else None,
            "cap": args.cap,
            "decisions": [
                {"time": t.isoformat(), "intensity_g_per_kwh": i, "cap_w": w}
                for t, i, w in (controller.decisions if controller else [])
            ],
            "simulated": m.simulated,
            "dry_run": dry_run(),
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return rc


def _policy(args, devs, source):
    """--deadline: a plan over the source's forecast; otherwise the reactive policy."""
    from ..carbon import Reactive, plan
    from .carbon_aware import job_curve

    if args.deadline is None:
        return Reactive(eta=args.eta)
    curve = job_curve(args.profile, devs)
    forecast = source.forecast(max(args.deadline, 1.0) + 1.0)
    if not forecast:
        raise SystemExit(f"greenops run: {source.name} gave no forecast to plan against")
    work = args.work_hours * 3600.0 / curve.at(curve.fastest_w)[0]
    p = plan(curve, forecast, work, args.deadline, start=max(forecast[0].time, _now()))
    print(
        f"greenops run: planned to finish at {p.completion.isoformat()} "
        f"(deadline {p.deadline.isoformat()}), expected {p.outcome.carbon_g:.1f} gCO2eq",
        file=sys.stderr,
    )
    return p


def _now():
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)


def _workload(devs):
    """One step of a built-in job: the profiled work on simulated devices, else bf16 matmuls."""
    from .simulated import SimulatedDevice

    if all(isinstance(d, SimulatedDevice) for d in devs):
        return lambda: [d.run_step() for d in devs]
    import torch

    a = [torch.randn(4096, 4096, device=f"cuda:{d.index}", dtype=torch.bfloat16) for d in devs]

    def step():
        for x in a:
            for _ in range(20):
                x @ x
        torch.cuda.synchronize()

    return step


def _profile(args) -> int:
    from . import devices, profile

    devs = devices()
    limits = [float(w) for w in args.limits.split(",")] if args.limits else None
    r = profile(
        _workload(devs), limits, args.warmup, args.steps, devs, progress=sys.stderr.isatty()
    )
    full = r.min_time()
    print(r.table())
    for name, row in [
        ("least energy", r.min_energy()),
        (f"least energy within {args.slowdown:.0%} slowdown", r.within_slowdown(args.slowdown)),
        (f"Zeus cost, eta={args.eta:g}", r.zeus_cost(args.eta)),
    ]:
        print(
            f"{name}: {row.limit_w:g} W: {row.energy_per_step_j:.2f} J/step "
            f"({row.energy_per_step_j / full.energy_per_step_j - 1:+.1%} energy), "
            f"{row.time_per_step_s / full.time_per_step_s - 1:+.1%} time vs the fastest limit"
        )
    if r.simulated:
        print("(SIMULATED: figures come from a device model fitted to a measured sweep)")
    if r.dry_run:
        print("(DRY RUN: no limit was changed; every row ran at the current limit)")
    if args.json:
        r.save(args.json)
    if args.plot:
        r.plot(args.plot)
    return 0


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
