"""carbon.carbon_aware: a power cap that follows the grid's carbon intensity while work runs.

    src = carbon.ElectricityMaps(zone="DE")
    with carbon.carbon_aware(src, profile="sweep.json", period_s=300) as ctl:
        train()
    print(ctl.measurement)          # energy and gCO2eq of the block
    ctl.decisions                   # [(time, intensity, cap_w)]

Every `period_s` a background thread reads the intensity and picks the cap from the job's
power/throughput profile (`policy`: a `carbon.Reactive` — lower when the grid is dirty, higher
when it is clean — or a `carbon.Plan` to follow), then applies it through `power.cap` (journal,
restore on every exit path, dry run, software governor in mode="auto" without permission; in
software mode call `ctl.step()` once per iteration so that the governor can pace). A Plan's
pauses (plan(..., allow_pause=True)) stop the job for real with allow_pause=True: ctl.step()
blocks until the plan resumes; otherwise they run at the lowest cap. A carbon.Replanner policy
closes the loop: at every decision it sees the steps done (`progress()`, else the count of
ctl.step() calls) and re-plans the rest of the work to its deadline.

Distributed jobs (an initialized torch.distributed group): only rank 0 reads the intensity and
decides, in its thread; the ranks apply rank 0's latest decision together inside `ctl.step()`
every `sync_every` steps (a broadcast from the training loop's thread: collectives are never
issued from the background thread). Each rank caps its own devices.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import warnings

from ..power import distributed
from ..power.caps import cap
from ..power.device import Device
from ..power.errors import InvalidLimit
from ..power.meter import EnergyMeter, Measurement
from ..power.registry import devices as visible_devices
from ..power.simulated import SimulatedDevice
from .curve import Curve
from .planner import Plan
from .policy import Reactive
from .replanner import Replanner

log = logging.getLogger("greenops.carbon")


def job_curve(profile, devs: list[Device]):
    """The job's power/throughput curve: `profile` (anything carbon.Curve.of takes), or, when
    it is None, the simulated devices' own model."""
    if profile is not None:
        return Curve.of(profile)
    if devs and all(isinstance(d, SimulatedDevice) for d in devs):
        return Curve.of(devs[0].profile)
    raise ValueError(
        "carbon_aware needs the job's power profile: profile= a power.profile() result, the "
        "JSON its save() wrote, or a Zeus sweep CSV (only simulated devices carry their own)"
    )


class carbon_aware(contextlib.ContextDecorator):
    def __init__(
        self,
        source,
        profile=None,
        policy=None,
        devices: list[Device] | None = None,
        period_s: float = 300.0,
        mode: str = "auto",
        sync_every: int = 100,
        clock=None,
        allow_pause: bool = False,
        progress=None,
    ) -> None:
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        if sync_every < 1:
            raise ValueError(f"sync_every must be at least 1, got {sync_every}")
        self.source = source
        self._profile = profile
        self.policy = policy
        self._devices = devices
        self.period_s = period_s
        self.mode = mode
        self.sync_every = sync_every
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        # a Plan's pauses: with allow_pause, ctl.step() blocks until the plan resumes (the job
        # says it may stop); otherwise a pause runs at the lowest cap
        self.allow_pause = allow_pause
        # steps done so far, for a Replanner policy: progress() if given, else ctl.step() calls
        self._progress = progress
        self._resume_at: dt.datetime | None = None
        self.paused_s = 0.0
        self.decisions: list[tuple[dt.datetime, float | None, float]] = []
        self.measurement: Measurement | None = None
        self._cap: cap | None = None
        self._pending: float | None = None
        self._steps = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._warned = False

    # --- decisions ---
    def decide(self) -> float:
        """The cap for now: reads the intensity, asks the policy; falls back to the fastest
        cap when no intensity is known."""
        now = self._clock()
        # through the meter's reader: waits at most carbon_wait_s for a slow source
        reader = self.meter._intensity_reader
        intensity = reader.read() if reader is not None else self.source.current()
        if isinstance(self.policy, Replanner):
            done = self._progress() if self._progress is not None else self._steps
            w = self.policy.cap(now, done, self._energy_j())
            if w == 0:
                w = self._planned_pause(self.policy.plan, now)
        elif isinstance(self.policy, Plan):
            w = self.policy.cap_at(now)
            if w is None:  # past the plan's end: the work took longer, catch up
                w = self.curve.fastest_w
            elif w == 0:
                w = self._planned_pause(self.policy, now)
        elif intensity is None:
            w = self.curve.fastest_w
        else:
            if hasattr(self.policy, "calibrate"):
                self.policy.calibrate(self.source)
            w = self.policy.cap_w(intensity, self.curve)
        self.decisions.append((now, intensity, w))
        return w

    def _energy_j(self) -> float | None:
        """The capped devices' summed energy counters, or None if one has none."""
        try:
            e = [d.energy_j() for d in self.devices]
        except Exception:  # a counter that fails is an unknown, never a stop
            return None
        return None if any(v is None for v in e) else float(sum(e))

    def _planned_pause(self, plan, now) -> float:
        """A plan's pause: the lowest cap, and with allow_pause (single process) a real stop
        until the pause's end (ctl.step() blocks)."""
        if self.allow_pause and not self._distributed and plan is not None:
            self._resume_at = next((s.end for s in plan.segments if s.start <= now < s.end), now)
        return self.curve.limits_w[0]

    def _apply(self, watts: float) -> None:
        with self._lock:
            if self._cap is not None and self._cap.limit == watts:
                return
            if self._cap is not None:  # back to the original limit, then the new one
                self._cap.__exit__(None, None, None)
                self._cap = None
            c = cap(watts, self.devices, mode=self.mode)
            c.__enter__()
            self._cap = c
            log.info("carbon_aware: cap %g W (%s mode)", watts, c.applied_mode)

    def tick(self) -> None:
        """One period: closes an emissions interval, decides, and (single process) applies."""
        try:
            self.meter.tick()
            w = self.decide()
            if self._distributed:
                self._pending = w
            else:
                self._apply(w)
        except Exception as e:  # never into the job: keep the cap in force, say so once
            if not self._warned:
                warnings.warn(
                    f"greenops.carbon.carbon_aware: {e}; keeping the current cap",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._warned = True
            log.info("carbon_aware tick failed: %s", e)

    def step(self) -> None:
        """Once per training iteration: paces in software mode; in distributed jobs applies
        rank 0's decision on every rank every `sync_every` steps."""
        self._steps += 1
        if self._distributed and self._steps % self.sync_every == 0:
            w = distributed.agree(self._pending)
            if w is not None:
                self._apply(w)
        if self._resume_at is not None:
            self._pause()
        if self._cap is not None and self._cap.governor is not None:
            self._cap.governor.step()

    def _pause(self) -> None:
        """Blocks the job until the plan's pause ends (or the block exits), then decides anew."""
        import time

        until, self._resume_at = self._resume_at, None
        log.info("carbon_aware: paused until %s", until.isoformat())
        t0 = time.monotonic()
        while not self._stop.is_set():
            left = (until - self._clock()).total_seconds()
            if left <= 0:
                break
            self._stop.wait(min(left, 0.05))  # resume within 50 ms of the plan
        self.paused_s += time.monotonic() - t0
        self.tick()

    @property
    def applied_mode(self) -> str | None:
        return self._cap.applied_mode if self._cap is not None else None

    @property
    def cap_w(self) -> float | None:
        return self._cap.limit if self._cap is not None else None

    # --- lifetime ---
    def __enter__(self) -> carbon_aware:
        self.devices = self._devices if self._devices is not None else visible_devices()
        self.curve = job_curve(self._profile, self.devices)
        for d in self.devices:
            c = d.constraints()
            bad = [w for w in self.curve.limits_w if not c.min_w <= w <= c.max_w]
            if bad:
                raise InvalidLimit(
                    f"the profile's caps {bad} W lie outside {d.name}'s range "
                    f"[{c.min_w:g}, {c.max_w:g}] W: profile this device"
                )
        self.policy = self.policy if self.policy is not None else Reactive()
        self._distributed = distributed._dist() is not None
        self._rank0 = not self._distributed or distributed._dist().get_rank() == 0
        self.meter = EnergyMeter(self.devices, carbon=self.source if self._rank0 else None)
        self.meter.begin("carbon_aware")
        # The first decision is made here, on the caller's thread (signal handlers install
        # from the main thread only); in a distributed job every rank takes rank 0's.
        w = self._pending = self.decide() if self._rank0 else None
        self._apply(distributed.agree(w) if self._distributed else w)
        if self._rank0:
            self._thread = threading.Thread(
                target=self._run, daemon=True, name="greenops-carbon-aware"
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.tick()

    def __exit__(self, *exc) -> bool:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.measurement = self.meter.end("carbon_aware")
        finally:
            with self._lock:
                if self._cap is not None:
                    self._cap.__exit__(None, None, None)
                    self._cap = None
        return False
