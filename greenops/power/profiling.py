"""Profiling: run a step function under a sweep of power limits, measure time and energy per
step at each, and choose a limit under a cost (after Zeus's GlobalPowerLimitOptimizer).

    result = power.profile(step_fn, warmup_steps=2, steps_per_limit=10)
    result.within_slowdown(0.10)        # least energy within 10% of the fastest time per step
    result.zeus_cost(eta=0.5)           # argmin  eta*E + (1-eta)*P_max*T  per step
    result.save("sweep.json"); result.plot("sweep.png")
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable

from .._optional import pyplot
from .caps import cap
from .device import Device, dry_run
from .meter import EnergyMeter
from .registry import devices as visible_devices


@dataclasses.dataclass(frozen=True)
class ProfileRow:
    limit_w: float
    time_per_step_s: float
    energy_per_step_j: float

    @property
    def avg_power_w(self) -> float:
        return self.energy_per_step_j / self.time_per_step_s


@dataclasses.dataclass
class ProfileResult:
    rows: list[ProfileRow]
    max_limit_w: float
    devices: list[str]
    simulated: bool
    dry_run: bool = False

    # --- selectors ---
    def min_energy(self) -> ProfileRow:
        return min(self.rows, key=lambda r: r.energy_per_step_j)

    def min_time(self) -> ProfileRow:
        return min(self.rows, key=lambda r: r.time_per_step_s)

    def zeus_cost(self, eta: float = 0.5) -> ProfileRow:
        """argmin eta*E + (1-eta)*P_max*T per step: eta=1 minimizes energy, eta=0 time."""
        if not 0 <= eta <= 1:
            raise ValueError(f"eta must lie in [0, 1], got {eta}")
        return min(
            self.rows,
            key=lambda r: (
                eta * r.energy_per_step_j + (1 - eta) * self.max_limit_w * r.time_per_step_s
            ),
        )

    def within_slowdown(self, max_slowdown: float) -> ProfileRow:
        """Least energy among limits at most `max_slowdown` (0.1 = 10%) slower than the fastest."""
        bound = self.min_time().time_per_step_s * (1 + max_slowdown)
        return min(
            (r for r in self.rows if r.time_per_step_s <= bound), key=lambda r: r.energy_per_step_j
        )

    def row(self, limit_w: float) -> ProfileRow:
        return next(r for r in self.rows if r.limit_w == limit_w)

    # --- persistence ---
    def to_dict(self) -> dict:
        return {
            "rows": [dataclasses.asdict(r) for r in self.rows],
            "max_limit_w": self.max_limit_w,
            "devices": self.devices,
            "simulated": self.simulated,
            "dry_run": self.dry_run,
        }

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)

    @classmethod
    def load(cls, path: str) -> ProfileResult:
        with open(path) as f:
            d = json.load(f)
        return cls(
            [ProfileRow(**r) for r in d["rows"]],
            d["max_limit_w"],
            d["devices"],
            d["simulated"],
            d.get("dry_run", False),
        )

    def plot(self, path: str) -> None:
        plt = pyplot("Profile.plot")

        xs = [r.limit_w for r in self.rows]
        fig, ax1 = plt.subplots(figsize=(7, 4))
        ax1.plot(xs, [r.time_per_step_s for r in self.rows], "o-", color="tab:blue")
        ax1.set_xlabel("power limit (W)")
        ax1.set_ylabel("time per step (s)", color="tab:blue")
        ax2 = ax1.twinx()
        ax2.plot(xs, [r.energy_per_step_j for r in self.rows], "s-", color="tab:green")
        ax2.set_ylabel("energy per step (J)", color="tab:green")
        sim = " (SIMULATED)" if self.simulated else ""
        ax1.set_title(f"{', '.join(self.devices)}{sim}", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    def table(self) -> str:
        best = self.min_energy().limit_w
        lines = [f"{'limit W':>8} {'s/step':>9} {'J/step':>9} {'avg W':>7}"]
        for r in self.rows:
            mark = "  <- least energy" if r.limit_w == best else ""
            lines.append(
                f"{r.limit_w:8.0f} {r.time_per_step_s:9.4f} {r.energy_per_step_j:9.2f} "
                f"{r.avg_power_w:7.1f}{mark}"
            )
        return "\n".join(lines)


def default_limits(devs: list[Device], step_w: float = 25.0) -> list[float]:
    """Max down to min in `step_w` steps, within every device's constraints."""
    lo = max(d.constraints().min_w for d in devs)
    hi = min(d.constraints().max_w for d in devs)
    out, x = [], hi
    while x >= lo - 1e-9:
        out.append(x)
        x -= step_w
    if out[-1] > lo:
        out.append(lo)
    return out


def profile(
    step_fn: Callable[[], object],
    limits: list[float] | None = None,
    warmup_steps: int = 2,
    steps_per_limit: int = 10,
    devices: list[Device] | None = None,
    progress: bool = True,
) -> ProfileResult:
    """Runs `step_fn` warmup_steps + steps_per_limit times at each limit (hardware caps,
    restored afterwards) and measures time and energy per step."""
    devs = devices if devices is not None else visible_devices()
    limits = limits or default_limits(devs)
    meter = EnergyMeter(devs)
    rows = []
    for i, limit in enumerate(limits):
        if progress:
            print(
                f"\r[{i + 1}/{len(limits)}] profiling at {limit:g} W",
                end="",
                file=sys.stderr,
                flush=True,
            )
        with cap(limit, devs, mode="hardware"):
            for _ in range(warmup_steps):
                step_fn()
            with meter.window(f"{limit}") as m:
                for _ in range(steps_per_limit):
                    step_fn()
        rows.append(ProfileRow(limit, m.time_s / steps_per_limit, m.energy_j / steps_per_limit))
    if progress:
        print("\r" + " " * 40 + "\r", end="", file=sys.stderr, flush=True)
    return ProfileResult(
        rows,
        min(d.constraints().max_w for d in devs),
        [d.name for d in devs],
        any(d.simulated for d in devs),
        dry_run(),
    )
