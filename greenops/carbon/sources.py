"""Carbon-intensity sources behind one interface: current(), history(hours), forecast(hours),
each in gCO2eq/kWh with UTC timestamps.

Every network source caches for its update period, retries with backoff, and on failure falls
back to the last value it knew (or the configured `default_g_per_kwh`) with one warning: a
training loop never sees an exception from here. Tokens come from arguments or environment
variables and are never logged or written anywhere.
"""

from __future__ import annotations

import abc
import copy
import csv
import dataclasses
import datetime as dt
import json
import logging
import os
import threading
import time
import warnings

from .http import FetchError, get_json

log = logging.getLogger("greenops.carbon")

LBS_PER_MWH_TO_G_PER_KWH = 453.59237 / 1000.0  # 1 lb = 453.59237 g; 1 MWh = 1000 kWh


@dataclasses.dataclass(frozen=True)
class Point:
    time: dt.datetime  # start of the interval, UTC
    intensity_g_per_kwh: float


def parse_time(s: str | float | int) -> dt.datetime:
    """ISO 8601 (with Z, offset or none: UTC assumed), or seconds since the epoch."""
    if isinstance(s, (int, float)) or (isinstance(s, str) and s.replace(".", "", 1).isdigit()):
        return dt.datetime.fromtimestamp(float(s), dt.timezone.utc)
    s = s.strip().replace("Z", "+00:00")
    t = dt.datetime.fromisoformat(s if "T" in s else s.replace(" ", "T"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def median_step(points: list[Point]) -> dt.timedelta:
    """The median spacing of time-sorted points (1 h for a single point)."""
    steps = sorted(b.time - a.time for a, b in zip(points, points[1:], strict=False))
    return steps[len(steps) // 2] if steps else dt.timedelta(hours=1)


def gaps(points: list[Point], max_gap: dt.timedelta) -> list[tuple[dt.datetime, dt.datetime]]:
    """(a, b) for consecutive time-sorted points further apart than max_gap."""
    return [
        (a.time, b.time)
        for a, b in zip(points, points[1:], strict=False)
        if b.time - a.time > max_gap
    ]


def last_hours(points: list[Point], hours: float) -> list[Point]:
    """The points of the last `hours` hours of a series (relative to its newest point: an
    API's history ends at its latest data, which may lag the clock)."""
    if not points:
        return []
    start = points[-1].time - dt.timedelta(hours=hours)
    return [p for p in points if p.time >= start]


def first_hours(points: list[Point], hours: float) -> list[Point]:
    """The points of the first `hours` hours of a series (relative to its first point)."""
    if not points:
        return []
    end = points[0].time + dt.timedelta(hours=hours)
    return [p for p in points if p.time < end]


class Source(abc.ABC):
    """Subclasses implement the _fetch_* methods; the public ones add caching and fallback."""

    name = "source"
    update_period_s = 300.0

    def __init__(self, default_g_per_kwh: float | None = None) -> None:
        self.default_g_per_kwh = default_g_per_kwh
        self._cache: dict[tuple, tuple[float, object]] = {}
        self._last_current: float | None = None
        self._warned = False
        self.last_error: str | None = None  # why the last read failed, for messages
        self._lock = threading.Lock()

    @abc.abstractmethod
    def _fetch_current(self) -> float: ...

    def _fetch_history(self, hours: float) -> list[Point]:
        raise NotImplementedError(f"{self.name} has no history")

    def _fetch_forecast(self, hours: float) -> list[Point]:
        raise NotImplementedError(f"{self.name} has no forecast")

    def _cached(self, key: tuple, fetch):
        with self._lock:
            hit = self._cache.get(key)
            if hit and time.monotonic() - hit[0] < self.update_period_s:
                return hit[1]
        value = fetch()
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    def _warn_once(self, what: str, err: Exception, fallback: str) -> None:
        self.last_error = f"{what} failed: {err}"
        if not self._warned:
            warnings.warn(
                f"greenops.carbon: {self.name} {what} failed ({err}); {fallback}",
                RuntimeWarning,
                stacklevel=3,
            )
            self._warned = True
        log.info("%s %s failed: %s", self.name, what, err)

    def current(self) -> float | None:
        """Intensity now (g/kWh); on failure the last known value, else the default."""
        try:
            v = float(self._cached(("current",), self._fetch_current))
            self._last_current = v
            self._warned = False  # a later failure warns again
            return v
        except Exception as e:
            fb = self._last_current if self._last_current is not None else self.default_g_per_kwh
            self._warn_once("current intensity", e, f"using {fb} g/kWh")
            return fb

    def _guarded_points(self, kind: str, hours: float, fetch) -> list[Point]:
        try:
            return list(self._cached((kind, hours), lambda: fetch(hours)))
        except Exception as e:
            self._warn_once(kind, e, "returning no points")
            return []

    def history(self, hours: float = 24) -> list[Point]:
        """The last `hours` of the source's data; [] (one warning) on failure."""
        return self._guarded_points("history", hours, self._fetch_history)

    def forecast(self, hours: float = 24) -> list[Point]:
        """The first `hours` of the source's forecast; [] (one warning) on failure."""
        return self._guarded_points("forecast", hours, self._fetch_forecast)


class Constant(Source):
    name = "constant"

    def __init__(self, g_per_kwh: float) -> None:
        super().__init__(g_per_kwh)
        self.value = float(g_per_kwh)

    def _fetch_current(self) -> float:
        return self.value

    def _fetch_history(self, hours: float) -> list[Point]:
        t = now_utc()
        return [Point(t - dt.timedelta(hours=hours), self.value), Point(t, self.value)]

    def _fetch_forecast(self, hours: float) -> list[Point]:
        t = now_utc()
        return [Point(t, self.value), Point(t + dt.timedelta(hours=hours), self.value)]


class Trace(Source):
    """A recorded intensity trace, replayed at its own timestamps or shifted so that its first
    point is now (`shift_to_now=True`). Files: CSV with a time column (`Time`, `datetime`,
    `timestamp`, ...) and an intensity column (`Carbon Intensity`, `carbon_intensity_avg`,
    `carbonIntensity`, ...), or JSON in Electricity Maps' history shape.

    Interpolation: each point holds from its timestamp until the next one (the APIs report
    interval averages), and the last point holds for one more median step. A gap between two
    points longer than `max_gap` (default: 3 median steps) is not bridged: the first point
    holds one median step, and inside the rest of the gap the intensity is unknown (None; a
    warning names the gaps when the trace is loaded)."""

    name = "trace"
    update_period_s = 0.0
    TIME_COLUMNS = ("time", "datetime", "timestamp", "date", "point_time", "from")
    VALUE_COLUMNS = (
        "carbon intensity",
        "carbon_intensity_avg",
        "carbonintensity",
        "carbon_intensity",
        "intensity",
        "value",
        "moer",
    )

    def __init__(
        self, path: str, shift_to_now: bool = False, clock=None, max_gap: dt.timedelta | None = None
    ) -> None:
        """path: a CSV/JSON file, or a bundled trace's name ("gb-2020-01", "fr-2020-01")."""
        if path in _BUNDLED and not os.path.exists(path):
            path = bundled_trace(path)
        elif not os.path.exists(path):
            raise ValueError(
                f"no trace file {path!r} (bundled traces by name: {', '.join(sorted(_BUNDLED))})"
            )
        self._setup(path, load_trace(path), shift_to_now, clock, max_gap)

    def _setup(self, path, points, shift_to_now=False, clock=None, max_gap=None) -> None:
        Source.__init__(self)
        self.path = path
        self.points = points
        self._clock = clock or now_utc
        self._offset = (self._clock() - self.points[0].time) if shift_to_now else dt.timedelta(0)
        self.step = median_step(points)
        self.max_gap = max_gap or 3 * self.step
        self.gaps = gaps(points, self.max_gap)
        if self.gaps:
            a, b = max(self.gaps, key=lambda g: g[1] - g[0])
            warnings.warn(
                f"greenops.carbon: {os.path.basename(path)} has {len(self.gaps)} gap(s) longer "
                f"than {self.max_gap} (the longest {b - a} from {a.isoformat()}): the intensity "
                "there is unknown, not held",
                RuntimeWarning,
                stacklevel=2,
            )

    @classmethod
    def of_points(cls, points: list[Point], name: str = "points", **kw) -> Trace:
        """A trace of points in memory (a forecast, a trace's slice)."""
        if not points:
            raise ValueError("an empty list of points")
        self = cls.__new__(cls)
        self._setup(name, sorted(points, key=lambda p: p.time), **kw)
        return self

    def on_clock(self, clock) -> Trace:
        """The same trace (points, shift, gaps) read on another clock (a replay's)."""
        other = copy.copy(self)
        Source.__init__(other, self.default_g_per_kwh)
        other._clock = clock
        return other

    def at(self, t: dt.datetime) -> float | None:
        """Intensity at time t (on the replay clock), None outside the trace."""
        t = t - self._offset
        pts = self.points
        if t < pts[0].time or t >= pts[-1].time + self.step:
            return None
        lo, hi = 0, len(pts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if pts[mid].time <= t:
                lo = mid
            else:
                hi = mid - 1
        if lo + 1 < len(pts) and pts[lo + 1].time - pts[lo].time > self.max_gap:
            if t >= pts[lo].time + self.step:
                return None  # inside a gap
        return pts[lo].intensity_g_per_kwh

    def current(self) -> float | None:
        """As Source.current, except inside a gap of the trace: unknown (None), not the last
        value held."""
        t = self._clock()
        inside = any(a <= t - self._offset < b for a, b in self.gaps)
        if inside and self.at(t) is None:
            self.last_error = f"{os.path.basename(self.path)}: {t.isoformat()} lies in a gap"
            return None
        return super().current()

    def _window(self, start: dt.datetime, end: dt.datetime) -> list[Point]:
        return [
            Point(p.time + self._offset, p.intensity_g_per_kwh)
            for p in self.points
            if start <= p.time + self._offset < end
        ]

    def _fetch_current(self) -> float:
        v = self.at(self._clock())
        if v is None:
            hint = "" if self._offset else "; shift_to_now=True (--shift) replays it from now"
            raise FetchError(
                f"{os.path.basename(self.path)}: now is outside the trace "
                f"({self.points[0].time} .. {self.points[-1].time} + offset){hint}"
            )
        return v

    def _fetch_history(self, hours: float) -> list[Point]:
        t = self._clock()
        return self._window(t - dt.timedelta(hours=hours), t)

    def _fetch_forecast(self, hours: float) -> list[Point]:
        t = self._clock()
        return self._window(t - self.step, t + dt.timedelta(hours=hours))


TRACE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "traces")
_BUNDLED = {"gb-2020-01": "gb_2020-01-06_10d.csv", "fr-2020-01": "fr_2020-01-06_10d.csv"}


def bundled_trace(name: str) -> str:
    """The path of a bundled trace (traces/README.md): "gb-2020-01" or "fr-2020-01"."""
    if name not in _BUNDLED:
        raise ValueError(f"no bundled trace {name!r}; bundled: {', '.join(sorted(_BUNDLED))}")
    return os.path.join(TRACE_DIR, _BUNDLED[name])


def load_trace(path: str) -> list[Point]:
    if path.endswith(".json"):
        with open(path) as f:
            d = json.load(f)
        rows = d.get("history") or d.get("forecast") or d.get("data") or []
        pts = [
            Point(
                parse_time(r.get("datetime") or r.get("point_time")),
                float(r.get("carbonIntensity", r.get("value"))),
            )
            for r in rows
            if r.get("carbonIntensity", r.get("value")) is not None
        ]
    else:
        with open(path, newline="") as f:
            reader = csv.DictReader(line for line in f if not line.startswith("#"))
            cols = {c.strip().lower(): c for c in reader.fieldnames or []}
            tcol = next((cols[c] for c in Trace.TIME_COLUMNS if c in cols), None)
            vcol = next((cols[c] for c in Trace.VALUE_COLUMNS if c in cols), None)
            if tcol is None or vcol is None:
                raise ValueError(f"{path}: no time/intensity columns in {reader.fieldnames}")
            pts = [
                Point(parse_time(r[tcol]), float(r[vcol]))
                for r in reader
                if r.get(vcol) not in (None, "")
            ]
    pts.sort(key=lambda p: p.time)
    if not pts:
        raise ValueError(f"{path}: an empty trace")
    return pts


def _token(value: str | None, *env: str) -> str | None:
    return value or next((os.environ[e] for e in env if os.environ.get(e)), None)


class HttpSource(Source):
    """A source behind an HTTP API. Keyword options shared by every such source: `base_url`
    (default: the API's own), `default_g_per_kwh` (the fallback), `timeout_s`, `retries`,
    `backoff_s`."""

    BASE_URL = ""

    def __init__(
        self,
        base_url: str | None = None,
        default_g_per_kwh: float | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        super().__init__(default_g_per_kwh)
        self.base_url = (base_url or self.BASE_URL).rstrip("/")
        self._http = {"timeout_s": timeout_s, "retries": retries, "backoff_s": backoff_s}

    def _get_json(
        self,
        path: str,
        params: dict | None = None,
        headers: dict | None = None,
        basic_auth: tuple[str, str] | None = None,
    ):
        return get_json(f"{self.base_url}{path}", params, headers, basic_auth, **self._http)


class ElectricityMaps(HttpSource):
    """Electricity Maps v3: /v3/carbon-intensity/latest|history|forecast, `auth-token` header,
    a zone (e.g. "DE") or lat/lon. Token: argument or $ELECTRICITYMAPS_TOKEN."""

    name = "electricitymaps"
    update_period_s = 900.0  # hourly data; a quarter hour keeps it fresh
    BASE_URL = "https://api.electricitymap.org"

    def __init__(
        self,
        zone: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
        token: str | None = None,
        **http,
    ) -> None:
        super().__init__(**http)
        if zone is None and (lat is None or lon is None):
            raise ValueError("Electricity Maps needs a zone or both lat and lon")
        self._params = {"zone": zone, "lat": lat, "lon": lon}
        self._token = _token(token, "ELECTRICITYMAPS_TOKEN", "ELECTRICITYMAPS_API_KEY")

    def _get(self, kind: str) -> dict:
        if not self._token:  # the API answers 401 to every request without one
            raise FetchError(
                "electricitymaps: no API token (pass token=, or set ELECTRICITYMAPS_TOKEN)"
            )
        try:
            d = self._get_json(
                f"/v3/carbon-intensity/{kind}", self._params, {"auth-token": self._token}
            )
        except FetchError as e:
            if e.status in (401, 403):
                raise FetchError(
                    f"electricitymaps {kind}: the API token was refused (HTTP {e.status}); "
                    "check ELECTRICITYMAPS_TOKEN (or token=) and the zones your plan covers",
                    e.status,
                ) from None
            raise
        if not isinstance(d, dict):
            raise FetchError(f"electricitymaps {kind}: unexpected response")
        return d

    @staticmethod
    def _points(rows) -> list[Point]:
        return [
            Point(parse_time(r["datetime"]), float(r["carbonIntensity"]))
            for r in rows
            if r.get("carbonIntensity") is not None
        ]

    def _fetch_current(self) -> float:
        return float(self._get("latest")["carbonIntensity"])

    def _fetch_history(self, hours: float) -> list[Point]:
        return last_hours(self._points(self._get("history")["history"]), hours)

    def _fetch_forecast(self, hours: float) -> list[Point]:
        return first_hours(self._points(self._get("forecast")["forecast"]), hours)


class WattTime(HttpSource):
    """WattTime v3: login (basic auth) for a bearer token, /v3/forecast and /v3/historical for
    the MOER (lbs CO2/MWh, converted to g/kWh); /v3/signal-index is a 0-100 percentile, not an
    intensity, and is exposed as `index()`. Credentials: arguments or $WATTTIME_USERNAME /
    $WATTTIME_PASSWORD."""

    name = "watttime"
    update_period_s = 300.0  # 5-minute MOER
    BASE_URL = "https://api.watttime.org"
    TOKEN_TTL_S = 25 * 60  # tokens last 30 minutes

    def __init__(
        self,
        region: str,
        username: str | None = None,
        password: str | None = None,
        **http,
    ) -> None:
        super().__init__(**http)
        self.region = region
        self._user = _token(username, "WATTTIME_USERNAME", "WATTTIME_USER")
        self._password = _token(password, "WATTTIME_PASSWORD")
        self._bearer: tuple[float, str] | None = None

    def _auth(self) -> dict:
        if self._bearer is None or time.monotonic() - self._bearer[0] > self.TOKEN_TTL_S:
            if not (self._user and self._password):
                raise FetchError("watttime: no credentials (WATTTIME_USERNAME/PASSWORD)")
            d = self._get_json("/login", basic_auth=(self._user, self._password))
            self._bearer = (time.monotonic(), d["token"])
        return {"Authorization": f"Bearer {self._bearer[1]}"}

    def _series(self, path: str, params: dict) -> list[Point]:
        d = self._get_json(
            path, {"region": self.region, "signal_type": "co2_moer", **params}, self._auth()
        )
        units = d.get("meta", {}).get("units", "lbs_co2_per_mwh")
        if units != "lbs_co2_per_mwh":
            raise FetchError(f"watttime: unexpected units {units!r}")
        return [
            Point(parse_time(r["point_time"]), float(r["value"]) * LBS_PER_MWH_TO_G_PER_KWH)
            for r in d["data"]
            if r.get("value") is not None
        ]

    def _fetch_forecast(self, hours: float) -> list[Point]:
        pts = self._series("/v3/forecast", {"horizon_hours": int(max(hours, 1))})
        return first_hours(pts, hours)

    def _fetch_current(self) -> float:
        return self._fetch_forecast(1)[0].intensity_g_per_kwh  # the forecast's first point is now

    def _fetch_history(self, hours: float) -> list[Point]:
        end = now_utc()
        start = end - dt.timedelta(hours=hours)
        return self._series("/v3/historical", {"start": start.isoformat(), "end": end.isoformat()})

    def index(self) -> float | None:
        """The grid's current percentile (0 = cleanest of the recent past, 100 = dirtiest)."""
        try:
            d = self._get_json(
                "/v3/signal-index", {"region": self.region, "signal_type": "co2_moer"}, self._auth()
            )
            return float(d["data"][0]["value"])
        except Exception as e:
            self._warn_once("signal index", e, "no index")
            return None


class UKGrid(HttpSource):
    """The UK National Grid ESO Carbon Intensity API (no key): /intensity and
    /intensity/{from}/fw24h nationally (forecast and actual, half-hourly), or a region
    (/regional/regionid/{id}, 1-17) or an outward postcode (/regional/postcode/{pc}), whose
    figures are forecasts only. History: /intensity/{from}/{to}."""

    name = "uk"
    update_period_s = 1800.0  # half-hourly
    BASE_URL = "https://api.carbonintensity.org.uk"

    def __init__(
        self,
        region: int | None = None,
        postcode: str | None = None,
        **http,
    ) -> None:
        super().__init__(**http)
        if region is not None and not 1 <= int(region) <= 17:
            raise ValueError(f"UK region ids are 1..17, got {region}")
        self.region, self.postcode = region, postcode

    def _scope(self) -> str:
        if self.postcode:
            return f"/postcode/{self.postcode}"
        if self.region is not None:
            return f"/regionid/{int(self.region)}"
        return ""

    @staticmethod
    def _rows(d) -> list[dict]:
        """National responses are {"data": [periods]}; regional ones nest the periods in
        {"data": [{"regionid": .., "data": [periods]}]} (or a dict instead of that list)."""
        data = d["data"]
        if isinstance(data, dict):
            data = [data]
        if data and "data" in data[0]:
            return data[0]["data"]
        return data

    @staticmethod
    def _value(row: dict) -> float:
        i = row["intensity"]
        v = i.get("actual") if i.get("actual") is not None else i.get("forecast")
        if v is None:
            raise FetchError("uk: a period without forecast or actual")
        return float(v)

    def _get(self, path: str) -> list[dict]:
        return self._rows(self._get_json(path))

    def _fetch_current(self) -> float:
        path = "/intensity" if not self._scope() else f"/regional{self._scope()}"
        return self._value(self._get(path)[0])

    @staticmethod
    def _iso(t: dt.datetime) -> str:
        return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")

    def _points(self, rows) -> list[Point]:
        return [Point(parse_time(r["from"]), self._value(r)) for r in rows]

    def _fetch_forecast(self, hours: float) -> list[Point]:
        t = now_utc()
        scope = self._scope()
        path = (
            f"/intensity/{self._iso(t)}/fw24h"
            if not scope
            else f"/regional/intensity/{self._iso(t)}/fw24h{scope}"
        )
        return first_hours(self._points(self._get(path)), hours)

    def _fetch_history(self, hours: float) -> list[Point]:
        t = now_utc()
        start = t - dt.timedelta(hours=hours)
        scope = self._scope()
        path = (
            f"/intensity/{self._iso(start)}/{self._iso(t)}"
            if not scope
            else f"/regional/intensity/{self._iso(start)}/{self._iso(t)}{scope}"
        )
        return self._points(self._get(path))
