"""A forecaster for sources that only have history (traces, zones without a forecast API):
the daily profile of the last days, levelled to the last day, blended with persistence.

    src = carbon.Forecasting(carbon.ElectricityMaps(zone="DE"))  # free tier: no forecast
    src.forecast(24)        # the source's own forecast where it has one, else the built-in
    src.forecaster.errors() # {horizon h: mean absolute % error} of its past forecasts so far

At horizon h after the latest point (value v): f(h) = w·v + (1 − w)·L·D(slot), w = exp(−h/τ)
with τ = `blend_hours`; D(slot) is the mean of the history at that time of day (in the
history's own step) and L the last 24 h's mean over the whole history's mean (a windy week
moves every hour alike). Persistence wins at short horizons, the daily shape at long ones —
the kind of lightweight forecaster carbon-aware schedulers use (Chase; "Let's Wait Awhile").
"""

from __future__ import annotations

import datetime as dt
import math

from .sources import Point, Source, median_step

DAY = dt.timedelta(days=1)


def seasonal_forecast(history: list[Point], hours: float, blend_hours: float = 6.0) -> list[Point]:
    """Points every history step from the one after the latest point to `hours` past it."""
    pts = sorted(history, key=lambda p: p.time)
    if not pts:
        return []
    step = median_step(pts)
    slots = max(1, round(DAY / step))
    sums, counts = [0.0] * slots, [0] * slots

    def slot(t: dt.datetime) -> int:
        return int(((t - pts[0].time) / step) % slots)

    for p in pts:
        sums[slot(p.time)] += p.intensity_g_per_kwh
        counts[slot(p.time)] += 1
    means = [a / c for a, c in zip(sums, counts, strict=True) if c]
    overall = sum(means) / len(means)  # over the day's slots: part days do not bias it
    recent = [p.intensity_g_per_kwh for p in pts if p.time > pts[-1].time - DAY]
    level = (sum(recent) / len(recent)) / overall if overall > 0 else 1.0
    last = pts[-1]
    out = []
    n = int(math.ceil(hours * 3600 / step.total_seconds()))
    for k in range(1, n + 1):
        t = last.time + k * step
        s = slot(t)
        daily = sums[s] / counts[s] * level if counts[s] else last.intensity_g_per_kwh
        w = math.exp(-(k * step).total_seconds() / 3600 / blend_hours)
        out.append(Point(t, w * last.intensity_g_per_kwh + (1 - w) * daily))
    return out


class Forecaster:
    """Forecasts from a source's history (`history_hours`, default a week) and keeps every
    forecast it made, so that `errors()` can score them against the history seen since."""

    def __init__(self, source: Source, history_hours: float = 7 * 24, blend_hours: float = 6.0):
        self.source, self.history_hours, self.blend_hours = source, history_hours, blend_hours
        self._made: list[tuple[dt.datetime, list[Point]]] = []

    def forecast(self, hours: float = 24) -> list[Point]:
        hist = self.source.history(self.history_hours)
        out = seasonal_forecast(hist, hours, self.blend_hours)
        if out:
            self._made.append((hist[-1].time, out))
            self._made = self._made[-500:]  # bounded: a long job re-forecasts often
        return out

    def errors(self, horizons_h=(1, 6, 24)) -> dict[float, float | None]:
        """{horizon: mean absolute % error} of the past forecasts whose targets the history
        now holds (None where none has come due yet)."""
        actual = {p.time: p.intensity_g_per_kwh for p in self.source.history(self.history_hours)}
        out = {}
        for h in horizons_h:
            errs = []
            for made, pts in self._made:
                target = made + dt.timedelta(hours=h)
                hit = min(pts, key=lambda p: abs(p.time - target), default=None)
                if hit is not None and hit.time in actual and actual[hit.time] > 0:
                    errs.append(abs(hit.intensity_g_per_kwh - actual[hit.time]) / actual[hit.time])
            out[h] = 100 * sum(errs) / len(errs) if errs else None
        return out


class Forecasting(Source):
    """A source whose forecast() is its own where it has one, else the built-in Forecaster's;
    current() and history() are the source's. `forecast_basis` says which the last one was."""

    def __init__(self, source: Source, forecaster: Forecaster | None = None) -> None:
        super().__init__(source.default_g_per_kwh)
        self.source = source
        self.name = f"{source.name}+forecaster"
        self.update_period_s = 0.0  # the wrapped source caches
        self.forecaster = forecaster or Forecaster(source)
        self.forecast_basis: str | None = None

    def _fetch_current(self) -> float:
        v = self.source.current()
        if v is None:
            raise ValueError(self.source.last_error or f"{self.source.name}: no intensity")
        return v

    def _fetch_history(self, hours: float) -> list[Point]:
        return self.source.history(hours)

    def _fetch_forecast(self, hours: float) -> list[Point]:
        has_api = type(self.source)._fetch_forecast is not Source._fetch_forecast
        own = self.source.forecast(hours) if has_api else []
        now = self.source._clock() if hasattr(self.source, "_clock") else None
        if own and (now is None or own[-1].time > now):
            self.forecast_basis = "source"
            return own
        self.forecast_basis = "forecaster"
        return self.forecaster.forecast(hours)
