"""Which devices this process sees: simulated (GREENOPS_SIMULATE) or real (NVML)."""

from __future__ import annotations

import os
import threading

from .device import Device
from .errors import DeviceNotFound
from .simulated import SimClock, SimulatedDevice

_lock = threading.Lock()
_simulated: dict[tuple, list[SimulatedDevice]] = {}
_clock = SimClock()


KINDS = ("gpu", "cpu", "all", "meter")


def gpus() -> list[Device]:
    """The GPUs this process sees: simulated (GREENOPS_SIMULATE=<profile or CSV path>,
    GREENOPS_SIMULATE_COUNT of them sharing one simulated clock) or NVML's; [] where there is
    no NVML (no driver, no library)."""
    sim = os.environ.get("GREENOPS_SIMULATE")
    if sim:
        count = int(os.environ.get("GREENOPS_SIMULATE_COUNT", "1"))
        key = (sim, count, os.environ.get("GREENOPS_STATE_DIR"))
        with _lock:
            if key not in _simulated:
                _simulated[key] = [
                    SimulatedDevice(sim, index=i, clock=_clock) for i in range(count)
                ]
            return list(_simulated[key])
    from . import nvml

    return list(nvml.visible_devices()) if nvml.available() else []


def cpus(purpose: str = "cap") -> list[Device]:
    """CPU power domains. purpose="cap": the RAPL package (or psys) zones with a power limit;
    "meter": the RAPL package and DRAM zones whose counters this process can read, else one
    EstimatedCpu (labelled; its `unmeasured_because` says why there is no counter)."""
    from . import rapl

    zones = rapl.zones()
    if purpose == "cap":
        tops = [z for z in zones if z.domain in ("package", "psys") and z.has_limit()]
        pkgs = [z for z in tops if z.domain == "package"]
        return list(pkgs or tops)
    meter = [z for z in zones if z.domain in rapl.TOTAL_DOMAINS]
    ok = [z for z in meter if rapl.readable(z)]
    if ok:
        return list(ok)
    from .estimate import EstimatedCpu

    est = EstimatedCpu()
    est.unmeasured_because = (
        "RAPL counters exist but are not readable: " + rapl.READ_HOW
        if meter
        else f"no RAPL powercap zones under {rapl.root()}"
    )
    return [est]


def devices(indices: list[int] | None = None, kind: str = "gpu") -> list[Device]:
    """The devices of `kind`: "gpu" (gpus(); `indices` picks some), "cpu" (cpus("cap"): the
    CPU packages' power limits), "all" (GPUs and CPU packages, for caps) or "meter" (GPUs and
    the CPU's energy domains, measured or estimated: what EnergyMeter reads by default; with
    GREENOPS_SIMULATE the simulated GPUs alone, so that no model is mixed with a
    measurement)."""
    if kind not in KINDS:
        raise ValueError(f"device kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "meter":
        g = gpus()
        if os.environ.get("GREENOPS_SIMULATE"):
            return g
        return g + cpus("meter")
    if kind == "cpu":
        found = cpus("cap")
        if not found:
            from . import rapl

            raise DeviceNotFound(
                f"no CPU power limit to set: no RAPL package zone with constraints under "
                f"{rapl.root()} (VMs and containers usually have none)"
            )
        return found
    if kind == "all":
        return gpus() + cpus("cap")
    found = gpus()
    if indices is None:
        if not found:
            raise DeviceNotFound(
                "no GPU visible (no NVML GPU here; GREENOPS_SIMULATE=<profile> simulates one, "
                "and devices(kind='cpu'|'meter') gives the CPU)"
            )
        return found
    by_index = {d.index: d for d in found}
    missing = [i for i in indices if i not in by_index]
    if missing:
        raise DeviceNotFound(f"no device {missing}; visible: {sorted(by_index)}")
    return [by_index[i] for i in indices]


def device_from_spec(spec: dict) -> Device:
    """Rebuilds a device from the spec a journal entry recorded (another process's device)."""
    if spec["kind"] == "simulated":
        return SimulatedDevice(spec["profile"], index=spec["index"], state_path=spec["state_path"])
    if spec["kind"] == "rapl":
        from .rapl import RaplZone

        return RaplZone(spec["zone"], spec["index"], spec["root"])
    from . import nvml

    n = nvml.nvml()  # every GPU, whatever CUDA_VISIBLE_DEVICES hides: restore must reach it
    for i in range(n.nvmlDeviceGetCount()):
        d = nvml.NvmlDevice(i)
        if d.uuid == spec["uuid"]:
            return d
    raise DeviceNotFound(f"GPU {spec['uuid']} is not present")


def reset() -> None:
    """Forgets the cached simulated devices (tests)."""
    global _clock
    with _lock:
        _simulated.clear()
        _clock = SimClock()
