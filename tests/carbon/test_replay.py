"""Replays on the simulated device agree with the planner's arithmetic and the curve's."""

import datetime as dt
import random

import pytest

from greenops.carbon import Curve, Reactive, Trace, bundled_trace, load_trace, plan
from greenops.carbon.replay import replay

T0 = dt.datetime(2020, 1, 6, tzinfo=dt.timezone.utc)


def write_trace(path, values, minutes=30):
    rows = [
        f"{(T0 + dt.timedelta(minutes=minutes * i)).isoformat()},{v}" for i, v in enumerate(values)
    ]
    path.write_text("Time,Carbon Intensity\n" + "\n".join(rows) + "\n")
    return str(path)


def test_static_cap_on_a_constant_grid(tmp_path):
    trace = write_trace(tmp_path / "t.csv", [250.0] * 20)
    curve = Curve.of("v100-bert")
    work = 5000.0
    r = replay("v100-bert", trace, work, 200.0)
    t, p = curve.at(200.0)
    assert r.time_s == pytest.approx(work * t)
    assert r.energy_j == pytest.approx(work * t * p)
    assert r.gco2_eq == pytest.approx(r.energy_j / 3.6e6 * 250.0)
    assert {w for _, w in r.caps} == {200.0}


@pytest.mark.parametrize("pause", [False, True])
def test_a_replayed_plan_emits_what_the_planner_expected(tmp_path, pause):
    rng = random.Random(3)
    trace = write_trace(tmp_path / "t.csv", [rng.uniform(50, 500) for _ in range(48)])
    curve = Curve.of("v100-resnet50")
    work = 15 * 3600 / curve.at(curve.fastest_w)[0]
    p = plan(curve, load_trace(trace), work, 15 * 1.3, allow_pause=pause)
    r = replay("v100-resnet50", trace, work, p)
    assert r.gco2_eq == pytest.approx(p.outcome.carbon_g, rel=1e-6)
    assert r.energy_j == pytest.approx(p.outcome.energy_j, rel=1e-6)
    assert r.time_s == pytest.approx(p.outcome.time_s, rel=1e-6)
    if pause:
        assert any(w == 0 for _, w in r.caps)


def test_reactive_and_callable_policies(tmp_path):
    trace = write_trace(tmp_path / "t.csv", [100.0, 1000.0] * 10, minutes=60)
    curve = Curve.of("v100-resnet50")
    r = replay("v100-resnet50", Trace(trace), 30000.0, Reactive(0.5, 300.0))
    caps = {w for _, w in r.caps}
    assert max(caps) > min(caps)
    seen = []
    replay("v100-resnet50", trace, 30000.0, lambda t, g: seen.append(g) or curve.fastest_w)
    assert set(seen) == {100.0, 1000.0}


def test_bundled_traces():
    pts = load_trace(bundled_trace("gb-2020-01"))
    assert len(pts) == 480 and pts[0].time == T0
    assert len(load_trace(bundled_trace("fr-2020-01"))) == 480
    with pytest.raises(ValueError, match="bundled"):
        bundled_trace("de")
