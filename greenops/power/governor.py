"""Software governor: keeps a job's measured average power under a budget by pacing it, for
when the hardware limit cannot be set (no permission) or should not be.

Call `step()` once per iteration (or wrap the step function with `wrap`). After each step it
reads the energy counters and, if the average power since the start is above the budget,
idles long enough to bring it back: with E joules over T seconds, the budget B and the idle
draw p (measured during the previous pause), the pause is s = (E - B*T) / (B - p).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from .device import Device
from .errors import PowerError


class Governor:
    def __init__(self, budget_w: float | dict[str, float], devices: list[Device]) -> None:
        if not devices:
            raise PowerError("a governor needs at least one device")
        self.devices = devices
        self.budget_w = {
            d.uuid: (budget_w[d.uuid] if isinstance(budget_w, dict) else budget_w) for d in devices
        }
        self._clock = devices[0]
        self.paused_s = 0.0
        self.steps = 0
        self._idle_w = {d.uuid: 0.0 for d in devices}
        self._start_t = self._clock.now_s()
        self._start_e = self._energies()

    def _energies(self) -> dict[str, float]:
        for d in self.devices:
            d.sync()
        out = {}
        for d in self.devices:
            e = d.energy_j()
            if e is None:
                raise PowerError(
                    f"{d.name} has no energy counter; the software governor needs "
                    "one (Volta or newer)"
                )
            out[d.uuid] = e
        return out

    def energy_j(self) -> dict[str, float]:
        now = self._energies()
        return {u: now[u] - self._start_e[u] for u in now}

    def elapsed_s(self) -> float:
        return self._clock.now_s() - self._start_t

    def average_power_w(self) -> dict[str, float]:
        t = self.elapsed_s()
        return {u: (e / t if t > 0 else 0.0) for u, e in self.energy_j().items()}

    def step(self) -> float:
        """Paces after one iteration; returns the seconds paused."""
        self.steps += 1
        e, t = self.energy_j(), self.elapsed_s()
        pause = 0.0
        for u, budget in self.budget_w.items():
            excess_j = e[u] - budget * t
            if excess_j > 0:
                pause = max(pause, excess_j / max(budget - self._idle_w[u], 1e-3 * budget))
        if pause > 0:
            e0 = self._energies()
            self._clock.sleep(pause)  # on a simulated device: the shared simulated clock
            e1 = self._energies()
            for u in e0:
                self._idle_w[u] = (e1[u] - e0[u]) / pause
            self.paused_s += pause
        return pause

    def wrap(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def paced(*args, **kwargs):
            out = fn(*args, **kwargs)
            self.step()
            return out

        return paced
