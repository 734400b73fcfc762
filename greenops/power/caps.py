"""power.cap: a power limit for a block of code that is always put back.

    with greenops.power.cap(200):          # watts on every visible device
        train()
    @greenops.power.cap(0.8, mode="auto")  # 80% of each device's default limit
    def train(): ...

The limit is validated against each device's constraints before anything changes (a clear
error, never a silent clamp). Each device's previous limit is remembered and restored exactly
on exit — normal, exception, SIGINT, SIGTERM (existing handlers are chained), interpreter exit
— and nested caps restore in order. Every change is first written to the journal, so a hard
kill is repaired by `greenops power restore` or by the next process that starts a cap.

mode="hardware": set the hardware limit, or raise NoPermission saying what is needed.
mode="software": leave the hardware alone; `.governor` paces the work to the budget (call
`.governor.step()` once per iteration). mode="auto": hardware, falling back to software
(with one warning) when the process may not set limits.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import warnings

from . import journal
from .device import Device, dry_run
from .errors import DeviceNotFound, NoPermission, PowerError
from .governor import Governor
from .registry import device_from_spec, devices

log = logging.getLogger("greenops.power")

MODES = ("auto", "hardware", "software")

# Process-wide stack of applied changes: (cap, device, previous_w, journal_id or None).
_stack: list[tuple[object, Device, float, int | None]] = []
_lock = threading.RLock()
_installed = False
_previous_handlers: dict[int, object] = {}
_restored_stale = False


def restore_stale() -> list[dict]:
    """Puts back limits left behind by processes that died without restoring them."""
    stale = journal.stale_entries()
    if stale:
        log.warning("restoring %d power limit(s) left by dead process(es)", len(stale))
    return journal.restore(stale, device_from_spec)


def _restore_through(owner: object | None) -> None:
    """Pops and restores, newest first, every change down to the oldest one of `owner` (changes
    of caps nested inside it go first); owner None: all of them."""
    with _lock:
        while _stack and (owner is None or any(c is owner for c, *_ in _stack)):
            _, dev, previous_w, jid = _stack.pop()
            try:
                dev.set_limit_w(previous_w)
                if jid is not None:
                    journal.remove([jid])
            except Exception as e:  # keep the journal entry for `greenops power restore`
                log.error(
                    "could not restore %s to %g W: %s; run `greenops power restore`",
                    dev.name,
                    previous_w,
                    e,
                )


def _on_signal(signum, frame):
    _restore_through(None)
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _installed
    if _installed:
        return
    atexit.register(_restore_through, None)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            _previous_handlers[sig] = signal.getsignal(sig)
            signal.signal(sig, _on_signal)
    _installed = True


class cap(contextlib.ContextDecorator):
    """devices: the devices to cap; default (`on=None`) the visible GPUs, else the CPU
    packages (RAPL); on="gpu" | "cpu" | "all" to choose. Where there is nothing to cap at all,
    mode="auto" warns once and runs the block uncapped (`applied_mode == "none"`): the job
    is never stopped by the runtime; mode="hardware" raises DeviceNotFound."""

    def __init__(
        self,
        limit: float,
        devices: list[Device] | None = None,
        mode: str = "auto",
        on: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if limit <= 0:
            raise ValueError(f"a power cap must be positive, got {limit}")
        if on not in (None, "gpu", "cpu", "all"):
            raise ValueError(f"on must be 'gpu', 'cpu' or 'all', got {on!r}")
        self.limit = limit
        self.mode = mode
        self.on = on
        self._devices = devices
        self.governor: Governor | None = None
        self.applied_mode: str | None = None
        self.targets_w: dict[str, float] = {}

    def _target_w(self, d: Device) -> float:
        """limit <= 1: a fraction of the device's default limit; otherwise watts."""
        return self.limit * d.constraints().default_w if self.limit <= 1 else float(self.limit)

    def _find(self) -> list[Device]:
        from .registry import cpus, gpus

        if self.on is not None:
            return devices(kind=self.on) if self.on != "gpu" else devices()
        return gpus() or cpus("cap")

    def __enter__(self) -> cap:
        global _restored_stale
        devs = self._devices if self._devices is not None else self._find()
        if not devs:
            if self.mode == "hardware":
                raise DeviceNotFound("nothing to cap here: no GPU and no RAPL package zone")
            warnings.warn(
                "greenops.power.cap: nothing to cap here (no GPU, no RAPL package zone); "
                "running uncapped",
                RuntimeWarning,
                stacklevel=2,
            )
            self.devices, self.applied_mode = [], "none"
            return self
        if not _restored_stale:
            restore_stale()  # "the next start of the runtime" repairs a hard kill
            _restored_stale = True
        self.targets_w = {d.uuid: d.validate_limit_w(self._target_w(d)) for d in devs}
        self.devices = devs
        if self.mode in ("auto", "hardware"):
            try:
                self._apply_hardware(devs)
                self.applied_mode = "hardware"
                return self
            except BaseException as e:
                _restore_through(self)  # devices changed before the failure go back
                if self.mode == "hardware" or not isinstance(e, NoPermission):
                    raise
                warnings.warn(
                    f"greenops.power.cap: {e}; falling back to the software governor",
                    RuntimeWarning,
                    stacklevel=2,
                )
        self.governor = Governor(self.targets_w, devs)
        self.applied_mode = "software"
        return self

    def _apply_hardware(self, devs: list[Device]) -> None:
        with _lock:
            _install_handlers()
            for d in devs:
                previous_w = d.limit_w()
                target = self.targets_w[d.uuid]
                jid = None
                if not dry_run():
                    jid = journal.record(d.spec(), d.uuid, previous_w, target)
                try:
                    d.set_limit_w(target)
                except PowerError:
                    if jid is not None:
                        journal.remove([jid])
                    raise
                _stack.append((self, d, previous_w, jid))

    def __exit__(self, *exc) -> bool:
        if self.applied_mode == "hardware":
            _restore_through(self)
        return False


def active_limits() -> list[tuple[str, float]]:
    """(device uuid, previous limit) of every change this process holds, oldest first."""
    with _lock:
        return [(d.uuid, prev) for _, d, prev, _ in _stack]
