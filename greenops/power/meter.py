"""EnergyMeter: energy and time of named windows of work, per device and in total.

    meter = EnergyMeter()                    # every visible device
    with meter.window("epoch") as w:
        train_one_epoch()
    print(w.energy_j, w.time_s, w.avg_power_w)

Queued CUDA work is synchronized before every reading. Energy comes from the device's energy
counter; a device without one (pre-Volta) is sampled in a background thread every
`sample_period_s` and its power integrated (trapezoids). `overhead_s` is the time the meter
itself spent in begin/end.

Emissions: given a carbon-intensity source (`carbon=`, anything with `current()` in g/kWh),
every window also carries `gco2_eq`: the energy of each interval between readings times the
intensity read at that interval's start (begin, each `tick()`, end). Call `tick()` as often
as the intensity may change (the carbon-aware controller does, every period).
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
    gco2_eq: float | None = None  # with a carbon source: sum of interval energy x intensity

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
        co2 = f", {self.gco2_eq:.3f} gCO2eq" if self.gco2_eq is not None else ""
        return (
            f"{self.name}: {self.energy_j:.1f} J in {self.time_s:.3f} s, "
            f"{self.avg_power_w:.1f} W average{co2}{sim}"
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


@dataclasses.dataclass
class _Window:
    start_t: float
    start_e: dict[str, float]
    last_e_j: float  # total energy at the last reading
    last_intensity: float | None
    gco2_eq: float = 0.0


class EnergyMeter:
    def __init__(
        self, devices: list[Device] | None = None, sample_period_s: float = 0.1, carbon=None
    ) -> None:
        self.devices = devices if devices is not None else visible_devices()
        self.sample_period_s = sample_period_s
        self.carbon = carbon
        self.overhead_s = 0.0
        self._open: dict[str, _Window] = {}
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

    def _intensity(self) -> float | None:
        return self.carbon.current() if self.carbon is not None else None

    @staticmethod
    def _accrue(w: _Window, total_j: float) -> None:
        if w.last_intensity is not None:
            w.gco2_eq += (total_j - w.last_e_j) / 3.6e6 * w.last_intensity
        w.last_e_j = total_j

    def tick(self) -> None:
        """Closes an emissions interval in every open window and reads the intensity anew."""
        if self.carbon is None or not self._open:
            return
        _, e = self._read()
        intensity = self._intensity()
        for w in self._open.values():
            self._accrue(w, sum(e.values()))
            w.last_intensity = intensity

    def begin(self, name: str) -> None:
        t0 = time.perf_counter()
        if name in self._open:
            raise ValueError(f"window {name!r} is already open")
        t, e = self._read()
        self._open[name] = _Window(t, e, sum(e.values()), self._intensity())
        self.overhead_s += time.perf_counter() - t0

    def end(self, name: str) -> Measurement:
        t0 = time.perf_counter()
        if name not in self._open:
            raise ValueError(f"window {name!r} was not begun")
        w = self._open.pop(name)
        t, e = self._read()
        self._accrue(w, sum(e.values()))
        m = Measurement(
            name,
            t - w.start_t,
            {u: e[u] - w.start_e[u] for u in e},
            simulated=any(d.simulated for d in self.devices),
            gco2_eq=w.gco2_eq if self.carbon is not None else None,
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
            m.time_s, m.energy_by_device_j, m.simulated, m.gco2_eq = (
                done.time_s,
                done.energy_by_device_j,
                done.simulated,
                done.gco2_eq,
            )
