"""The closed loop: a job whose true throughput differs from its profile by 2-5% misses its
deadline when it follows a plan by the clock (open loop), and meets it with the Replanner,
which learns the measured rate per cap and re-plans the rest of the work; where the deadline
has become infeasible it runs flat out and says so."""

import dataclasses
import datetime as dt

import pytest

from greenops.carbon import Curve, Replanner, Trace, plan
from greenops.carbon.replay import replay
from greenops.power.simulated import load_profile


def _true(nominal, speed):
    """The device as it really runs: `speed` times its profile's throughput."""
    return dataclasses.replace(
        nominal, window_time_s=tuple(t / speed for t in nominal.window_time_s)
    )


def _case(trace, workload, speed, slack=1.05, hours=24.0):
    nominal = load_profile(workload)
    curve = Curve.of(nominal)
    tr = Trace(trace)
    start = tr.points[0].time
    steps = curve.steps_in(hours)
    deadline = start + dt.timedelta(hours=hours * slack)
    p = plan(curve, tr.points, work=steps, deadline=deadline, start=start)
    open_loop = replay(_true(nominal, speed), tr, steps, p, start=start)
    r = Replanner(curve, lambda h: tr.points, deadline, work=steps)
    closed = replay(_true(nominal, speed), tr, steps, r, start=start)
    return (deadline - start).total_seconds(), p, open_loop, r, closed


@pytest.mark.parametrize("trace", ["gb-2020-01", "fr-2020-01"])
@pytest.mark.parametrize("workload", ["v100-resnet50", "a40-bert"])
@pytest.mark.parametrize("speed", [0.97, 0.98, 1.02, 1.05])
def test_the_closed_loop_meets_deadlines_the_open_loop_misses(trace, workload, speed):
    limit, p, open_loop, r, closed = _case(trace, workload, speed)
    assert closed.time_s <= limit + 1.0 and not r.status.startswith("flat out")
    if speed < 1:
        assert open_loop.time_s > limit + 60  # followed by the clock: late
    used = {w for _, _, w, _ in r.log[1:-1]}
    for w in used & set(r.ratios):  # the rate it learned is the device's true one
        assert r.ratios[w] == pytest.approx(speed, rel=1e-6)


def test_with_an_exact_profile_the_closed_loop_is_the_plan():
    limit, p, open_loop, r, closed = _case("gb-2020-01", "v100-resnet50", 1.0)
    assert closed.gco2_eq == pytest.approx(p.outcome.carbon_g, rel=1e-4)
    assert closed.time_s == pytest.approx(open_loop.time_s, rel=1e-6)


def test_an_infeasible_deadline_runs_flat_out_and_says_so(caplog):
    limit, p, open_loop, r, closed = _case("gb-2020-01", "v100-resnet50", 0.95)
    assert any(s.startswith("flat out: the deadline cannot be met") for *_, s in r.log)
    assert closed.time_s < open_loop.time_s  # as early as the device allows
    fastest = _true(load_profile("v100-resnet50"), 0.95)
    flat = replay(fastest, "gb-2020-01", r.work, Curve.of(fastest).fastest_w)
    assert closed.time_s <= flat.time_s * 1.01
    assert sum("cannot be met" in m for m in caplog.messages) == 1  # said once


def test_bad_input():
    c = Curve.of("v100-resnet50")
    with pytest.raises(ValueError, match="timezone-aware"):
        Replanner(c, lambda h: [], dt.datetime(2030, 1, 1), work=10)
    with pytest.raises(ValueError, match="work= .steps. or work_hours="):
        Replanner(c, lambda h: [], dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))


def test_it_learns_the_power_drawn_at_each_cap_too():
    """A device drawing 10% more than its profile: the power ratios learned from the energy
    counter say 1.1 at every cap it ran at, and the plan's carbon estimate follows."""
    nominal = load_profile("v100-resnet50")
    hot = dataclasses.replace(nominal, power_w=tuple(p * 1.1 for p in nominal.power_w))
    tr = Trace("gb-2020-01")
    start = tr.points[0].time
    curve = Curve.of(nominal)
    r = Replanner(curve, lambda h: tr.points, start + dt.timedelta(hours=26), work_hours=24)
    replay(hot, tr, r.work, r, start=start)
    assert r.power_ratios and all(
        v == pytest.approx(1.1, rel=1e-6) for v in r.power_ratios.values()
    )
    scaled = r.scaled_curve()
    assert scaled.power_w == pytest.approx(tuple(p * 1.1 for p in curve.power_w))
