"""Baselines and units: the device's default limit beside the fastest cap (an A40 runs BERT
faster and on less energy at 275 W than at its default 300 W), the job's size in hours at the
default limit everywhere, replay over a forecast (a list of points)."""

import pytest

from greenops.carbon import Curve, Trace, plan
from greenops.carbon.replay import replay


def test_compare_includes_the_default_limit_which_is_not_always_the_fastest():
    curve = Curve.of("a40-bert")
    assert curve.default_limit_w == 300 and curve.fastest_w == 275
    fc = Trace("gb-2020-01").points[:96]
    p = plan(curve, fc, work_hours=10, deadline=14)
    cmp = p.compare()
    default, fastest = cmp["default limit"], cmp["uncapped"]
    assert default.name == "default limit 300 W"
    assert default.time_s > fastest.time_s and default.energy_j > fastest.energy_j
    assert cmp["planned"].carbon_g < default.carbon_g
    assert default.time_s == pytest.approx(10 * 3600)  # ten hours at the default limit


def test_work_hours_is_the_default_limits_hours_everywhere():
    curve = Curve.of("a40-bert")
    fc = Trace("gb-2020-01").points[:96]
    steps = curve.steps_in(10)
    assert steps == pytest.approx(10 * 3600 / curve.at(300)[0])
    a = plan(curve, fc, work_hours=10, deadline=14)
    b = plan(curve, fc, work=steps, deadline=14)
    assert a.segments == b.segments
    r = replay("a40-bert", "gb-2020-01", policy=300.0, work_hours=10)
    assert r.time_s == pytest.approx(10 * 3600)
    for kw in ({}, {"work": steps, "work_hours": 10}):
        with pytest.raises(ValueError, match="work= .steps. or work_hours="):
            plan(curve, fc, deadline=14, **kw)
    with pytest.raises(ValueError, match="work_hours must be positive"):
        plan(curve, fc, work_hours=0, deadline=14)


def test_replay_over_a_forecast_list_equals_the_trace():
    tr = Trace("fr-2020-01")
    curve = Curve.of("v100-resnet50")
    p = plan(curve, tr.points[:96], work_hours=6, deadline=9)
    a = replay("v100-resnet50", tr.points[:96], policy=p, work_hours=6)
    b = replay("v100-resnet50", tr, policy=p, work_hours=6)
    assert a.gco2_eq == pytest.approx(b.gco2_eq) and a.time_s == pytest.approx(b.time_s)
