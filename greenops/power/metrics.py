"""A Prometheus metrics endpoint for the runtime (prometheus_client: `pip install
greenops[metrics]`): cumulative counters, so that a scraper's rate() gives power and sums over
restarts stay right.

    greenops_energy_joules_total{domain, device, basis}   energy since the endpoint started
    greenops_carbon_grams_total{basis}                     emissions of the intervals with a
                                                           known intensity
    greenops_power_watts{domain, device, basis}            average power over the last update
    greenops_power_limit_watts{device}                     the limit in force (cappable devices)
    greenops_carbon_intensity_grams_per_kwh                the last intensity read (absent
                                                           while unknown)

basis: "measured", "simulated" or "estimated" (estimates are their own series, never summed
into measured ones). Bound to 127.0.0.1 unless told otherwise.

    server = power.serve_metrics(9464)   # then server.update() as often as wanted
"""

from __future__ import annotations

import threading
import time

from .device import Device
from .errors import PowerError


def _basis(d: Device) -> str:
    return "estimated" if d.estimated else ("simulated" if d.simulated else "measured")


class MetricsServer:
    def __init__(
        self,
        port: int,
        devices: list[Device] | None = None,
        carbon=None,
        host: str = "127.0.0.1",
        carbon_wait_s: float = 2.0,
    ) -> None:
        try:
            import prometheus_client as pc
        except ImportError:
            raise ImportError(
                "greenops metrics need prometheus_client: pip install 'greenops[metrics]' "
                "(or pip install prometheus_client)"
            ) from None
        from .meter import _Intensity
        from .registry import devices as find

        self.devices = devices if devices is not None else find(kind="meter")
        self.registry = pc.CollectorRegistry()
        labels = ["domain", "device", "basis"]
        self.energy = pc.Counter(
            "greenops_energy_joules",
            "Energy since the endpoint started",
            labels,
            registry=self.registry,
        )
        self.carbon_g = pc.Counter(
            "greenops_carbon_grams",
            "Emissions of intervals with a known intensity",
            ["basis"],
            registry=self.registry,
        )
        self.power = pc.Gauge(
            "greenops_power_watts",
            "Average power over the last update",
            labels,
            registry=self.registry,
        )
        self.limit = pc.Gauge(
            "greenops_power_limit_watts",
            "The power limit in force",
            ["device"],
            registry=self.registry,
        )
        self.intensity = pc.Gauge(
            "greenops_carbon_intensity_grams_per_kwh",
            "The last carbon intensity read",
            registry=self.registry,
        )
        self._reader = _Intensity(carbon, carbon_wait_s) if carbon is not None else None
        self._lock = threading.Lock()
        self._last = {d.uuid: self._energy(d) for d in self.devices}
        self._last_t = time.monotonic()
        self._last_intensity = None
        for d in self.devices:  # every series exists from the first scrape
            self.energy.labels(d.domain, d.uuid, _basis(d))
        self.server, self.thread = pc.start_http_server(port, addr=host, registry=self.registry)
        self.port = self.server.server_port

    @staticmethod
    def _energy(d: Device) -> float | None:
        try:
            return d.energy_j()
        except PowerError:
            return None

    def update(self) -> None:
        """Reads every device (and the intensity) and advances the counters."""
        with self._lock:
            now = time.monotonic()
            dt = now - self._last_t
            carbon = {}
            for d in self.devices:
                e = self._energy(d)
                prev = self._last.get(d.uuid)
                if e is not None and prev is not None and e >= prev:
                    de = e - prev
                    self.energy.labels(d.domain, d.uuid, _basis(d)).inc(de)
                    if dt > 0:
                        self.power.labels(d.domain, d.uuid, _basis(d)).set(de / dt)
                    carbon[_basis(d)] = carbon.get(_basis(d), 0.0) + de
                self._last[d.uuid] = e
                try:
                    self.limit.labels(d.uuid).set(d.limit_w())
                except PowerError:
                    pass
            if self._last_intensity is not None:
                for basis, de in carbon.items():
                    self.carbon_g.labels(basis).inc(de / 3.6e6 * self._last_intensity)
            if self._reader is not None:
                self._last_intensity = self._reader.read()
                if self._last_intensity is not None:
                    self.intensity.set(self._last_intensity)
            self._last_t = now

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(port: int, devices=None, carbon=None, host: str = "127.0.0.1") -> MetricsServer:
    """Starts the endpoint (module doc) on host:port (port 0: any free one; see .port)."""
    return MetricsServer(port, devices, carbon, host)
