"""CPU and DRAM energy and CPU power caps through Linux powercap (RAPL): `RaplZone` devices.

Linux exposes RAPL as powercap zones under /sys/class/powercap (Intel CPUs; AMD CPUs too on
recent kernels, through the same `intel-rapl` control type; AMD offers energy but usually no
writable limit): a package zone per socket, `intel-rapl:<socket>`, named package-<socket> (or
psys: the whole platform), with subzones `intel-rapl:<socket>:<n>` named core, uncore or dram.
Per zone: `energy_uj`, a counter in µJ that wraps at `max_energy_range_uj`; and constraints
`constraint_<i>_{name,power_limit_uw,time_window_us,max_power_uw,min_power_uw}` (i = 0 is the
long-term limit, the one capped here).

Since Linux 5.10 (CVE-2020-8694) `energy_uj` is readable by root only: reading it otherwise
raises NoPermission naming the fixes (root, a udev rule or chmod, or the estimate). The
counter's wraparound is undone by keeping the last raw value per zone and a background sampler
(`WrapWatch`) that reads every zone well within its shortest wrap period, so a long window
never misses a wrap. The sysfs root is $GREENOPS_POWERCAP_ROOT (default /sys/class/powercap),
so tests run on a fake tree of real files.
"""

from __future__ import annotations

import os
import re
import threading
import time

from .device import Constraints, Device
from .errors import DeviceNotFound, NoPermission, NotSupported, PowerError

ZONE_RE = re.compile(r"^intel-rapl:\d+(:\d+)?$")
# Domains a meter sums by default: package (core and uncore lie inside it) and dram (outside
# it on the servers that expose it); psys is the whole platform and would double count.
TOTAL_DOMAINS = ("package", "dram")

READ_HOW = (
    "RAPL energy counters are readable by root only since Linux 5.10 (CVE-2020-8694): run as "
    'root, let a group read them (a udev rule, e.g. SUBSYSTEM=="powercap", '
    'ACTION=="add", RUN+="/bin/chmod g+r /sys%p/energy_uj" with chgrp, or `sudo chmod '
    "a+r /sys/class/powercap/intel-rapl:*/energy_uj` until reboot), or use the labelled "
    "estimate (power.EstimatedCpu)"
)
WRITE_HOW = (
    "setting a RAPL power limit needs root (write access to constraint_0_power_limit_uw); "
    "without it, use mode='software' (the governor paces the work) or mode='auto'"
)


def root() -> str:
    return os.environ.get("GREENOPS_POWERCAP_ROOT", "/sys/class/powercap")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except PermissionError:
        raise NoPermission(f"cannot read {path}: permission denied; " + READ_HOW) from None
    except FileNotFoundError:
        raise NotSupported(f"{path} does not exist") from None
    except OSError as e:  # some zones answer reads of a missing feature with ENODATA/EIO
        raise NotSupported(f"cannot read {path}: {e}") from None


def _int(path: str) -> int:
    return int(_read(path))


def domain_of(name: str) -> str:
    """package-0 -> package; core, uncore, dram, psys as they are."""
    return "package" if name.startswith("package") else name


class RaplZone(Device):
    """One powercap zone. Energy is measured (a hardware counter, wraps undone); the limit is
    constraint 0's. Its `domain` says what it covers (package, core, uncore, dram, psys)."""

    kind = "cpu"

    def __init__(self, zone: str, index: int, base: str | None = None) -> None:
        self.zone, self._index = zone, index
        self.base = base or root()
        self.path = os.path.join(self.base, zone)
        if not os.path.isdir(self.path):
            raise DeviceNotFound(f"no powercap zone {self.path}")
        self.zone_name = _read(os.path.join(self.path, "name"))
        self.domain = domain_of(self.zone_name)
        self.socket = int(zone.split(":")[1])
        self._lock = threading.Lock()
        self._last_raw: int | None = None
        self._wraps = 0
        self._range_uj: int | None = None

    # --- identity ---
    @property
    def name(self) -> str:
        return f"CPU {self.zone_name} (RAPL {self.zone})"

    @property
    def index(self) -> int:
        return self._index

    @property
    def uuid(self) -> str:
        return f"RAPL-{self.zone}"

    def spec(self) -> dict:
        return {"kind": "rapl", "zone": self.zone, "index": self._index, "root": self.base}

    def _f(self, name: str) -> str:
        return os.path.join(self.path, name)

    # --- energy ---
    def range_uj(self) -> int:
        if self._range_uj is None:
            self._range_uj = _int(self._f("max_energy_range_uj"))
        return self._range_uj

    def energy_j(self) -> float:
        """The counter in J, made monotonic: each time the raw value falls, one wrap of
        max_energy_range_uj is added (a WrapWatch reads often enough to see every wrap)."""
        raw = _int(self._f("energy_uj"))
        with self._lock:
            if self._last_raw is not None and raw < self._last_raw:
                self._wraps += 1
            self._last_raw = raw
            return (self._wraps * self.range_uj() + raw) / 1e6

    def power_w(self) -> float:
        """Average power over the next 100 ms (RAPL has a counter, not a power reading)."""
        e0, t0 = self.energy_j(), time.monotonic()
        time.sleep(0.1)
        return (self.energy_j() - e0) / (time.monotonic() - t0)

    # --- limits ---
    def has_limit(self) -> bool:
        return os.path.exists(self._f("constraint_0_power_limit_uw"))

    def _opt_w(self, name: str) -> float | None:
        try:
            return _int(self._f(name)) / 1e6
        except (NotSupported, ValueError):
            return None

    def constraints(self) -> Constraints:
        """min: constraint 0's min_power_uw where the driver gives it, else 1 W; max: its
        max_power_uw (the zone's TDP), else the limit as found; default: the max (RAPL has no
        factory default of its own: a package's long-term limit ships at its TDP)."""
        if not self.has_limit():
            raise NotSupported(f"{self.name} has no power limit (constraint_0) to set or read")
        now = self.limit_w()
        hi = self._opt_w("constraint_0_max_power_uw") or now
        lo = self._opt_w("constraint_0_min_power_uw") or 1.0
        return Constraints(lo, max(hi, now), hi)

    def limit_w(self) -> float:
        return _int(self._f("constraint_0_power_limit_uw")) / 1e6

    def time_window_s(self) -> float | None:
        w = self._opt_w("constraint_0_time_window_us")
        return None if w is None else w  # µs / 1e6 = s

    def _write_limit_w(self, watts: float) -> None:
        path = self._f("constraint_0_power_limit_uw")
        try:
            with open(path, "w") as f:
                f.write(str(int(round(watts * 1e6))))
        except PermissionError:
            raise NoPermission(f"{self.name}: cannot write {path}; " + WRITE_HOW) from None
        except OSError as e:
            raise NotSupported(f"{self.name}: writing {path} failed ({e})") from None

    def describe(self) -> dict:
        d = {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "kind": "cpu",
            "domain": self.domain,
            "socket": self.socket,
            "simulated": False,
            "estimated": False,
        }
        for key, fn in (("energy_j", self.energy_j), ("limit_w", self.limit_w)):
            try:
                d[key] = fn()
            except PowerError as e:
                d[key] = None
                d[f"{key}_error"] = str(e)
        if d["limit_w"] is not None:
            c = self.constraints()
            d.update(min_limit_w=c.min_w, max_limit_w=c.max_w, default_limit_w=c.default_w)
            d["time_window_s"] = self.time_window_s()
        return d


def zones(base: str | None = None) -> list[RaplZone]:
    """Every RAPL zone under the powercap root, packages before their subzones; [] where
    there is no powercap (VMs, containers without /sys, other OSes)."""
    base = base or root()
    try:
        names = sorted(n for n in os.listdir(base) if ZONE_RE.match(n))
    except OSError:
        return []
    names.sort(key=lambda n: tuple(int(p) for p in n.split(":")[1:]))
    out = []
    for i, n in enumerate(names):
        try:
            out.append(RaplZone(n, i, base))
        except PowerError:
            continue
    return out


def readable(zone: RaplZone) -> bool:
    try:
        zone.energy_j()
        return True
    except PowerError:
        return False


class WrapWatch:
    """Reads the zones' counters in a background thread every `period_s` (default: a tenth
    of the shortest wrap period at the zones' maximum power — max_power_range_uw, else 1 kW),
    so that no wrap goes unseen however long a window lasts."""

    def __init__(self, rapl: list[RaplZone], period_s: float | None = None) -> None:
        self.zones = rapl
        self.period_s = period_s or self._default_period()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="greenops-rapl")
        self._thread.start()

    def _default_period(self) -> float:
        periods = []
        for z in self.zones:
            top_w = z._opt_w("max_power_range_uw") or 1000.0
            periods.append(z.range_uj() / 1e6 / max(top_w, 1.0))
        return max(0.05, min(periods, default=60.0) / 10)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            for z in self.zones:
                try:
                    z.energy_j()
                except (PowerError, ValueError):  # a failed read: the next one counts
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
