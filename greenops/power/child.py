"""Running another program under the runtime (`greenops power cap`, `greenops run`): its exit
code passed on, SIGINT/SIGTERM forwarded, simulated devices modelled busy while it runs, and —
where no hardware limit can be set — a software cap on it: the program's process group is
paused (SIGSTOP) and resumed (SIGCONT) so that the devices' measured average power stays
within the budget (the in-process Governor's rule, s = (E - B*T) / (B - p_idle), applied every
`period_s`). Nothing here can stop the program from running to its end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

from .device import Device
from .simulated import SimulatedDevice


class Pacer:
    """The software cap of a child process: budget_w per device (uuid -> W)."""

    def __init__(self, budget_w: dict[str, float], devs: list[Device]) -> None:
        self.budget_w, self.devs = budget_w, devs
        self.t0 = time.monotonic()
        self.e0 = {d.uuid: d.energy_j() or 0.0 for d in devs}
        self.idle_w = {d.uuid: 0.0 for d in devs}
        self.paused_s = 0.0

    def pause_s(self) -> float:
        t = time.monotonic() - self.t0
        pause = 0.0
        for d in self.devs:
            excess = (d.energy_j() or 0.0) - self.e0[d.uuid] - self.budget_w[d.uuid] * t
            budget = self.budget_w[d.uuid]
            if excess > 0:
                pause = max(pause, excess / max(budget - self.idle_w[d.uuid], 1e-3 * budget))
        return min(pause, 5.0)  # pause in slices: the program and signals stay responsive


def run(
    cmd: list[str],
    devs: list[Device],
    pacer: Pacer | None = None,
    every: Callable[[], None] | None = None,
    period_s: float = 0.1,
) -> tuple[int, float]:
    """Runs the command to its end; (exit code, seconds). `every()` is called each period
    (metrics, emissions ticks)."""
    sims = [d for d in devs if isinstance(d, SimulatedDevice)]
    t0 = last = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, process_group=0 if pacer else None)
    except OSError as e:
        raise SystemExit(f"greenops: cannot run {cmd[0]!r}: {e.strerror or e}") from None
    stopped = False

    def forward(signum, frame):
        if stopped:
            os.killpg(proc.pid, signal.SIGCONT)
        proc.send_signal(signum)

    def accrue(busy: bool):
        nonlocal last
        now = time.monotonic()
        for d in sims:  # both advance the device's clock with the wall time
            if busy:
                d.run_step((now - last) / d.step_time_s())
            else:
                d.sleep(now - last)
        last = now

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                rc = proc.wait(timeout=period_s)
                break
            except subprocess.TimeoutExpired:
                accrue(busy=True)
            if every:
                every()
            if pacer is not None:
                pause = pacer.pause_s()
                if pause > 0 and proc.poll() is None:
                    e_before = {d.uuid: d.energy_j() or 0.0 for d in pacer.devs}
                    os.killpg(proc.pid, signal.SIGSTOP)
                    stopped = True
                    time.sleep(pause)
                    accrue(busy=False)
                    os.killpg(proc.pid, signal.SIGCONT)
                    stopped = False
                    for d in pacer.devs:
                        e = (d.energy_j() or 0.0) - e_before[d.uuid]
                        pacer.idle_w[d.uuid] = e / pause
                    pacer.paused_s += pause
        accrue(busy=True)
    finally:
        if stopped and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGCONT)
        for s, h in old.items():
            signal.signal(s, h)
    return rc, time.monotonic() - t0
