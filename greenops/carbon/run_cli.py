"""`greenops run`: a command under no cap, a static cap or a carbon-aware one, with its energy
and emissions. On the carbon side because the carbon-aware cap needs both: carbon builds on
greenops.power (its caps, meter and capping helpers), never the reverse."""

from __future__ import annotations

import argparse
import json
import sys

from ..power.cli import _cap_options, _cap_targets, _capped, _command, _say, one_line_errors
from .cli import SOURCES, add_source_options


def add_parser(sub) -> None:
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
        "--work-hours",
        type=float,
        help="how long the job takes at the device's default limit (with --deadline)",
    )
    r.add_argument(
        "--progress-file",
        metavar="FILE",
        help="with --deadline: the command writes its progress there (a number: steps done, "
        "out of --work-steps); greenops re-plans from it (closed loop). Without it the plan "
        "is followed by the clock",
    )
    r.add_argument(
        "--work-steps",
        type=float,
        help="the job's size in the steps --progress-file counts (default: the profile's steps)",
    )
    _cap_options(r)
    r.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on 127.0.0.1:PORT while the command runs",
    )
    r.add_argument("--json", metavar="FILE", help="write energy and emissions as JSON")
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")


def main(args) -> int:
    """One line on stderr (exit 2) for a mistake or a device problem, never a traceback."""
    return one_line_errors(_run, args)


def _run(args) -> int:
    """`greenops run`: the command under no cap, a static cap or a carbon-aware one; prints
    (and with --json writes) its energy per domain and, given a source, its emissions. It
    runs the command whatever this machine can measure or cap, and says what it could not."""
    from ..power import EnergyMeter, dry_run
    from ..power.registry import devices
    from .cli import source_from_args
    from .controller import carbon_aware

    cmd = _command(args)
    if args.deadline is not None and args.work_hours is None:
        raise SystemExit(
            "greenops run: --deadline needs --work-hours (the job's length at the default limit)"
        )
    if args.deadline is not None and (args.carbon is None or args.cap is not None):
        raise SystemExit("greenops run: --deadline plans a carbon-aware cap: give --carbon")
    if (args.progress_file or args.work_steps) and args.deadline is None:
        raise SystemExit("greenops run: --progress-file and --work-steps go with --deadline")
    if args.work_steps is not None and args.work_steps <= 0:
        raise SystemExit(f"greenops run: --work-steps must be positive, got {args.work_steps:g}")
    source = source_from_args(args.carbon, args) if args.carbon else None
    meter_devs = devices(kind="meter")
    caps = _cap_targets(args) if (args.cap is not None or source is not None) else []
    if args.devices:  # the chosen GPUs only, beside the CPU domains
        chosen = {d.uuid for d in caps}
        meter_devs = [d for d in meter_devs if d.kind != "gpu" or d.uuid in chosen]
    metrics = _metrics(args, meter_devs, source)
    every = metrics.update if metrics else None
    controller = None
    try:
        if args.cap is not None or source is None or not caps:
            if source is not None and args.cap is None:
                _say(
                    "carbon-aware capping needs a device that can be capped; running UNCAPPED "
                    "and accounting the emissions only"
                )
            meter = EnergyMeter(meter_devs, carbon=source)
            meter.begin("run")
            if args.cap is not None:
                rc, how = _capped(cmd, args.cap, caps, args.cap_mode, _ticking(meter, every))
            else:
                from ..power import child

                rc, how = child.run(cmd, meter_devs, every=_ticking(meter, every))[0], "uncapped"
            m = meter.end("run")
        else:
            policy, progress = _policy(args, caps, source)
            controller = carbon_aware(
                source,
                args.profile,
                policy,
                caps,
                period_s=args.period,
                mode="hardware",
                progress=progress,
            )
            with controller:
                from ..power import child

                rc, _ = child.run(cmd, caps, every=every)
            m = controller.measurement
            how = f"carbon-aware ({type(policy).__name__.lower()}, every {args.period:g} s)"
            if hasattr(policy, "status"):  # a Replanner: on plan, or flat out and why
                how += f"; {policy.status}"
    finally:
        if metrics:
            metrics.update()
            metrics.close()
    _report(args, cmd, rc, m, how, source, controller, dry_run())
    return rc


def _ticking(meter, every):
    """Each period: the meter's emissions interval, then the caller's `every`."""
    last = [0.0]

    def tick():
        import time as t

        now = t.monotonic()
        if now - last[0] >= 30:  # intensity changes on the scale of minutes
            meter.tick()
            last[0] = now
        if every:
            every()

    return tick


def _metrics(args, devs, source):
    if getattr(args, "metrics_port", None) is None:
        return None
    from ..power.metrics import serve_metrics

    server = serve_metrics(args.metrics_port, devs, source)
    _say(f"metrics on http://127.0.0.1:{server.port}/metrics")
    return server


def _report(args, cmd, rc, m, how, source, controller, dry) -> None:
    e, est = m.energy_j, m.estimated_energy_j
    energy = []
    if e is not None:
        energy.append(f"{e:.1f} J" + (" SIMULATED" if m.simulated else ""))
    if est is not None:
        energy.append(f"{est:.1f} J ESTIMATED")
    domains = ", ".join(f"{k} {v:.1f} J" for k, v in m.by_domain_j().items())
    if source is None:
        co2 = ""
    elif m.gco2_eq is None:
        co2 = f", gCO2eq unknown ({source.name} gave no intensity)"
    else:
        cov = f" for {m.carbon_coverage:.0%} of the energy" if m.carbon_coverage < 1 else ""
        label = " ESTIMATED" if m.carbon_basis == "estimated" else ""
        co2 = f", {m.gco2_eq:.3f} gCO2eq{label}{cov} ({source.name})"
    notes = []
    if m.simulated:
        notes.append("SIMULATED devices: modelled as busy for the program's wall time")
    if dry:
        notes.append("DRY RUN: no limit was changed")
    print(
        f"greenops run: exit {rc}; {' + '.join(energy) or 'no energy reading'} over "
        f"{m.time_s:.2f} s [{domains}]{co2}, {how}" + "".join(f" ({n})" for n in notes),
        file=sys.stderr,
    )
    if args.json:
        out = {
            "schema": "greenops-run/2",
            "command": cmd,
            "exit_code": rc,
            **m.to_dict(),
            "carbon_source": source.name if source else None,
            "cap": args.cap,
            "cap_result": how,
            "decisions": [
                {"time": t.isoformat(), "intensity_g_per_kwh": i, "cap_w": w}
                for t, i, w in (controller.decisions if controller else [])
            ],
            "dry_run": dry,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


def _policy(args, devs, source):
    """(policy, progress): with --deadline a plan over the source's forecast — re-planned from
    the command's own progress with --progress-file (a carbon.Replanner), else followed by the
    clock; otherwise the reactive policy."""
    import datetime as dt

    from .controller import job_curve
    from .planner import plan
    from .policy import Reactive
    from .replanner import Replanner

    if args.deadline is None:
        return Reactive(eta=args.eta), None
    curve = job_curve(args.profile, devs)
    forecast = source.forecast(max(args.deadline, 1.0) + 1.0)
    if not forecast:
        raise SystemExit(f"greenops run: {source.name} gave no forecast to plan against")
    start = max(forecast[0].time, _now())
    p = plan(curve, forecast, deadline=args.deadline, start=start, work_hours=args.work_hours)
    print(
        f"greenops run: planned to finish at {p.completion.isoformat()} "
        f"(deadline {p.deadline.isoformat()}), expected {p.outcome.carbon_g:.1f} gCO2eq",
        file=sys.stderr,
    )
    if args.progress_file is None:
        return p, None
    steps = curve.steps_in(args.work_hours)
    scale = steps / args.work_steps if args.work_steps else 1.0  # the file's steps -> profile's
    r = Replanner(
        curve,
        source.forecast,
        start + dt.timedelta(hours=args.deadline),
        work=steps,
    )
    return r, _progress_reader(args.progress_file, scale)


def _progress_reader(path: str, scale: float):
    """progress() for the controller: the number in `path` times `scale`; the last good value
    while the file is missing, being rewritten or unparsable (0 before the first)."""
    last = [0.0]

    def progress() -> float:
        try:
            with open(path) as f:
                last[0] = max(last[0], float(f.read().strip()) * scale)
        except (OSError, ValueError):
            pass
        return last[0]

    return progress


def _now():
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)
