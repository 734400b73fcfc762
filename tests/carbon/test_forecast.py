"""The built-in forecaster for history-only sources: exact on a purely daily signal, persistence
at short horizons and the levelled daily shape at long ones, its error scored as it goes, and
used only where the source has no forecast of its own."""

import datetime as dt
import math

import pytest

from greenops.carbon import Constant, Point, Trace
from greenops.carbon.forecast import Forecaster, Forecasting, seasonal_forecast
from greenops.carbon.sources import Source

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def _daily(days, step_min=30, level=1.0):
    n = days * 24 * 60 // step_min
    return [
        Point(
            T0 + dt.timedelta(minutes=step_min * i),
            level * (200 + 80 * math.sin(i * 2 * math.pi * step_min / 1440)),
        )
        for i in range(n)
    ]


def test_a_purely_daily_signal_is_forecast_exactly_by_its_daily_shape():
    """With no weight on persistence the forecast is the signal; with some, it lies between
    the signal and the latest value (never further off than persistence)."""
    pts = _daily(5)[:-1]  # part days too
    truth = {p.time: p.intensity_g_per_kwh for p in _daily(7)}
    f = seasonal_forecast(pts, 24, blend_hours=1e-6)
    assert len(f) == 48 and f[0].time == pts[-1].time + dt.timedelta(minutes=30)
    for p in f:
        assert p.intensity_g_per_kwh == pytest.approx(truth[p.time], rel=1e-9)
    last = pts[-1].intensity_g_per_kwh
    for p in seasonal_forecast(pts, 24, blend_hours=6):
        assert abs(p.intensity_g_per_kwh - truth[p.time]) <= abs(last - truth[p.time]) + 1e-9


def test_persistence_first_then_the_levelled_daily_shape():
    pts = _daily(3)
    pts[-1] = Point(pts[-1].time, 900.0)  # a spike now
    f = seasonal_forecast(pts, 48, blend_hours=6)
    assert f[0].intensity_g_per_kwh > 700  # 30 min ahead: mostly the latest value
    daily = {(p.time.hour, p.time.minute): p.intensity_g_per_kwh for p in pts[:48]}
    late = f[-5]  # two days ahead, another time of day: the daily shape (spike weight ~e^-8)
    assert late.intensity_g_per_kwh == pytest.approx(
        daily[late.time.hour, late.time.minute], rel=0.1
    )
    flat = seasonal_forecast([Point(T0 + dt.timedelta(hours=h), 123.0) for h in range(50)], 10)
    assert all(p.intensity_g_per_kwh == pytest.approx(123.0) for p in flat)
    assert seasonal_forecast([], 5) == []


class HistoryOnly(Source):
    name = "history-only"
    update_period_s = 0.0

    def __init__(self, trace):
        super().__init__()
        self.trace = trace

    def _fetch_current(self):
        return self.trace.current()

    def _fetch_history(self, hours):
        return self.trace.history(hours)


def test_errors_are_scored_as_forecasts_come_due():
    now = [None]
    tr = Trace("gb-2020-01", clock=lambda: now[0])
    start = tr.points[0].time + dt.timedelta(days=3)
    fc = Forecaster(HistoryOnly(tr))
    now[0] = start
    assert fc.errors() == {1: None, 6: None, 24: None}
    for h in range(0, 30):
        now[0] = start + dt.timedelta(hours=h)
        assert fc.forecast(24)
    e = fc.errors()
    assert e[1] is not None and e[6] is not None and e[24] is not None
    assert 0 < e[1] < 50 and 0 < e[24] < 100


def test_the_sources_own_forecast_comes_first():
    own = Forecasting(Constant(250.0))
    assert own.forecast(6) and own.forecast_basis == "source"
    now = [Trace("fr-2020-01").points[0].time + dt.timedelta(days=4)]
    tr = Trace("fr-2020-01", clock=lambda: now[0])
    built = Forecasting(HistoryOnly(tr))
    f = built.forecast(12)
    assert built.forecast_basis == "forecaster" and len(f) == 24 and f[0].time > now[0] - tr.step
