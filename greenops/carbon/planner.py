"""The deadline-aware planner: the power-cap schedule with the least carbon that still completes
a job's work by its deadline, given the job's power/throughput curve and an intensity forecast.

    p = carbon.plan("v100-resnet50", source.forecast(48), work=50_000, deadline=30)  # hours
    p.segments            # [(start, end, cap_w, intensity)], one per forecast interval
    p.compare()           # vs the default limit, uncapped, the best static cap, reactive

Method (docs/power.md, "Planning against a forecast"): in interval i (length d_i, intensity
I_i) the job runs at a point of its curve's efficient frontier (rate r, power P), or mixes two
adjacent vertices in time. For a fixed completion interval k, minimizing Σ d_i·I_i·P_i subject
to Σ d_i·r_i = W is a linear program whose Lagrangian separates by interval: at multiplier λ
each interval picks the vertex that minimizes I_i·P − λ·r. Walking λ upwards is the same as
taking the frontier's steps (vertex j → j+1 in interval i, "price" I_i·ΔP/Δr) cheapest first
until the work is met, the last step fractionally: an exact solution with at most one mixed
interval. Interval k also has the option "done" (r = 0, P = 0); k is tried from the earliest
possible to the last before the deadline, and the cheapest wins.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from .curve import Curve
from .sources import Point, gaps, median_step

J_PER_KWH = 3.6e6
# A mixed interval whose slower part would last less than this runs wholly at the faster
# vertex (a little more work, never later): sub-millisecond segments are float noise, and a
# follower that cannot switch caps that fast would run the next interval at the sliver's cap.
MIN_SEGMENT_S = 1e-3


class InfeasibleDeadline(ValueError):
    """Even the fastest schedule does not complete the work by the deadline."""

    def __init__(self, message: str, earliest: dt.datetime) -> None:
        super().__init__(message)
        self.earliest = earliest


@dataclasses.dataclass(frozen=True)
class Segment:
    start: dt.datetime
    end: dt.datetime
    cap_w: float  # 0: paused (idle) or done
    intensity_g_per_kwh: float
    running: bool = True


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Expected figures of one schedule (from the curve; the schedule's own device model)."""

    name: str
    completion: dt.datetime
    time_s: float
    energy_j: float
    carbon_g: float
    segments: tuple[Segment, ...] = ()

    def ratios(self, base: Outcome) -> dict[str, float]:
        return {
            "time": self.time_s / base.time_s,
            "energy": self.energy_j / base.energy_j,
            "carbon": self.carbon_g / base.carbon_g,
        }


@dataclasses.dataclass
class Plan:
    curve: Curve
    start: dt.datetime
    deadline: dt.datetime
    work: float
    outcome: Outcome
    intervals: list[tuple[dt.datetime, dt.datetime, float]]  # start .. deadline
    extrapolated: bool  # the deadline lies past the forecast: its last value was held
    forecast_intervals: list[tuple[dt.datetime, dt.datetime, float]]  # start .. forecast end

    @property
    def segments(self) -> tuple[Segment, ...]:
        return self.outcome.segments

    @property
    def completion(self) -> dt.datetime:
        return self.outcome.completion

    def cap_at(self, t: dt.datetime) -> float | None:
        """The cap the plan sets at time t (0: paused); None once the work is done."""
        for s in self.segments:
            if s.start <= t < s.end:
                return s.cap_w
        return None

    def compare(self, reactive=None) -> dict[str, Outcome]:
        """This plan beside (a) the device's default limit (what runs when nobody caps it),
        (b) uncapped (the fastest profiled cap from the start), (c) the static cap with the
        least carbon that meets the deadline, (d) a reactive policy (default `Reactive()`
        referenced to the forecast's mean) choosing each interval's cap from that interval's
        intensity alone."""
        from .policy import Reactive

        c, ivs = self.curve, self.forecast_intervals

        def run(name, cap_of):
            return dataclasses.replace(simulate(c, ivs, self.work, cap_of), name=name)

        out = {
            "default limit": run(
                f"default limit {c.default_limit_w:g} W", lambda i: c.default_limit_w
            ),
            "uncapped": run("uncapped", lambda i: c.fastest_w),
        }
        statics = [run(f"static {w:g} W", lambda i, w=w: w) for w in c.limits_w]
        meeting = [o for o in statics if o.completion <= self.deadline]
        out["best static"] = min(meeting, key=lambda o: o.carbon_g)
        span = sum((b - a).total_seconds() for a, b, _ in ivs)
        policy = reactive or Reactive(
            reference_g=sum(g * (b - a).total_seconds() for a, b, g in ivs) / span
        )
        out["reactive"] = run("reactive", lambda i: policy.cap_w(ivs[i][2], c))
        out["planned"] = self.outcome
        return out


def work_of(curve: Curve, work: float | None, work_hours: float | None) -> float:
    """Steps from exactly one of `work` (steps) and `work_hours` (at the default limit)."""
    if (work is None) == (work_hours is None):
        raise ValueError("give the job's size once: work= (steps) or work_hours= (hours)")
    if work_hours is not None:
        return curve.steps_in(work_hours)
    if work <= 0:
        raise ValueError(f"work must be positive, got {work}")
    return float(work)


def _intervals(
    forecast: list[Point], start: dt.datetime, until: dt.datetime | None
) -> tuple[list[tuple[dt.datetime, dt.datetime, float]], bool]:
    """[start, until) cut into the forecast's intervals (each point holds to the next; the last
    for one median step, then held further if `until` is later: `extrapolated`)."""
    pts = sorted(forecast, key=lambda p: p.time)
    if not pts:
        raise ValueError("an empty forecast")
    step = median_step(pts)
    holes = gaps(pts, 3 * step)
    if holes:  # holding one value across it would plan against an invented intensity
        a, b = holes[0]
        raise ValueError(
            f"the forecast has {len(holes)} gap(s) longer than 3 of its steps ({step}), the "
            f"first from {a.isoformat()} to {b.isoformat()}: fill it or plan up to it"
        )
    if start < pts[0].time:
        raise ValueError(f"the plan starts at {start}, before the forecast ({pts[0].time})")
    bounds = [p.time for p in pts] + [pts[-1].time + step]
    until = max(until or bounds[-1], start + dt.timedelta(seconds=1))
    out = []
    for i, p in enumerate(pts):
        a, b = max(bounds[i], start), min(bounds[i + 1], until)
        if a < b:
            out.append((a, b, p.intensity_g_per_kwh))
    extrapolated = until > bounds[-1]
    if extrapolated:
        out.append((max(bounds[-1], start), until, pts[-1].intensity_g_per_kwh))
    return out, extrapolated


def simulate(curve: Curve, intervals, work: float, cap_of) -> Outcome:
    """Runs `work` steps through the intervals, at cap `cap_of(i)` in interval i; past the
    last interval its intensity holds until the work is done."""
    done = time_s = energy = carbon = 0.0
    segs = []
    end, last = intervals[-1][1], intervals[-1][2]
    tail = [(end, end + dt.timedelta(days=36500), last)]
    for i, (a, b, inten) in enumerate(list(intervals) + tail):
        cap = cap_of(min(i, len(intervals) - 1))
        t_step, p = curve.at(cap)
        d = (b - a).total_seconds()
        need = (work - done) * t_step
        run = min(d, need)
        done += run / t_step
        time_s += run
        energy += run * p
        carbon += run * p / J_PER_KWH * inten
        if run >= MIN_SEGMENT_S:  # a float-noise remainder leaves no segment
            segs.append(Segment(a, a + dt.timedelta(seconds=run), cap, inten))
        if need <= d:
            return Outcome("", a + dt.timedelta(seconds=run), time_s, energy, carbon, tuple(segs))
    raise AssertionError("unreachable: the tail interval completes any work")


def _solve_k(curve_chain, last_chain, ivs, work):
    """Least carbon with the work done inside interval k = len(ivs) - 1; None if impossible."""
    base_work = base_c = 0.0
    steps = []  # (price, i, j): vertex j -> j+1 of interval i's chain
    for i, (a, b, inten) in enumerate(ivs):
        ch = last_chain if i == len(ivs) - 1 else curve_chain
        d = (b - a).total_seconds()
        base_work += d * ch[0][0]
        base_c += d * inten * ch[0][1]
        for j in range(len(ch) - 1):
            dr, dp = ch[j + 1][0] - ch[j][0], ch[j + 1][1] - ch[j][1]
            steps.append((inten * dp / dr, i, j))
    if base_work > work * (1 + 1e-12):
        return None  # finished before interval k even at the slowest rate
    level = [0] * len(ivs)
    frac = [0.0] * len(ivs)
    need = max(0.0, work - base_work)
    cost = base_c
    for price, i, j in sorted(steps):
        ch = last_chain if i == len(ivs) - 1 else curve_chain
        d = (ivs[i][1] - ivs[i][0]).total_seconds()
        gain = d * (ch[j + 1][0] - ch[j][0])
        if gain >= need:  # the last step, taken in part: the work is met exactly
            frac[i] = need / gain
            cost += need * price
            need = 0.0
            break
        need -= gain
        cost += gain * price
        level[i] = j + 1
    if need > work * 1e-12:  # float rounding of the gains must not make a tight k infeasible
        return None
    return cost, level, frac


def plan(
    profile,
    forecast: list[Point],
    work: float | None = None,
    deadline=None,
    start: dt.datetime | None = None,
    allow_pause: bool = False,
    work_hours: float | None = None,
) -> Plan:
    """The least-carbon cap schedule that completes `work` steps (or `work_hours` of the job
    at the device's default limit) by `deadline`.

    profile: anything `Curve.of` takes. forecast: intensity points (a source's `forecast()` or
    a trace slice). deadline: a datetime, a timedelta, or hours (float) after `start`
    (default: the forecast's first point). allow_pause: intervals may also idle at the
    curve's `idle_w` (needs one: a simulated profile, or a Curve given idle_w).
    Raises InfeasibleDeadline (with `.earliest`) when even the fastest cap is too slow."""
    curve = Curve.of(profile)
    work = work_of(curve, work, work_hours)
    if deadline is None:
        raise ValueError("plan needs a deadline (a datetime, a timedelta or hours)")
    pts = sorted(forecast, key=lambda p: p.time)
    if not pts:
        raise ValueError("an empty forecast")
    start = start or pts[0].time
    if isinstance(deadline, (int, float)):
        deadline = start + dt.timedelta(hours=deadline)
    elif isinstance(deadline, dt.timedelta):
        deadline = start + deadline
    if deadline <= start:
        raise ValueError(f"the deadline {deadline} is not after the start {start}")
    ivs, extrapolated = _intervals(pts, start, deadline)
    fastest = simulate(curve, ivs, work, lambda i: curve.fastest_w)
    if fastest.completion > deadline:
        raise InfeasibleDeadline(
            f"{work:g} steps take until {fastest.completion.isoformat()} at the fastest cap "
            f"({curve.fastest_w:g} W); the deadline is {deadline.isoformat()}",
            fastest.completion,
        )
    if allow_pause and curve.idle_w is None:
        raise ValueError("allow_pause needs the idle draw: give a Curve with idle_w")
    chain = curve.chain((0.0, curve.idle_w) if allow_pause else None)
    last_chain = curve.chain((0.0, 0.0))
    k_first = next(i for i, s in enumerate(ivs) if s[0] <= fastest.completion <= s[1])
    best = None
    for k in range(k_first, len(ivs)):
        sol = _solve_k(chain, last_chain, ivs[: k + 1], work)
        if sol is not None and (best is None or sol[0] < best[0] * (1 - 1e-12)):
            best = (sol[0], k, sol[1], sol[2])
    if best is None:  # no slack at all (deadline = the fastest completion): run flat out
        outcome = dataclasses.replace(fastest, name="planned")
    else:
        _, k, level, frac = best
        outcome = _outcome(ivs[: k + 1], chain, last_chain, level, frac)
    return Plan(
        curve,
        start,
        deadline,
        work,
        outcome,
        ivs,
        extrapolated,
        _intervals(pts, start, None)[0],
    )


def _outcome(ivs, chain, last_chain, level, frac) -> Outcome:
    """The segments of a solution: per interval its vertex, or the two it mixes (the faster
    one first, so that a forecast error late in the interval costs less)."""
    segs = []
    energy = carbon = 0.0
    for i, (a, b, inten) in enumerate(ivs):
        ch = last_chain if i == len(ivs) - 1 else chain
        d = (b - a).total_seconds()
        if frac[i] > 0 and (1.0 - frac[i]) * d < MIN_SEGMENT_S:  # a slower sliver: run faster
            level, frac = list(level), list(frac)
            level[i], frac[i] = level[i] + 1, 0.0
        if frac[i] == 0.0:
            parts = [(ch[level[i]], d)]
        else:
            parts = [(ch[level[i] + 1], frac[i] * d), (ch[level[i]], (1.0 - frac[i]) * d)]
        t = a
        for n, ((r, p, cap), span) in enumerate(parts):
            end = b if n == len(parts) - 1 else t + dt.timedelta(seconds=span)
            if end > t:
                segs.append(Segment(t, end, cap, inten, running=r > 0))
                energy += span * p
                carbon += span * p / J_PER_KWH * inten
            t = end
    # The last interval ends "done" (r = 0, P = 0): completion is where its running part ends.
    completion = max(s.end for s in segs if s.running)
    segs = [s for s in segs if s.running or s.end <= completion]
    time_s = (completion - ivs[0][0]).total_seconds()
    return Outcome("planned", completion, time_s, energy, carbon, tuple(segs))
