"""EnergyMeter: energy and time of named windows of work, per device and domain.

    meter = EnergyMeter()                    # every GPU, and the CPU (RAPL, else estimated)
    with meter.window("epoch") as w:
        train_one_epoch()
    print(w)                 # energy per domain; an estimate is labelled and kept apart

Devices (`power.devices(kind="meter")` by default): NVML GPUs (or the simulated ones of
GREENOPS_SIMULATE), the CPU packages and DRAM through RAPL where the counters are readable,
and otherwise an EstimatedCpu. Measured (and simulated) energy is `energy_j`; estimated
energy is `estimated_energy_j`; the two are never added. Queued CUDA work is synchronized
before every reading. A device without an energy counter (pre-Volta GPUs) is sampled in a
background thread every `sample_period_s` and its power integrated; RAPL counters are read in
one often enough to see every wrap. `overhead_s` is the time the meter spent in begin/end.

A simulated device counts the simulated work done on it (run_step); where a window saw none —
real work timed with a simulated GPU present — the device is modelled busy at its limit for the
window's wall time (`Measurement.simulated_busy`), as `greenops run` does for a command.

Emissions: given a carbon-intensity source (`carbon=`, anything with `current()` in g/kWh, or
None when unknown), every window carries `gco2_eq`: the energy of each interval between
readings (begin, each `tick()`, end) times the intensity read at its start, over the intervals
whose intensity was known; `carbon_coverage` is the share of the energy they hold, and
`gco2_eq` is None when no interval's intensity was known (unknown is never reported as 0). A
reading waits at most `carbon_wait_s` for the source (a slow one answers a later reading).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator

from .device import Device
from .rapl import RaplZone, WrapWatch


@dataclasses.dataclass
class Measurement:
    name: str
    time_s: float = 0.0
    energy_by_device_j: dict[str, float] = dataclasses.field(default_factory=dict)
    simulated: bool = False
    gco2_eq: float | None = None  # emissions of the intervals with a known intensity
    domains: dict[str, str] = dataclasses.field(default_factory=dict)  # uuid -> domain
    estimated_devices: list[str] = dataclasses.field(default_factory=list)  # uuids
    carbon_coverage: float | None = None  # share of the energy with a known intensity
    carbon_basis: str | None = None  # "measured", "simulated" or "estimated" energy
    simulated_busy: bool = False  # simulated devices modelled busy for the wall time

    def _sum(self, estimated: bool) -> float | None:
        vals = [
            e
            for u, e in self.energy_by_device_j.items()
            if (u in self.estimated_devices) == estimated
        ]
        return sum(vals) if vals else None

    @property
    def energy_j(self) -> float | None:
        """Measured (or simulated) energy; None where only estimates exist."""
        return self._sum(False)

    @property
    def estimated_energy_j(self) -> float | None:
        """Estimated energy (EstimatedCpu), never part of energy_j; None without estimates."""
        return self._sum(True)

    @property
    def avg_power_w(self) -> float | None:
        e = self.energy_j
        return e / self.time_s if e is not None and self.time_s > 0 else None

    def by_domain_j(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for u, e in self.energy_by_device_j.items():
            key = self.domains.get(u, "gpu") + (
                " (estimated)" if u in self.estimated_devices else ""
            )
            out[key] = out.get(key, 0.0) + e
        return out

    def gco2(self, intensity_g_per_kwh: float) -> float | None:
        """Emissions of energy_j at a grid carbon intensity: J -> kWh (/3.6e6) x g/kWh."""
        e = self.energy_j
        return None if e is None else e / 3.6e6 * intensity_g_per_kwh

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "time_s": self.time_s,
            "energy_j": self.energy_j,
            "estimated_energy_j": self.estimated_energy_j,
            "energy_by_domain_j": self.by_domain_j(),
            "devices": [
                {
                    "uuid": u,
                    "domain": self.domains.get(u, "gpu"),
                    "energy_j": e,
                    "estimated": u in self.estimated_devices,
                }
                for u, e in self.energy_by_device_j.items()
            ],
            "avg_power_w": self.avg_power_w,
            "simulated": self.simulated,
            "simulated_busy": self.simulated_busy,
            "gco2_eq": self.gco2_eq,
            "carbon_coverage": self.carbon_coverage,
            "carbon_basis": self.carbon_basis,
        }

    def __str__(self) -> str:
        parts = []
        if self.energy_j is not None:
            sim = " (SIMULATED)" if self.simulated else ""
            parts.append(f"{self.energy_j:.1f} J{sim}")
        if self.estimated_energy_j is not None:
            parts.append(f"{self.estimated_energy_j:.1f} J ESTIMATED")
        energy = " + ".join(parts) if parts else "no energy reading"
        domains = ", ".join(f"{k} {v:.1f} J" for k, v in self.by_domain_j().items())
        co2 = ""
        if self.gco2_eq is not None:
            cov = f", {self.carbon_coverage:.0%} of it" if (self.carbon_coverage or 1) < 1 else ""
            est = " ESTIMATED" if self.carbon_basis == "estimated" else ""
            co2 = f", {self.gco2_eq:.3f} gCO2eq{est}{cov}"
        elif self.carbon_basis is not None:
            co2 = ", gCO2eq unknown (no intensity)"
        busy = " (simulated devices modelled busy for the wall time)" if self.simulated_busy else ""
        return f"{self.name}: {energy} in {self.time_s:.3f} s [{domains}]{co2}{busy}"


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


class _Intensity:
    """source.current() waited for at most wait_s: a slow source answers later (a worker
    thread keeps the query going and its answer is used from the next reading on)."""

    def __init__(self, source, wait_s: float) -> None:
        self.source, self.wait_s = source, wait_s
        self._value: float | None = None
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    def _query(self) -> None:
        try:
            v = self.source.current()
        except Exception:  # a source that raises is as unknown as one that returns None
            v = None
        with self._lock:
            self._value = None if v is None else float(v)

    def read(self) -> float | None:
        with self._lock:
            busy = self._worker is not None and self._worker.is_alive()
        if not busy:
            self._worker = threading.Thread(target=self._query, daemon=True, name="greenops-ci")
            self._worker.start()
        self._worker.join(self.wait_s)
        with self._lock:
            return self._value


@dataclasses.dataclass
class _Window:
    start_wall: float
    start_dev_t: float
    start_e: dict[str, float]
    last_e_j: float  # basis energy at the last reading
    last_intensity: float | None
    gco2_eq: float = 0.0
    covered_j: float = 0.0
    total_j: float = 0.0


class EnergyMeter:
    def __init__(
        self,
        devices: list[Device] | None = None,
        sample_period_s: float = 0.1,
        carbon=None,
        carbon_wait_s: float = 2.0,
    ) -> None:
        from .registry import devices as find

        self.devices = devices if devices is not None else find(kind="meter")
        if not self.devices:
            raise ValueError("EnergyMeter needs at least one device")
        self.sample_period_s = sample_period_s
        self.carbon = carbon
        self._intensity_reader = _Intensity(carbon, carbon_wait_s) if carbon is not None else None
        self.overhead_s = 0.0
        self._open: dict[str, _Window] = {}
        self._counterless = [d for d in self.devices if d.energy_j() is None]
        self._sampler: _Sampler | None = None
        self._watch = None
        self._rapl = [d for d in self.devices if isinstance(d, RaplZone)]
        measured = [d for d in self.devices if not d.estimated]
        self.basis = (
            "estimated"
            if not measured
            else ("simulated" if any(d.simulated for d in measured) else "measured")
        )

    def _read(self) -> dict[str, float]:
        for d in self.devices:
            d.sync()
        if self._counterless and self._sampler is None:
            self._sampler = _Sampler(self._counterless, self.sample_period_s)
        if self._rapl and self._watch is None:
            self._watch = WrapWatch(self._rapl)
        e = {}
        for d in self.devices:
            v = d.energy_j()
            e[d.uuid] = v if v is not None else self._sampler.read(d.uuid)
        return e

    def _basis_j(self, e: dict[str, float]) -> float:
        """The energy emissions are accounted on: measured (or simulated), else estimated."""
        est = self.basis == "estimated"
        return sum(e[d.uuid] for d in self.devices if d.estimated == est)

    def _intensity(self) -> float | None:
        return self._intensity_reader.read() if self._intensity_reader is not None else None

    @staticmethod
    def _accrue(w: _Window, basis_j: float) -> None:
        d = basis_j - w.last_e_j
        w.total_j += d
        if w.last_intensity is not None:
            w.gco2_eq += d / 3.6e6 * w.last_intensity
            w.covered_j += d
        w.last_e_j = basis_j

    def _dev_t(self) -> float:
        sims = [d for d in self.devices if d.simulated]
        return sims[0].now_s() if sims else time.monotonic()

    def tick(self) -> None:
        """Closes an emissions interval in every open window and reads the intensity anew."""
        if self.carbon is None or not self._open:
            return
        e = self._read()
        intensity = self._intensity()
        for w in self._open.values():
            self._accrue(w, self._basis_j(e))
            w.last_intensity = intensity

    def begin(self, name: str) -> None:
        t0 = time.perf_counter()
        if name in self._open:
            raise ValueError(f"window {name!r} is already open")
        e = self._read()
        self._open[name] = _Window(
            time.monotonic(), self._dev_t(), e, self._basis_j(e), self._intensity()
        )
        self.overhead_s += time.perf_counter() - t0

    def end(self, name: str) -> Measurement:
        t0 = time.perf_counter()
        if name not in self._open:
            raise ValueError(f"window {name!r} was not begun")
        w = self._open.pop(name)
        wall = time.monotonic() - w.start_wall
        sims = [d for d in self.devices if d.simulated]
        busy = bool(sims) and self._dev_t() == w.start_dev_t and wall > 0
        if busy:  # no simulated work in the window: the simulated GPUs ran the real work
            for d in sims:
                d.run_step(wall / d.step_time_s())
        e = self._read()
        self._accrue(w, self._basis_j(e))
        elapsed = wall if busy or not sims else self._dev_t() - w.start_dev_t
        m = Measurement(
            name,
            elapsed,
            {u: e[u] - w.start_e[u] for u in e},
            simulated=bool(sims),
            domains={d.uuid: d.domain for d in self.devices},
            estimated_devices=[d.uuid for d in self.devices if d.estimated],
            simulated_busy=busy,
        )
        if self.carbon is not None:
            m.carbon_basis = self.basis
            if w.covered_j > 0 or (w.total_j == 0 and w.last_intensity is not None):
                m.gco2_eq = w.gco2_eq
                m.carbon_coverage = w.covered_j / w.total_j if w.total_j > 0 else 1.0
            else:
                m.carbon_coverage = 0.0
        if not self._open:
            if self._sampler is not None:
                self._sampler.stop()
                self._sampler = None
            if self._watch is not None:
                self._watch.stop()
                self._watch = None
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
            for f in dataclasses.fields(Measurement):
                setattr(m, f.name, getattr(done, f.name))
