"""SimulatedDevice: a GPU modelled from a real power-limit sweep, answering the Device calls.

A profile gives, for each power limit, the time and average power of one fixed amount of work
(a Zeus profiling window or epoch). Between measured limits both are interpolated linearly.
One "step" is 1/STEPS_PER_WINDOW of that work. The device integrates energy over its clock
(simulated by default: steps and sleeps advance it instantly; or real: they take wall time),
draws the profile's power while working and `idle_w` otherwise, enforces the sweep's limits as
its constraints, and keeps its driver-like state (limit, energy counter, refuse-writes and
lost flags) in a small state file so that another process sees what this one set. Everything
it reports is a model, and says so (`simulated = True`, names start with "Simulated").
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import os
import re
import threading
import time

from .device import Constraints, Device
from .errors import DeviceNotFound, GpuLost, NoPermission
from .state import locked, read, state_dir

STEPS_PER_WINDOW = 100
PROFILE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles")


@dataclasses.dataclass(frozen=True)
class PowerProfile:
    """Measured time and average power of a fixed amount of work, per power limit."""

    name: str
    gpu: str
    limits_w: tuple[float, ...]  # ascending
    window_time_s: tuple[float, ...]
    power_w: tuple[float, ...]
    source: str

    def at(self, limit_w: float) -> tuple[float, float]:
        """(step time in s, power in W) at a limit, interpolated linearly between sweeps."""
        t, p = interpolate(self.limits_w, self.window_time_s, self.power_w, limit_w)
        return t / STEPS_PER_WINDOW, p


def interpolate(xs, ts, ps, x: float) -> tuple[float, float]:
    """(t, p) at x from points (xs ascending, ts, ps): linear between them, clamped outside —
    the simulated device's model, shared with carbon.Curve."""
    if len(xs) == 1 or x <= xs[0]:
        return ts[0], ps[0]
    if x >= xs[-1]:
        return ts[-1], ps[-1]
    i = bisect.bisect_right(xs, x) - 1
    f = (x - xs[i]) / (xs[i + 1] - xs[i])
    return ts[i] + f * (ts[i + 1] - ts[i]), ps[i] + f * (ps[i + 1] - ps[i])


def default_idle_w(profile: PowerProfile) -> float:
    """Idle draw is not in the sweeps: modelled as 30% of the lowest limit (a V100 idles near
    40 W against its 100 W minimum)."""
    return 0.3 * profile.limits_w[0]


def bundled_profiles() -> list[str]:
    return sorted(f[:-4] for f in os.listdir(PROFILE_DIR) if f.endswith(".csv"))


def load_profile(spec: str) -> PowerProfile:
    """A bundled profile name (`bundled_profiles()`), or the path of a Zeus sweep CSV in either
    format: profiling windows (`start_time,window_name,elapsed_time,gpu0_energy`, the limit at
    the end of the window name) or the NSDI'23 summary (`dataset,network,batch_size,optimizer,
    power_limit,time_per_epoch,average_power`; pick a configuration with
    `PATH#dataset,network,batch_size,optimizer`, default: the first with the most limits)."""
    path, _, select = spec.partition("#")
    if os.sep not in path and not path.endswith(".csv"):
        if path not in bundled_profiles():
            raise DeviceNotFound(
                f"no bundled power profile {path!r}; bundled: "
                f"{', '.join(bundled_profiles())}, or give a CSV path"
            )
        path = os.path.join(PROFILE_DIR, path + ".csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: empty power profile")
    name = os.path.basename(path)[:-4] + (f"#{select}" if select else "")
    if "window_name" in rows[0]:
        energy_col = next(c for c in rows[0] if c.endswith("_energy"))
        points = {}
        for r in rows:
            limit = float(re.search(r"(\d+(?:\.\d+)?)$", r["window_name"]).group(1))
            t, e = float(r["elapsed_time"]), float(r[energy_col])
            points[limit] = (t, e / t)
    elif "power_limit" in rows[0]:
        key = ("dataset", "network", "batch_size", "optimizer")
        configs: dict[tuple, dict] = {}
        for r in rows:
            configs.setdefault(tuple(r[k] for k in key), {})[float(r["power_limit"])] = (
                float(r["time_per_epoch"]),
                float(r["average_power"]),
            )
        if select:
            want = tuple(select.split(","))
            if want not in configs:
                raise ValueError(f"{path}: no configuration {want}; e.g. {next(iter(configs))}")
        else:
            want = max(configs, key=lambda k: len(configs[k]))
        points = configs[want]
    else:
        raise ValueError(f"{path}: not a Zeus power-limit sweep (unknown columns {list(rows[0])})")
    if len(points) < 2:
        raise ValueError(f"{path}: a sweep needs at least two power limits")
    found = re.search(
        r"(?<![a-z0-9])(v100|a100|a40|a10|p100|rtx\d+|h100|h200|l40s?|l4|t4)",
        os.path.basename(path),
        re.I,
    )
    gpu = found.group(1).upper() if found else "GPU"
    limits = tuple(sorted(points))
    return PowerProfile(
        name,
        gpu,
        limits,
        tuple(points[x][0] for x in limits),
        tuple(points[x][1] for x in limits),
        path,
    )


class SimClock:
    """A clock that sleeping advances instantly; shared by the simulated devices of a process."""

    def __init__(self) -> None:
        self._t = 0.0
        self._lock = threading.Lock()

    def now_s(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds


class RealClock:
    def now_s(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        time.sleep(seconds)


class SimulatedDevice(Device):
    simulated = True

    def __init__(
        self,
        profile: str | PowerProfile = "v100-resnet50",
        index: int = 0,
        state_path: str | None = None,
        clock: SimClock | RealClock | None = None,
        idle_w: float | None = None,
    ) -> None:
        self.profile = profile if isinstance(profile, PowerProfile) else load_profile(profile)
        self._spec = profile if isinstance(profile, str) else self.profile.source
        self._index = index
        slug = re.sub(r"[^A-Za-z0-9_.-]", "_", self.profile.name)
        self.state_path = state_path or os.path.join(state_dir(), f"sim-{slug}-{index}.json")
        self.clock = clock or SimClock()
        self.idle_w = idle_w if idle_w is not None else default_idle_w(self.profile)
        self._busy = False
        self._last_t = self.clock.now_s()
        with locked(self.state_path) as s:
            s.setdefault("limit_w", self.constraints().default_w)
            s.setdefault("energy_j", 0.0)
            s.setdefault("deny_writes", False)
            s.setdefault("lost", False)

    # --- identity and constraints ---
    @property
    def name(self) -> str:
        return f"Simulated {self.profile.gpu} ({self.profile.name} profile)"

    @property
    def index(self) -> int:
        return self._index

    @property
    def uuid(self) -> str:
        return f"SIM-{self.profile.name}-{self._index}"

    def spec(self) -> dict:
        """What another process needs to reach this same device (the cap journal keeps it)."""
        return {
            "kind": "simulated",
            "profile": self._spec,
            "index": self._index,
            "state_path": self.state_path,
        }

    def constraints(self) -> Constraints:
        lo, hi = self.profile.limits_w[0], self.profile.limits_w[-1]
        return Constraints(lo, hi, hi)

    # --- state ---
    def _state(self) -> dict:
        s = read(self.state_path)
        if s.get("lost"):
            raise GpuLost(f"{self.name}: the (simulated) GPU is lost")
        return s

    def limit_w(self) -> float:
        return float(self._state()["limit_w"])

    def power_w(self) -> float:
        return self.profile.at(self.limit_w())[1] if self._busy else self.idle_w

    def energy_j(self) -> float:
        self._accrue_idle()
        return float(self._state()["energy_j"])

    def _write_limit_w(self, watts: float) -> None:
        with locked(self.state_path) as s:
            if s.get("lost"):
                raise GpuLost(f"{self.name}: the (simulated) GPU is lost")
            if s.get("deny_writes"):
                raise NoPermission(
                    f"{self.name}: permission denied (simulated); " + NoPermission.HOW
                )
            s["limit_w"] = watts

    def set_flags(self, deny_writes: bool | None = None, lost: bool | None = None) -> None:
        """Make the device refuse writes (no permission) or fail (GPU lost), for every process."""
        with locked(self.state_path) as s:
            if deny_writes is not None:
                s["deny_writes"] = deny_writes
            if lost is not None:
                s["lost"] = lost

    def _add_energy(self, joules: float) -> None:
        if joules:
            with locked(self.state_path) as s:
                s["energy_j"] = s.get("energy_j", 0.0) + joules

    def _accrue_idle(self) -> None:
        """Idle energy between the last activity and now (the clock may have moved on)."""
        now = self.clock.now_s()
        if now > self._last_t:
            self._add_energy(self.idle_w * (now - self._last_t))
            self._last_t = now

    # --- work ---
    def step_time_s(self) -> float:
        return self.profile.at(self.limit_w())[0]

    def run_step(self, steps: float = 1.0) -> float:
        """Does `steps` units of the profiled work at the current limit; returns its seconds."""
        self._accrue_idle()
        t_step, p = self.profile.at(self.limit_w())
        seconds = steps * t_step
        self._busy = True
        self.clock.advance(seconds)
        self._add_energy(p * seconds)
        self._last_t = self.clock.now_s()
        self._busy = False
        return seconds

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._accrue_idle()
            self.clock.advance(seconds)
            self._accrue_idle()

    def now_s(self) -> float:
        return self.clock.now_s()
