"""The planner against an independent linear program (scipy's HiGHS over every profiled cap,
not the frontier the planner builds), and its schedules replayed step by step."""

import datetime as dt
import random

import numpy as np
import pytest
from scipy.optimize import linprog

from greenops import carbon
from greenops.carbon import Curve, InfeasibleDeadline, Point, Reactive, plan
from greenops.carbon.planner import J_PER_KWH
from greenops.power import ProfileResult, ProfileRow, load_profile

T0 = dt.datetime(2020, 6, 1, tzinfo=dt.timezone.utc)


def forecast(values, minutes=30):
    return [Point(T0 + dt.timedelta(minutes=minutes * i), v) for i, v in enumerate(values)]


def lp_optimum(curve, ivs, work, pause_w=None):
    """min over the completion interval k of an LP: x[i, c] = seconds at cap c in interval i;
    intervals before k run for their whole length (or pause at pause_w), interval k may stop."""
    rates = [1 / t for t in curve.step_time_s]
    powers = list(curve.power_w)
    if pause_w is not None:
        rates.append(0.0)
        powers.append(pause_w)
    n_c = len(rates)
    best = None
    for k in range(len(ivs)):
        n = (k + 1) * n_c
        cost = np.zeros(n)
        a_eq, b_eq = [], []
        a_ub, b_ub = [], []
        for i in range(k + 1):
            a, b, inten = ivs[i]
            d = (b - a).total_seconds()
            cost[i * n_c : (i + 1) * n_c] = [inten * p / J_PER_KWH for p in powers]
            row = np.zeros(n)
            row[i * n_c : (i + 1) * n_c] = 1
            if i < k:
                a_eq.append(row), b_eq.append(d)
            else:
                a_ub.append(row), b_ub.append(d)
        work_row = np.zeros(n)
        for i in range(k + 1):
            work_row[i * n_c : (i + 1) * n_c] = rates
        a_eq.append(work_row), b_eq.append(work)
        r = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, method="highs")
        if r.status == 0 and (best is None or r.fun < best):
            best = r.fun
    return best


def replay(curve, p):
    """Work, energy and carbon of a plan's segments, recomputed from the curve."""
    work = energy = carbon_g = 0.0
    for s in p.segments:
        span = (s.end - s.start).total_seconds()
        if s.running:
            t, w = curve.at(s.cap_w)
            work += span / t
        else:
            w = curve.idle_w
        energy += span * w
        carbon_g += span * w / J_PER_KWH * s.intensity_g_per_kwh
    return work, energy, carbon_g


def random_curve(rng, convex):
    caps = sorted(rng.sample(range(100, 320, 10), rng.randint(2, 6)))
    t = sorted((rng.uniform(0.5, 2.0) for _ in caps), reverse=True)
    if convex:  # power per step falls then rises: a typical sweep
        p = [40 + 0.8 * c + rng.uniform(-5, 5) for c in caps]
    else:
        p = [rng.uniform(50, 300) for _ in caps]
    return Curve(tuple(float(c) for c in caps), tuple(t), tuple(p), idle_w=30.0)


@pytest.mark.parametrize("seed", range(40))
def test_plan_equals_the_lp_optimum_and_replays_exactly(seed):
    rng = random.Random(seed)
    curve = random_curve(rng, convex=seed % 2 == 0)
    fc = forecast([rng.uniform(20, 400) for _ in range(rng.randint(2, 9))], rng.choice([15, 30]))
    horizon_s = (len(fc)) * (fc[1].time - fc[0].time).total_seconds()
    fastest = curve.at(curve.fastest_w)[0]
    work = rng.uniform(0.2, 0.8) * horizon_s / fastest
    deadline = dt.timedelta(seconds=rng.uniform(1.01, 1.6) * work * fastest)
    pause = seed % 3 == 0
    p = plan(curve, fc, work, deadline, allow_pause=pause)
    want = lp_optimum(curve, p.intervals, work, curve.idle_w if pause else None)
    assert p.outcome.carbon_g == pytest.approx(want, rel=1e-7, abs=1e-9)
    done, energy, carbon_g = replay(curve, p)
    assert done == pytest.approx(work, rel=1e-9)
    assert energy == pytest.approx(p.outcome.energy_j, rel=1e-9)
    assert carbon_g == pytest.approx(p.outcome.carbon_g, rel=1e-9)
    assert p.completion <= p.deadline
    # Segments tile the time from the start to completion, at most one interval mixes caps.
    assert p.segments[0].start == p.start and p.segments[-1].end == p.completion
    assert all(a.end == b.start for a, b in zip(p.segments, p.segments[1:], strict=False))
    per_interval = [sum(1 for s in p.segments if a <= s.start < b) for a, b, _ in p.intervals]
    assert sum(n > 1 for n in per_interval) <= 1
    # Never worse than any static cap that meets the deadline.
    cmp = p.compare()
    assert cmp["planned"].carbon_g <= cmp["best static"].carbon_g * (1 + 1e-9)


def test_constant_intensity_runs_the_least_energy_mix_that_meets_the_deadline():
    curve = Curve.of("v100-resnet50")
    fc = forecast([200.0] * 48)
    fastest = curve.at(curve.fastest_w)[0]
    work = 10 * 3600 / fastest  # 10 h uncapped
    loose = plan(curve, fc, work, 20.0)  # time for the least-energy cap alone
    assert {s.cap_w for s in loose.segments} == {curve.min_energy_w}
    assert loose.outcome.energy_j == pytest.approx(
        work * curve.energy_per_step_j(curve.min_energy_w)
    )
    tight = plan(curve, fc, work, 10.0 * 1.025)
    assert tight.completion == pytest.approx(tight.deadline, abs=dt.timedelta(seconds=1))


def test_dirty_hours_get_lower_caps():
    curve = Curve.of("v100-resnet50")
    fc = forecast([100.0, 400.0] * 12, minutes=60)
    work = 20 * 3600 / curve.at(curve.fastest_w)[0]
    p = plan(curve, fc, work, 22.0)
    clean = [s.cap_w for s in p.segments if s.intensity_g_per_kwh == 100.0]
    dirty = [s.cap_w for s in p.segments if s.intensity_g_per_kwh == 400.0]
    assert min(clean) >= max(dirty)
    assert max(clean) == curve.fastest_w


def test_infeasible_deadline_says_when_it_could_finish():
    curve = Curve.of("v100-bert")
    fc = forecast([100.0] * 10)
    work = 3 * 3600 / curve.at(curve.fastest_w)[0]
    with pytest.raises(InfeasibleDeadline, match="deadline") as e:
        plan(curve, fc, work, 2.5)
    assert e.value.earliest == T0 + dt.timedelta(hours=3)


def test_deadline_past_the_forecast_holds_its_last_value():
    curve = Curve.of("v100-bert")
    fc = forecast([100.0, 300.0])
    p = plan(curve, fc, 2 * 3600 / curve.at(250.0)[0], 3.0)
    assert p.extrapolated and p.intervals[-1][2] == 300.0
    assert p.intervals[-1][1] == p.deadline


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"work": 0}, "work must be positive"),
        ({"deadline": -1.0}, "not after the start"),
        ({"forecast": []}, "empty forecast"),
        (
            {"allow_pause": True, "profile": Curve((100.0, 200.0), (2.0, 1.0), (90.0, 150.0))},
            "idle",
        ),
    ],
)
def test_bad_input(kwargs, error):
    args = {"profile": "v100-bert", "forecast": forecast([100.0] * 4), "work": 10, "deadline": 1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=error):
        plan(**args)


def test_cap_at_follows_the_segments():
    curve = Curve.of("v100-resnet50")
    fc = forecast([100.0, 400.0, 100.0, 400.0], minutes=60)
    p = plan(curve, fc, 3.5 * 3600 / curve.at(250.0)[0], 4.0)
    for s in p.segments:
        assert p.cap_at(s.start + (s.end - s.start) / 2) == s.cap_w
    assert p.cap_at(p.completion + dt.timedelta(seconds=1)) is None
    assert p.cap_at(T0 - dt.timedelta(seconds=1)) is None


def test_curve_from_every_profile_kind(tmp_path):
    sim = load_profile("v100-bert")
    a = Curve.of("v100-bert")
    assert Curve.of(sim) == a and a.simulated and a.idle_w == pytest.approx(30.0)
    rows = [ProfileRow(w, *sim_at(sim, w)) for w in (250.0, 200.0, 150.0)]
    r = ProfileResult(rows, 250.0, ["gpu"], False)
    path = tmp_path / "sweep.json"
    r.save(str(path))
    b = Curve.of(str(path))
    assert b.limits_w == (150.0, 200.0, 250.0) and not b.simulated
    assert b.at(200.0) == pytest.approx(a.at(200.0))
    with pytest.raises(TypeError):
        Curve.of(3.5)
    with pytest.raises(ValueError, match="ascending"):
        Curve((200.0, 100.0), (1.0, 2.0), (100.0, 80.0))


def sim_at(profile, w):
    t, p = profile.at(w)
    return t, t * p


def test_frontier_drops_dominated_and_non_convex_points():
    # 150 W: slower and hungrier than 100 W -> dominated; 200 W: above the 100-300 chord.
    c = Curve((100.0, 150.0, 200.0, 300.0), (2.0, 2.5, 1.2, 1.0), (100.0, 120.0, 190.0, 200.0))
    caps = [v[2] for v in c.chain()]
    assert caps == [100.0, 300.0]
    done = [v[2] for v in c.chain((0.0, 0.0))]
    assert done[0] == 0.0 and done[-1] == 300.0


def test_reactive_follows_zeus_at_the_reference_and_moves_with_intensity():
    prof = load_profile("v100-resnet50")
    curve = Curve.of(prof)
    rows = [ProfileRow(w, *sim_at(prof, w)) for w in curve.limits_w]
    zeus = ProfileResult(rows, max(curve.power_w), ["sim"], True)
    pol = Reactive(eta=0.5, reference_g=200.0)
    assert pol.cap_w(200.0, curve) == zeus.zeus_cost(0.5).limit_w
    caps = [pol.cap_w(g, curve) for g in (20, 100, 200, 400, 2000)]
    assert caps == sorted(caps, reverse=True) and caps[0] > caps[-1]
    assert caps[-1] == curve.min_energy_w
    with pytest.raises(ValueError):
        Reactive(eta=2)


def test_reactive_calibrates_from_history():
    src = carbon.Constant(321.0)
    pol = Reactive()
    pol.calibrate(src)
    assert pol.reference_g == pytest.approx(321.0)
