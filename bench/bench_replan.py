"""The closed loop (carbon.Replanner: the measured rate per cap, the rest re-planned) on the
bundled traces, in two tables.

1. Open loop (a plan followed by the clock) against the closed loop for a job whose true
   throughput is `speed` times its profile's, the trace as a perfect forecast: a 24 h job (at
   the default limit) with a deadline of 1.05x that; completion (x the deadline) and kgCO2eq.
2. Forecast error: the closed loop re-planning on forecasts issued afresh at every decision —
   perfect, with 10% / 25% independent noise per point, 25% correlated along the horizon (AR(1),
   rho 0.9), and the built-in forecaster (the last week's history only) — for devices 5% slow to
   5% fast, deadline 1.1x, starting on day 4 (history for the built-in). Carbon against the
   plan made with a perfect forecast *and* the true device, and against the best static cap that
   meets the deadline on the true device; deadlines missed where feasible.

    python bench/bench_replan.py
"""

import dataclasses
import datetime as dt
import logging
import random
import statistics

from greenops.carbon import Curve, Point, Replanner, Trace, plan, seasonal_forecast
from greenops.carbon.replay import replay
from greenops.power.simulated import load_profile

SPEEDS = (0.95, 0.97, 0.98, 1.0, 1.02, 1.05)


def _true(nominal, speed):
    return dataclasses.replace(
        nominal, window_time_s=tuple(t / speed for t in nominal.window_time_s)
    )


class _Clocked(Replanner):
    """Remembers the time of its last decision, for forecasts issued at that time."""

    def cap(self, now, done, energy_j=None):
        self.now = now
        return super().cap(now, done, energy_j)


def _noisy(tr, r, sigma, rho, rng):
    """forecast(hours) at r.now: the trace ahead with relative noise sigma (AR(1) with rho
    along the horizon), the current interval exact (it is measured)."""

    def forecast(hours):
        now = r.now
        ahead = [p for p in tr.points if now - tr.step < p.time <= now + dt.timedelta(hours=hours)]
        out, e = [], 0.0
        for p in ahead:
            if p.time <= now:
                out.append(p)
                continue
            e = rho * e + (1 - rho**2) ** 0.5 * rng.gauss(0, 1)
            out.append(Point(p.time, max(1.0, p.intensity_g_per_kwh * (1 + sigma * e))))
        return out

    return forecast


def _builtin(tr, r):
    def forecast(hours):
        hist = [p for p in tr.points if r.now - dt.timedelta(days=7) <= p.time <= r.now]
        return hist[-1:] + seasonal_forecast(hist, hours)

    return forecast


KINDS = {  # forecast kind: (sigma, rho, seeds)
    "perfect": (0.0, 0.0, 1),
    "10% noise": (0.10, 0.0, 3),
    "25% noise": (0.25, 0.0, 3),
    "25% correlated": (0.25, 0.9, 3),
    "built-in": (None, None, 1),
}


def forecast_table() -> None:
    rows = []
    for trace in ("gb-2020-01", "fr-2020-01"):
        tr = Trace(trace)
        start = tr.points[0].time + dt.timedelta(days=3)
        ahead = [p for p in tr.points if p.time >= start]
        for workload in ("v100-resnet50", "a40-bert"):
            nominal = load_profile(workload)
            curve = Curve.of(nominal)
            steps = curve.steps_in(24.0)
            deadline = start + dt.timedelta(hours=24 * 1.1)
            limit = (deadline - start).total_seconds()
            for speed in (0.95, 0.97, 1.0, 1.03, 1.05):
                true = _true(nominal, speed)
                oracle = plan(Curve.of(true), ahead, work=steps, deadline=deadline, start=start)
                best = replay(true, tr, steps, oracle, start=start)
                statics = [replay(true, tr, steps, w, start=start) for w in curve.limits_w]
                met = [s for s in statics if s.time_s <= limit + 1]
                static = min(met, key=lambda s: s.gco2_eq)
                for kind, (sigma, rho, seeds) in KINDS.items():
                    for seed in range(seeds):
                        r = _Clocked(curve, None, deadline, work=steps)
                        r.forecast = (
                            _builtin(tr, r)
                            if sigma is None
                            else _noisy(tr, r, sigma, rho, random.Random(seed))
                        )
                        c = replay(true, tr, steps, r, start=start)
                        rows.append(
                            (
                                kind,
                                c.gco2_eq / best.gco2_eq - 1,
                                c.gco2_eq / static.gco2_eq - 1,
                                c.time_s > limit + 1,
                            )
                        )
    print(
        "\n| forecast | cases | carbon vs perfect plan: median | worst | worse than the best "
        "static by > 1% | deadlines missed |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for kind in KINDS:
        rs = [r for r in rows if r[0] == kind]
        loss = [r[1] for r in rs]
        print(
            f"| {kind} | {len(rs)} | {100 * statistics.median(loss):+.2f}% | "
            f"{100 * max(loss):+.2f}% | {sum(r[2] > 0.01 for r in rs)} | {sum(r[3] for r in rs)} |"
        )


def main() -> None:
    logging.getLogger("greenops.carbon").setLevel(logging.ERROR)
    print(
        "| trace | workload | true speed | open loop: time × deadline | kgCO2eq "
        "| closed loop: time × deadline | kgCO2eq | closed loop status |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for trace in ("gb-2020-01", "fr-2020-01"):
        tr = Trace(trace)
        for workload in ("v100-resnet50", "a40-bert"):
            nominal = load_profile(workload)
            curve = Curve.of(nominal)
            start = tr.points[0].time
            steps = curve.steps_in(24.0)
            deadline = start + dt.timedelta(hours=24 * 1.05)
            limit = (deadline - start).total_seconds()
            p = plan(curve, tr.points, work=steps, deadline=deadline, start=start)
            for speed in SPEEDS:
                true = _true(nominal, speed)
                o = replay(true, tr, steps, p, start=start)
                r = Replanner(curve, lambda h, tr=tr: tr.points, deadline, work=steps)
                c = replay(true, tr, steps, r, start=start)
                status = "flat out (infeasible)" if "cannot" in r.status else "met"
                print(
                    f"| {trace[:2].upper()} | {workload} | {speed:.2f} | {o.time_s / limit:.4f} | "
                    f"{o.gco2_eq / 1e3:.3f} | {c.time_s / limit:.4f} | {c.gco2_eq / 1e3:.3f} | "
                    f"{status} |"
                )

    forecast_table()


if __name__ == "__main__":
    main()
