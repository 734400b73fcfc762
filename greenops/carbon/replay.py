"""Replay: run a job's work on a simulated device through a recorded intensity trace under a
cap policy, and measure what it would have taken and emitted — with the same device model,
EnergyMeter and emissions accounting the live runtime uses, on a simulated clock (a week
replays in well under a second).

    r = replay("v100-resnet50", "gb.csv", work=..., policy=plan)      # or Reactive(), or 200.0
    r.time_s, r.energy_j, r.gco2_eq, r.caps
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tempfile

from .curve import Curve
from .planner import Plan, work_of
from .sources import Trace


@dataclasses.dataclass
class Replay:
    name: str
    time_s: float
    energy_j: float
    gco2_eq: float
    caps: list[tuple[dt.datetime, float]]  # (time, cap W; 0 = paused) at every decision
    # share of the energy whose intensity the trace knew (gaps are unknown, not held); gco2_eq
    # covers that share only, and is None when none was known
    carbon_coverage: float | None = 1.0

    def ratios(self, base: Replay) -> dict[str, float]:
        return {
            "time": self.time_s / base.time_s,
            "energy": self.energy_j / base.energy_j,
            "carbon": self.gco2_eq / base.gco2_eq,
        }


def replay(
    profile,
    trace,
    work: float | None = None,
    policy=None,
    start=None,
    name: str = "",
    work_hours=None,
) -> Replay:
    """profile: a bundled profile name, Zeus CSV path or PowerProfile (the simulated device's
    model). trace: a Trace (as it is: shifted or not), a list of Points (a forecast), or a
    trace file or bundled name, replayed at its timestamps from `start` (default: its first
    point). work: steps, or work_hours: hours of the job at the device's default limit.
    policy: watts (a static cap), a carbon.Reactive (referenced to the trace's last 24 h on
    the replay's clock, as live), a carbon.Plan (followed; flat out past its end), or any
    callable (time, intensity) -> watts, or a carbon.Replanner (closed loop: it sees the
    steps done at every decision).
    Decisions are made at every trace point and plan segment boundary."""
    from ..power.meter import EnergyMeter
    from ..power.simulated import SimClock, SimulatedDevice, load_profile

    prof = load_profile(profile) if isinstance(profile, str) else profile
    curve = Curve.of(prof)
    work = work_of(curve, work, work_hours)
    if policy is None:
        raise ValueError("replay needs a policy: watts, a Reactive, a Plan or a callable")
    clock = SimClock()
    now = lambda: t0 + dt.timedelta(seconds=clock.now_s())  # noqa: E731  (t0 set below)
    # a Trace object as it is (its shift, its gaps), on the replay's clock
    if isinstance(trace, (list, tuple)):
        trace = Trace.of_points(trace)
    src = (trace if isinstance(trace, Trace) else Trace(trace)).on_clock(now)
    t0 = start or src.points[0].time + src._offset
    bounds = {p.time + src._offset for p in src.points}
    bounds |= {a + src.step + src._offset for a, _ in src.gaps}  # where the unknown begins
    bounds = sorted(b for b in bounds if b > t0)

    def decide(t: dt.datetime, done: float) -> float:
        if isinstance(policy, (int, float)):
            return float(policy)
        if hasattr(policy, "cap") and callable(policy.cap):  # closed loop: a Replanner
            return policy.cap(t, done, dev.energy_j())
        if isinstance(policy, Plan):
            w = policy.cap_at(t)
            return curve.fastest_w if w is None else w
        intensity = src.current()
        if hasattr(policy, "calibrate"):  # as the live controller does, on the replay's clock
            policy.calibrate(src, clock.now_s())
        if hasattr(policy, "cap_w"):
            return policy.cap_w(intensity, curve)
        return policy(t, intensity)

    with tempfile.TemporaryDirectory() as tmp:
        dev = SimulatedDevice(prof, clock=clock, state_path=os.path.join(tmp, "dev.json"))
        meter = EnergyMeter([dev], carbon=src)
        meter.begin("replay")
        done, caps, i, target = 0.0, [], 0, None
        while done < work * (1 - 1e-12):
            t = now()
            at = t  # the simulated clock lands within float error of a boundary: decide there
            if target is not None and abs((t - target).total_seconds()) < 1e-6:
                at = max(at, target)
            while i < len(bounds) and bounds[i] <= t + dt.timedelta(microseconds=1):
                at = max(at, bounds[i])
                i += 1
            w = decide(at, done)
            nxt = bounds[i] if i < len(bounds) else t + dt.timedelta(hours=1)
            # decisions also at the boundaries of the plan followed (a Replanner's latest)
            live = policy if isinstance(policy, Plan) else getattr(policy, "plan", None)
            if isinstance(live, Plan):
                ends = [s.end for s in live.segments if s.end > t + dt.timedelta(microseconds=1)]
                nxt = min([nxt, *ends])
            span, target = (nxt - t).total_seconds(), nxt
            caps.append((t, w))
            if w == 0:  # a planned pause
                dev.sleep(span)
            else:
                # The model's own limit write (never a real GPU): not subject to dry runs.
                dev._write_limit_w(dev.validate_limit_w(w))
                steps = min(work - done, span / dev.step_time_s())
                dev.run_step(steps)
                done += steps
            meter.tick()
        m = meter.end("replay")
    return Replay(name, m.time_s, m.energy_j, m.gco2_eq, caps, m.carbon_coverage)
