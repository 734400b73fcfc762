"""The one small device interface every power backend implements (NVML, simulated)."""

from __future__ import annotations

import abc
import dataclasses
import logging
import os

from .errors import InvalidLimit

log = logging.getLogger("greenops.power")


def dry_run() -> bool:
    """GREENOPS_POWER_DRY_RUN=1: every limit write is logged and skipped; reads still happen.
    Read at each write, so a test or benchmark can set it at any time before."""
    return os.environ.get("GREENOPS_POWER_DRY_RUN", "0") not in ("", "0")


@dataclasses.dataclass(frozen=True)
class Constraints:
    min_w: float
    max_w: float
    default_w: float


class Device(abc.ABC):
    """A GPU or CPU power domain whose energy can be read and, where it has one, its power
    limit read and (with permission) set. Units are in every name: watts (_w), joules (_j).
    `simulated`: figures from a device model; `estimated`: figures from a utilization model
    (EstimatedCpu) — neither is a measurement, and both say so wherever they are reported.
    `kind` is "gpu" or "cpu"; `domain` what the energy covers ("gpu", "package", "dram",
    "core", "uncore", "psys", "cpu" for an estimate)."""

    simulated: bool = False
    estimated: bool = False
    kind: str = "gpu"
    domain: str = "gpu"

    @property
    @abc.abstractmethod
    def name(self) -> str: ...

    @property
    @abc.abstractmethod
    def index(self) -> int:
        """The device's index as this process sees it (CUDA_VISIBLE_DEVICES applied)."""

    @property
    @abc.abstractmethod
    def uuid(self) -> str: ...

    @abc.abstractmethod
    def constraints(self) -> Constraints: ...

    @abc.abstractmethod
    def limit_w(self) -> float:
        """The power limit in force now."""

    @abc.abstractmethod
    def power_w(self) -> float:
        """Power draw now."""

    @abc.abstractmethod
    def energy_j(self) -> float | None:
        """A monotonic energy counter, or None where the device has none."""

    @abc.abstractmethod
    def _write_limit_w(self, watts: float) -> None:
        """Sets the hardware limit; raises NoPermission / NotSupported / GpuLost."""

    def validate_limit_w(self, watts: float) -> float:
        c = self.constraints()
        if not c.min_w <= watts <= c.max_w:
            raise InvalidLimit(
                f"{watts:g} W is outside {self.name}'s power-limit range "
                f"[{c.min_w:g}, {c.max_w:g}] W (default {c.default_w:g} W)"
            )
        return float(watts)

    def set_limit_w(self, watts: float) -> bool:
        """Validates, then sets the limit; returns False when GREENOPS_POWER_DRY_RUN skipped it."""
        watts = self.validate_limit_w(watts)
        if dry_run():
            log.warning("dry run: would set %s (%s) to %g W", self.name, self.uuid, watts)
            return False
        self._write_limit_w(watts)
        log.info("set %s (%s) power limit to %g W", self.name, self.uuid, watts)
        return True

    def sync(self) -> None:  # noqa: B027 (a no-op by default, not abstract)
        """Waits for queued work on the device before a reading (CUDA devices)."""

    def sleep(self, seconds: float) -> None:
        """Idles for `seconds` on the device's clock (the simulated device advances its own)."""
        import time

        time.sleep(seconds)

    def now_s(self) -> float:
        """The device's clock (the simulated device may keep a simulated one)."""
        import time

        return time.monotonic()

    def describe(self) -> dict:
        c = self.constraints()
        return {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "kind": self.kind,
            "domain": self.domain,
            "simulated": self.simulated,
            "estimated": self.estimated,
            "limit_w": self.limit_w(),
            "min_limit_w": c.min_w,
            "max_limit_w": c.max_w,
            "default_limit_w": c.default_w,
            "power_w": self.power_w(),
            "energy_j": self.energy_j(),
        }
