"""Open loop (a plan followed by the clock) against the closed loop (carbon.Replanner: the
measured rate per cap, the rest re-planned) for a job whose true throughput is `speed` times
its profile's, replayed over the bundled traces with the trace as a perfect forecast: a 24 h
job (at the default limit) with a deadline of 1.05x that. Prints completion (x the deadline)
and kgCO2eq of each.

    python bench/bench_replan.py
"""

import dataclasses
import datetime as dt
import logging

from greenops.carbon import Curve, Replanner, Trace, plan
from greenops.carbon.replay import replay
from greenops.power.simulated import load_profile

SPEEDS = (0.95, 0.97, 0.98, 1.0, 1.02, 1.05)


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
                true = dataclasses.replace(
                    nominal, window_time_s=tuple(t / speed for t in nominal.window_time_s)
                )
                o = replay(true, tr, steps, p, start=start)
                r = Replanner(curve, lambda h, tr=tr: tr.points, deadline, work=steps)
                c = replay(true, tr, steps, r, start=start)
                status = "flat out (infeasible)" if "cannot" in r.status else "met"
                print(
                    f"| {trace[:2].upper()} | {workload} | {speed:.2f} | {o.time_s / limit:.4f} | "
                    f"{o.gco2_eq / 1e3:.3f} | {c.time_s / limit:.4f} | {c.gco2_eq / 1e3:.3f} | "
                    f"{status} |"
                )


if __name__ == "__main__":
    main()
