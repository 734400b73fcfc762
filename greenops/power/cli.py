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

    r = sub.add_parser("run", help="run COMMAND (optionally under a cap), print its energy")
    r.add_argument("--cap", type=float, help="watts, or a fraction (<= 1) of the default limit")
    r.add_argument("--devices", help="comma-separated device indices (default: all visible)")
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")


def _indices(spec: str | None) -> list[int] | None:
    return None if not spec else [int(i) for i in spec.split(",")]


def _command(args) -> list[str]:
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        raise SystemExit("greenops: give the command to run after --")
    return cmd


def _run_child(cmd: list[str]) -> tuple[int, float]:
    """Runs the command to its end, forwarding SIGINT/SIGTERM to it; (exit code, seconds)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd)

    def forward(signum, frame):
        proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return rc, time.monotonic() - t0


def main(args) -> int:
    from . import EnergyMeter, cap, devices, restore_stale
    from .simulated import SimulatedDevice

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

    cmd = _command(args)
    devs = devices(_indices(args.devices))
    limit = args.watts if args.command_name == "power" else args.cap
    capping = cap(limit, devs, mode="hardware") if limit is not None else None
    meter = EnergyMeter(devs)
    with capping if capping is not None else _nothing():
        meter.begin("run")
        rc, wall_s = _run_child(cmd)
        for d in devs:
            if isinstance(d, SimulatedDevice):
                # The program is another process: the model takes it as busy at the cap for
                # its whole wall time.
                d.run_step(wall_s / d.step_time_s())
        m = meter.end("run")
    if args.command_name == "run":
        sim = (
            ", SIMULATED devices: modelled as busy for the program's wall time"
            if (m.simulated)
            else ""
        )
        print(
            f"greenops run: exit {rc}; {m.energy_j:.1f} J over {m.time_s:.2f} s on "
            f"{len(devs)} device(s), {m.avg_power_w:.1f} W average"
            + (f" under a {limit:g} cap" if limit is not None else "")
            + sim,
            file=sys.stderr,
        )
    return rc


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
