"""Closed-loop (model-predictive) carbon-aware capping: re-plan the remaining work to the
deadline from measured progress and the latest forecast.

    r = carbon.Replanner(curve, forecast=src.forecast, work_hours=10, deadline=14)
    cap = r.cap(now, steps_done)      # every period, and whenever a forecast arrives

Each call measures the rate (and, given the energy counter, the power) since the last one at
the cap that was in force, keeps the ratios measured / profiled per cap (exponential averages,
so that a job 2% slower than its profile is planned as 2% slower; caps not yet seen take the
mean ratio), and re-plans the work left
from now to the deadline on the profile scaled by those ratios, against `forecast(hours)`.
When no schedule meets the deadline any more it runs at the fastest cap and says so
(`status`, `log`); `carbon_aware(..., policy=replanner)` and `replay` drive it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from .curve import Curve
from .planner import InfeasibleDeadline, Plan, plan, work_of

log = logging.getLogger("greenops.carbon")


class Replanner:
    def __init__(
        self,
        profile,
        forecast,
        deadline: dt.datetime,
        work: float | None = None,
        work_hours: float | None = None,
        replan_s: float = 900.0,
        smoothing: float = 0.5,
        allow_pause: bool = False,
    ) -> None:
        """profile: anything Curve.of takes; forecast(hours) -> points (a source's forecast
        method, or a Forecasting source's); deadline: an aware datetime; work or work_hours;
        replan_s: re-plan at least this often even without news; smoothing: weight of a new
        rate measurement in the per-cap average."""
        self.curve = Curve.of(profile)
        self.work = work_of(self.curve, work, work_hours)
        if deadline.tzinfo is None:
            raise ValueError("the deadline must be timezone-aware (UTC)")
        self.deadline, self.forecast, self.replan_s = deadline, forecast, replan_s
        self.smoothing, self.allow_pause = smoothing, allow_pause
        self.ratios: dict[float, float] = {}  # measured / profiled rate, per cap
        self.power_ratios: dict[float, float] = {}  # measured / profiled power, per cap
        self.plan: Plan | None = None
        self.status = "planning"  # "on plan" | "flat out: <why>" | "done"
        self.log: list[tuple[dt.datetime, float, float, str]] = []  # (t, done, cap, status)
        self._last: tuple | None = None  # (t, done, cap, energy J or None)
        self._planned_at: dt.datetime | None = None
        self._forecast_key = None

    def scaled_curve(self) -> Curve:
        """The profile with each cap's step time divided by its measured rate ratio and its
        power times its measured power ratio (caps not seen yet: the mean ratio)."""

        def scaled(values, ratios, inverse):
            mean = sum(ratios.values()) / len(ratios) if ratios else 1.0
            return tuple(
                v / ratios.get(c, mean) if inverse else v * ratios.get(c, mean)
                for c, v in zip(self.curve.limits_w, values, strict=True)
            )

        return dataclasses.replace(
            self.curve,
            step_time_s=scaled(self.curve.step_time_s, self.ratios, True),
            power_w=scaled(self.curve.power_w, self.power_ratios, False),
        )

    def _average(self, ratios: dict, cap: float, ratio: float) -> None:
        old = ratios.get(cap)
        ratios[cap] = ratio if old is None else old + self.smoothing * (ratio - old)

    def _measure(self, now: dt.datetime, done: float, energy_j: float | None) -> None:
        if self._last is None:
            return
        t0, d0, cap, e0 = self._last
        span = (now - t0).total_seconds()
        if span <= 0 or cap <= 0:
            return
        if done > d0:
            self._average(self.ratios, cap, (done - d0) / span / self.curve.rate(cap))
        if energy_j is not None and e0 is not None and energy_j > e0:
            self._average(self.power_ratios, cap, (energy_j - e0) / span / self.curve.at(cap)[1])

    def cap(self, now: dt.datetime, done: float, energy_j: float | None = None) -> float:
        """The cap (W; 0 = pause, with allow_pause) to run at from `now`, `done` steps in;
        `energy_j`: the devices' energy counter (any origin), so that power is learned too."""
        self._measure(now, done, energy_j)
        left = self.work - done
        if left <= self.work * 1e-9:
            self.status, w = "done", self.curve.fastest_w
        else:
            pts = self.forecast(max((self.deadline - now).total_seconds() / 3600, 1.0) + 1.0)
            key = (len(pts), pts[0].time, pts[-1].time) if pts else None
            stale = (
                self._planned_at is None
                or (now - self._planned_at).total_seconds() >= self.replan_s
            )
            if stale or key != self._forecast_key or self.plan is None:
                self._replan(now, left, pts)
                self._forecast_key = key
            w = self.plan.cap_at(now) if self.plan is not None else None
            if w is None:
                w = self.curve.fastest_w
        self._last = (now, done, w, energy_j)
        self.log.append((now, done, w, self.status))
        return w

    def _replan(self, now, left, pts) -> None:
        self._planned_at = now
        curve = self.scaled_curve()
        usable = [p for p in pts if p.time <= now][-1:] + [p for p in pts if p.time > now]
        if not usable:
            self._flat_out("no forecast")
            return
        if usable[0].time > now:  # the forecast starts later: its first value holds till then
            usable.insert(0, dataclasses.replace(usable[0], time=now))
        try:
            self.plan = plan(
                curve,
                usable,
                work=left,
                deadline=self.deadline,
                start=now,
                allow_pause=self.allow_pause,
            )
            self.status = "on plan"
        except InfeasibleDeadline as e:
            self._flat_out(f"the deadline cannot be met (earliest {e.earliest.isoformat()})")
        except ValueError as e:  # a deadline already past
            self._flat_out(str(e))

    def _flat_out(self, why: str) -> None:
        was, self.plan, self.status = self.status, None, f"flat out: {why}"
        if not was.startswith("flat out"):  # said once, when slack runs out
            log.warning("carbon replanner: %s; running at the fastest cap", why)
