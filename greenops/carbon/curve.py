"""A job's power/throughput curve: for each power cap, the rate of work (steps/s) and the
power drawn, from a measured profile. The planner and the carbon-aware policies read it."""

from __future__ import annotations

import dataclasses
import json
import os


@dataclasses.dataclass(frozen=True)
class Curve:
    limits_w: tuple[float, ...]  # ascending
    step_time_s: tuple[float, ...]
    power_w: tuple[float, ...]
    name: str = "profile"
    simulated: bool = False
    idle_w: float | None = None  # draw while paused, where known
    # the device's default power limit, what it runs at when nobody caps it (default: the
    # highest profiled cap, which is the default limit on NVIDIA GPUs); not always the fastest
    # cap: an A40 runs BERT faster, and on less energy, at 275 W than at its default 300 W
    default_w: float | None = None

    def __post_init__(self) -> None:
        n = len(self.limits_w)
        if n < 1 or not (len(self.step_time_s) == len(self.power_w) == n):
            raise ValueError("a curve needs one step time and one power per cap")
        if list(self.limits_w) != sorted(set(self.limits_w)):
            raise ValueError(f"caps must be distinct and ascending, got {self.limits_w}")
        if min(self.step_time_s) <= 0 or min(self.power_w) <= 0:
            raise ValueError("step times and powers must be positive")

    @classmethod
    def of(cls, profile) -> Curve:
        """From a Curve, a `power.ProfileResult` (or the JSON its `save` wrote), a
        `power.PowerProfile`, or a bundled profile name / Zeus CSV path (`load_profile`).
        Work is counted in the profile's steps (a PowerProfile's step is 1/STEPS_PER_WINDOW
        of its window, as on the simulated device)."""
        from ..power.profiling import ProfileResult
        from ..power.simulated import STEPS_PER_WINDOW, PowerProfile, default_idle_w, load_profile

        if isinstance(profile, Curve):
            return profile
        if isinstance(profile, str) and profile.endswith(".json") and os.path.exists(profile):
            with open(profile) as f:
                if "rows" in json.load(f):
                    profile = ProfileResult.load(profile)
        if isinstance(profile, str):
            profile = load_profile(profile)
        if isinstance(profile, ProfileResult):
            rows = sorted(profile.rows, key=lambda r: r.limit_w)
            return cls(
                tuple(r.limit_w for r in rows),
                tuple(r.time_per_step_s for r in rows),
                tuple(r.avg_power_w for r in rows),
                ", ".join(profile.devices),
                profile.simulated,
            )
        if isinstance(profile, PowerProfile):
            return cls(
                profile.limits_w,
                tuple(t / STEPS_PER_WINDOW for t in profile.window_time_s),
                profile.power_w,
                profile.name,
                True,
                default_idle_w(profile),
            )
        raise TypeError(f"cannot make a power curve from {type(profile).__name__}")

    def at(self, limit_w: float) -> tuple[float, float]:
        """(step time s, power W) at any cap: linear between profiled caps, clamped outside
        (the simulated device's model)."""
        from ..power.simulated import interpolate

        return interpolate(self.limits_w, self.step_time_s, self.power_w, limit_w)

    def rate(self, limit_w: float) -> float:
        return 1.0 / self.at(limit_w)[0]

    def energy_per_step_j(self, limit_w: float) -> float:
        t, p = self.at(limit_w)
        return t * p

    @property
    def default_limit_w(self) -> float:
        return self.default_w if self.default_w is not None else self.limits_w[-1]

    def steps_in(self, hours: float) -> float:
        """The work (in steps) a job of `hours` at the default limit does: how users know
        their job's length."""
        if hours <= 0:
            raise ValueError(f"work_hours must be positive, got {hours}")
        return hours * 3600.0 / self.at(self.default_limit_w)[0]

    @property
    def fastest_w(self) -> float:
        """The cap with the shortest step (the lowest such cap on ties)."""
        return min(self.limits_w, key=lambda c: (self.at(c)[0], c))

    @property
    def min_energy_w(self) -> float:
        return min(self.limits_w, key=lambda c: (self.energy_per_step_j(c), c))

    def chain(self, floor: tuple[float, float] | None = None) -> list[tuple[float, float, float]]:
        """The efficient frontier as (rate, power, cap) vertices with rate and power rising and
        marginal power per unit of rate rising: the lower convex hull of the profiled points
        (plus `floor`, a (rate, power) option with no cap such as pausing or being done;
        its cap is reported as 0). Points off it are never worth running: a mix of two
        vertices does the same work for less power."""
        pts = [
            (1.0 / t, p, c)
            for c, t, p in zip(self.limits_w, self.step_time_s, self.power_w, strict=True)
        ]
        if floor is not None:
            pts.append((floor[0], floor[1], 0.0))
        pts.sort(key=lambda v: (v[0], v[1]))
        # Start from the least power (a slower point that draws more is dominated) ...
        start = min(range(len(pts)), key=lambda i: (pts[i][1], -pts[i][0]))
        hull: list[tuple[float, float, float]] = []
        for v in pts[start:]:
            if hull and v[0] <= hull[-1][0]:  # same rate: keep the cheaper (already there)
                continue
            # ... and keep the lower hull: drop a middle vertex above the chord.
            while len(hull) >= 2:
                (r0, p0, _), (r1, p1, _) = hull[-2], hull[-1]
                if (p1 - p0) * (v[0] - r0) >= (v[1] - p0) * (r1 - r0):
                    hull.pop()
                else:
                    break
            hull.append(v)
        # Past the fastest point nothing is gained; the hull ends there by construction.
        return hull
