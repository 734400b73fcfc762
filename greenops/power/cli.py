"""`greenops power status|cap|restore|profile`; the capping helpers `greenops run` shares
(greenops/carbon/run_cli.py)."""

from __future__ import annotations

import argparse
import json
import sys


def add_parsers(sub) -> None:
    p = sub.add_parser("power", help="GPU and CPU power: status, cap a command, restore")
    psub = p.add_subparsers(dest="power_command", required=True)
    s = psub.add_parser(
        "status", help="limits, constraints, draw and energy of each GPU and CPU domain"
    )
    s.add_argument("--json", action="store_true")
    c = psub.add_parser("cap", help="run COMMAND under a power cap, restored afterwards")
    c.add_argument("watts", type=float, help="watts, or a fraction (<= 1) of the default limit")
    _cap_options(c)
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


def _cap_options(p) -> None:
    p.add_argument(
        "--on",
        choices=("gpu", "cpu", "all"),
        help="what to cap: GPUs, CPU packages (RAPL) or both (default: the GPUs, else the CPU)",
    )
    p.add_argument("--devices", help="comma-separated GPU indices (default: all visible)")
    p.add_argument(
        "--cap-mode",
        choices=("auto", "hardware", "software"),
        default="auto",
        help="auto (default): the hardware limit, else pace the command (SIGSTOP/SIGCONT) to "
        "the budget; hardware: the hardware limit, else run uncapped and say so; software: "
        "only pace",
    )


def _indices(spec: str | None) -> list[int] | None:
    return None if not spec else [int(i) for i in spec.split(",")]


def _options_after_positionals(args) -> None:
    """`power cap WATTS --on cpu -- CMD`: argparse's REMAINDER takes everything after WATTS,
    options included; the ones before `--` are parsed here."""
    if "--" in args.command and args.command.index("--") > 0:
        i = args.command.index("--")
        p = argparse.ArgumentParser(prog="greenops power cap", add_help=False)
        _cap_options(p)
        p.parse_args(args.command[:i], namespace=args)
        args.command = args.command[i:]


def _command(args) -> list[str]:
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        raise SystemExit("greenops: give the command to run after --")
    return cmd


def _say(msg: str) -> None:
    print(f"greenops: {msg}", file=sys.stderr)


def _cap_targets(args) -> list:
    """The devices a cap applies to (--on, --devices); [] where there is none."""
    from .registry import cpus, devices, gpus

    on = args.on or ("gpu" if gpus() else "cpu")
    if on == "cpu":
        return cpus("cap")
    if on == "all":
        return devices(kind="all")
    return devices(_indices(args.devices)) if gpus() else []


def _capped(cmd, watts: float, devs, mode: str, every=None):
    """Runs the command under a cap by `mode` (see --cap-mode); never refuses to run it once
    the request is valid. Returns (exit code, how it was capped)."""
    from . import child
    from .caps import cap
    from .errors import NoPermission, NotSupported

    if not devs:
        _say("no device here can be capped (no GPU, no RAPL package zone); running UNCAPPED")
        return child.run(cmd, devs, every=every)[0], "uncapped (nothing to cap)"
    c = cap(watts, devs, mode="hardware")
    targets = {d.uuid: d.validate_limit_w(c._target_w(d)) for d in devs}  # InvalidLimit: refuse
    if mode in ("auto", "hardware"):
        try:
            c.__enter__()
        except (NoPermission, NotSupported) as e:
            if mode == "hardware":
                _say(f"cannot set the cap ({e}); running UNCAPPED")
                return child.run(cmd, devs, every=every)[0], "uncapped (the cap could not be set)"
            _say(f"cannot set the hardware cap ({e}); pacing the command instead (software cap)")
        else:
            try:
                return child.run(cmd, devs, every=every)[0], f"under a {watts:g} cap"
            finally:
                c.__exit__(None, None, None)
    if any(d.energy_j() is None for d in devs):
        _say("a software cap needs energy counters these devices lack; running UNCAPPED")
        return child.run(cmd, devs, every=every)[0], "uncapped (no energy counter to pace by)"
    pacer = child.Pacer(targets, devs)
    rc = child.run(cmd, devs, pacer=pacer, every=every)[0]
    return rc, f"under a {watts:g} software cap (paused {pacer.paused_s:.1f} s)"


def main(args) -> int:
    """The power commands; a mistake or a device problem is one line on stderr (exit 2),
    never a traceback ($GREENOPS_DEBUG=1 shows it)."""
    return one_line_errors(_main, args)


def one_line_errors(fn, args) -> int:
    import os

    from .errors import PowerError

    try:
        return fn(args)
    except (PowerError, ValueError, OSError) as e:
        if os.environ.get("GREENOPS_DEBUG"):
            raise
        _say(str(e))
        return 2


def _main(args) -> int:
    from . import restore_stale

    if args.command_name == "power" and args.power_command == "status":
        from . import rapl
        from .registry import cpus, gpus

        return _status(args, gpus() + (rapl.zones() or cpus("meter")))
    if args.command_name == "power" and args.power_command == "restore":
        done = restore_stale()
        for e in done:
            print(f"restored {e['uuid']} to {e['previous_limit_w']:g} W (left by pid {e['pid']})")
        if not done:
            print("nothing to restore")
        return 0

    if args.command_name == "power" and args.power_command == "profile":
        return _profile(args)

    _options_after_positionals(args)
    cmd = _command(args)
    rc, how = _capped(cmd, args.watts, _cap_targets(args), args.cap_mode)
    _say(f"exit {rc}, {how}")
    return rc


def _status(args, devs) -> int:
    from .errors import PowerError

    rows = []
    for d in devs:
        try:
            rows.append(d.describe())
        except PowerError as e:
            rows.append({"name": d.name, "uuid": d.uuid, "error": str(e)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no devices")
    for r in rows:
        label = "  (SIMULATED)" if r.get("simulated") else ""
        label += "  ESTIMATED" if r.get("estimated") else ""
        head = f"[{r.get('index', '-')}] {r['name']} {r['uuid']}{label}"
        if "error" in r:
            print(f"{head}\n    {r['error']}")
            continue
        parts = []
        if r.get("limit_w") is not None:
            parts.append(
                f"limit {r['limit_w']:.0f} W (min {r['min_limit_w']:.0f}, max "
                f"{r['max_limit_w']:.0f}, default {r['default_limit_w']:.0f})"
            )
        if r.get("power_w") is not None:
            parts.append(f"draw {r['power_w']:.1f} W")
        e = r.get("energy_j")
        parts.append(f"energy counter {e:.1f} J" if e is not None else r.get("energy_j_error", ""))
        if r.get("basis"):
            parts.append(f"model: {r['basis']}")
        print(f"{head}\n    " + "; ".join(p for p in parts if p))
    return 0


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

    if args.plot:  # before the sweep, not after it
        from .._optional import cli_needs_pyplot

        cli_needs_pyplot("greenops power profile --plot")
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
