"""EnergyMeter: energy and time of named windows of work, per device and in total.

    meter = EnergyMeter()                    # every visible device
    with meter.window("epoch") as w:
        train_one_epoch()
    print(w.energy_j, w.time_s, w.avg_power_w)

Queued CUDA work is synchronized before every reading. Energy comes from the device's energy
counter; a device without one (pre-Volta) is sampled in a background thread every
`sample_period_s` and its power integrated (trapezoids). `overhead_s` is the time the meter
itself spent in begin/end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator

from .device import Device
from .registry import devices as visible_devices


@dataclasses.dataclass
class Measurement:
    name: str
    time_s: float = 0.0
    energy_by_device_j: dict[str, float] = dataclasses.field(default_factory=dict)
    simulated: bool = False

    @property
    def energy_j(self) -> float:
        return sum(self.energy_by_device_j.values())

    @property
    def avg_power_w(self) -> float:
        return self.energy_j / self.time_s if self.time_s > 0 else 0.0

    def gco2(self, intensity_g_per_kwh: float) -> float:
        """Emissions at a grid carbon intensity: J -> kWh (/3.6e6) x g/kWh."""
        return self.energy_j / 3.6e6 * intensity_g_per_kwh

    def __str__(self) -> str:
        sim = " (SIMULATED)" if self.simulated else ""
        return (
            f"{self.name}: {self.energy_j:.1f} J in {self.time_s:.3f} s, "
            f"{self.avg_power_w:.1f} W average{sim}"
        )


class _Sampler:
    """Integrates power_w() of counter-less devices in a background thread."""

    def __init__(self, devs: list[Device], period_s: float) -> None:
        self.devs, self.period_s = devs, period_s
        self.energy_j = {d.uuid: 0.0 for d in devs}
        self._last = {d.uuid: (time.monotonic(), d.power_w()) for d in devs}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name="greenops-sampler")
        self._thread.start()

    def sample(self) -> None:
        with self._lock:
            for d in self.devs:
                t, p = time.monotonic(), d.power_w()
                t0, p0 = self._last[d.uuid]
                self.energy_j[d.uuid] += (t - t0) * (p + p0) / 2
                self._last[d.uuid] = (t, p)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample()

    def read(self, uuid: str) -> float:
        self.sample()
        with self._lock:
            return self.energy_j[uuid]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class EnergyMeter:
    def __init__(self, devices: list[Device] | None = None, sample_period_s: float = 0.1) -> None:
        self.devices = devices if devices is not None else visible_devices()
        self.sample_period_s = sample_period_s
        self.overhead_s = 0.0
        self._open: dict[str, tuple[float, dict[str, float]]] = {}
        self._counterless = [d for d in self.devices if d.energy_j() is None]
        self._sampler: _Sampler | None = None

    def _read(self) -> tuple[float, dict[str, float]]:
        for d in self.devices:
            d.sync()
        if self._counterless and self._sampler is None:
            self._sampler = _Sampler(self._counterless, self.sample_period_s)
        e = {}
        for d in self.devices:
            v = d.energy_j()
            e[d.uuid] = v if v is not None else self._sampler.read(d.uuid)
        return self.devices[0].now_s(), e

    def begin(self, name: str) -> None:
        t0 = time.perf_counter()
        if name in self._open:
            raise ValueError(f"window {name!r} is already open")
        self._open[name] = self._read()
        self.overhead_s += time.perf_counter() - t0

    def end(self, name: str) -> Measurement:
        t0 = time.perf_counter()
        if name not in self._open:
            raise ValueError(f"window {name!r} was not begun")
        start_t, start_e = self._open.pop(name)
        t, e = self._read()
        m = Measurement(
            name,
            t - start_t,
            {u: e[u] - start_e[u] for u in e},
            simulated=any(d.simulated for d in self.devices),
        )
        if not self._open and self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        self.overhead_s += time.perf_counter() - t0
        return m

    @contextlib.contextmanager
    def window(self, name: str) -> Iterator[Measurement]:
        """The Measurement yielded is filled in when the block ends (also on exceptions)."""
        m = Measurement(name)
        self.begin(name)
        try:
            yield m
        finally:
            done = self.end(name)
            m.time_s, m.energy_by_device_j, m.simulated = (
                done.time_s,
                done.energy_by_device_j,
                done.simulated,
            )
