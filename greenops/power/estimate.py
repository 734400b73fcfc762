"""EstimatedCpu: CPU energy where no counter exists (VMs, containers, machines whose RAPL is
unreadable, macOS) — a documented model, labelled ESTIMATED wherever it appears and never
added to measured energy (power.Measurement keeps the two apart).

Model (codecarbon's idea, with the idle draw kept): each logical CPU this process sees draws
`per_cpu_w` = TDP / hardware threads of its chip at full load and `IDLE_SHARE` of that idle, so

    energy_j(t) = per_cpu_w * (IDLE_SHARE * n_cpus * t + (1 - IDLE_SHARE) * busy_cpu_s(t))

with busy_cpu_s the CPU time spent outside idle: the machine's (/proc/stat, scope="machine",
the default) or this process's and its waited-for children's (/proc/self/stat,
scope="process"). TDP and threads come from the small bundled table (cpu_tdp.csv, vendor
spec sheets) by the CPU model name, or `tdp_w` / $GREENOPS_CPU_TDP_W (watts for the CPUs this
process sees); an unknown model takes ASSUMED_PER_CPU_W, and says so in `basis`.
"""

from __future__ import annotations

import csv
import os
import platform
import re
import time

from .device import Constraints, Device
from .errors import NotSupported

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_tdp.csv")
IDLE_SHARE = 0.3  # idle draw as a share of full load (servers idle at ~30-50% of TDP)
ASSUMED_PER_CPU_W = 4.0  # an unknown model: typical server chips give 2-4 W per thread


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def lookup(model: str) -> tuple[float, int, str] | None:
    """(TDP W, hardware threads, source) of the first table row whose pattern matches the
    model name, or None."""
    with open(TABLE) as f:
        for row in csv.DictReader(r for r in f if not r.startswith("#")):
            if re.search(row["pattern"], model):
                return float(row["tdp_w"]), int(row["threads"]), row["source"]
    return None


def visible_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _machine_busy_s() -> float:
    """CPU seconds spent outside idle and iowait since boot, summed over CPUs (/proc/stat)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    ticks = [int(v) for v in parts[:8]]  # user nice system idle iowait irq softirq steal
    busy = sum(ticks) - ticks[3] - ticks[4] - ticks[7]  # steal: another guest's time
    return busy / os.sysconf("SC_CLK_TCK")


def _process_busy_s() -> float:
    """This process's CPU seconds plus its waited-for children's (utime, stime, cutime,
    cstime of /proc/self/stat)."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class EstimatedCpu(Device):
    """The CPUs this process sees, as an estimate (module doc). Not cappable."""

    estimated = True
    kind = "cpu"
    domain = "cpu"

    def __init__(self, tdp_w: float | None = None, scope: str = "machine") -> None:
        if scope not in ("machine", "process"):
            raise ValueError(f"scope must be 'machine' or 'process', got {scope!r}")
        self.scope = scope
        self.n_cpus = visible_cpus()
        self.model = cpu_model()
        env = os.environ.get("GREENOPS_CPU_TDP_W")
        if tdp_w is None and env:
            tdp_w = float(env)
        if tdp_w is not None:
            self.per_cpu_w = tdp_w / self.n_cpus
            self.basis = f"given TDP {tdp_w:g} W for {self.n_cpus} CPUs"
        else:
            hit = lookup(self.model)
            if hit:
                tdp, threads, source = hit
                self.per_cpu_w = tdp / threads
                self.basis = f"{self.model}: TDP {tdp:g} W / {threads} threads ({source})"
            else:
                self.per_cpu_w = ASSUMED_PER_CPU_W
                self.basis = (
                    f"{self.model}: not in the table; assumed {ASSUMED_PER_CPU_W:g} W per CPU "
                    "(set GREENOPS_CPU_TDP_W)"
                )
        self._busy = _machine_busy_s if scope == "machine" else _process_busy_s
        self._t0, self._b0 = time.monotonic(), self._busy()

    @property
    def name(self) -> str:
        return f"{self.model} x{self.n_cpus} CPUs (ESTIMATED)"

    @property
    def index(self) -> int:
        return 0

    @property
    def uuid(self) -> str:
        return f"CPU-ESTIMATE-{self.scope}"

    def spec(self) -> dict:
        return {"kind": "estimate", "scope": self.scope}

    def energy_j(self) -> float:
        t = time.monotonic() - self._t0
        busy = max(self._busy() - self._b0, 0.0)
        return self.per_cpu_w * (IDLE_SHARE * self.n_cpus * t + (1 - IDLE_SHARE) * busy)

    def power_w(self) -> float:
        e0, t0 = self.energy_j(), time.monotonic()
        time.sleep(0.1)
        return (self.energy_j() - e0) / (time.monotonic() - t0)

    def constraints(self) -> Constraints:
        raise NotSupported(f"{self.name} is an estimate: it has no power limit")

    def limit_w(self) -> float:
        raise NotSupported(f"{self.name} is an estimate: it has no power limit")

    def _write_limit_w(self, watts: float) -> None:
        raise NotSupported(f"{self.name} is an estimate: it has no power limit")

    def describe(self) -> dict:
        return {
            "index": 0,
            "name": self.name,
            "uuid": self.uuid,
            "kind": "cpu",
            "domain": self.domain,
            "simulated": False,
            "estimated": True,
            "basis": self.basis,
            "scope": self.scope,
            "power_w": self.power_w(),
            "limit_w": None,
        }
