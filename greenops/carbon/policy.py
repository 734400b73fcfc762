"""Reactive carbon-aware cap policies: the cap now from the intensity now.

`Reactive` is the carbon-aware form of the Zeus cost (Chung et al., "Zeus", NSDI '23; the
carbon-aware variant weighs energy by the grid's intensity): per step it minimizes

    eta * (I / I_ref) * energy_per_step(cap) + (1 - eta) * P_max * time_per_step(cap)

over the profiled caps, so that at the reference intensity it chooses what Zeus's cost with
the same eta chooses, a lower cap as the grid gets dirtier and a higher one as it gets cleaner.
I_ref is given, or the mean of the source's last `history_hours` (refreshed hourly), or the
first intensity read.
"""

from __future__ import annotations

import time

from .curve import Curve


class Reactive:
    def __init__(
        self, eta: float = 0.5, reference_g: float | None = None, history_hours: float = 24
    ) -> None:
        if not 0 <= eta <= 1:
            raise ValueError(f"eta must lie in [0, 1], got {eta}")
        if reference_g is not None and reference_g <= 0:
            raise ValueError(f"the reference intensity must be positive, got {reference_g}")
        self.eta = eta
        self.reference_g = reference_g
        self.history_hours = history_hours
        self._fixed = reference_g is not None
        self._calibrated_at: float | None = None

    def calibrate(self, source, now_s: float | None = None) -> None:
        """Sets the reference from the source's recent history (at most once an hour of
        `now_s`, seconds on any clock; default time.monotonic(): a replay passes its simulated
        clock, so that its reactive policy is referenced as the live one is)."""
        now_s = time.monotonic() if now_s is None else now_s
        if self._fixed or (self._calibrated_at is not None and now_s - self._calibrated_at < 3600):
            return
        pts = source.history(self.history_hours)
        vals = [p.intensity_g_per_kwh for p in pts if p.intensity_g_per_kwh > 0]
        if vals:
            self.reference_g = sum(vals) / len(vals)
            self._calibrated_at = now_s

    def cap_w(self, intensity: float, curve: Curve) -> float:
        ref = self.reference_g or intensity
        if ref <= 0:
            return curve.fastest_w
        w = self.eta * max(intensity, 0.0) / ref
        p_max = max(curve.power_w)
        return min(
            curve.limits_w,
            key=lambda c: (
                w * curve.energy_per_step_j(c) + (1 - self.eta) * p_max * curve.at(c)[0],
                -c,
            ),
        )
