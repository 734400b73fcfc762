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


def devices(indices: list[int] | None = None) -> list[Device]:
    """GREENOPS_SIMULATE=<profile or CSV path> (GREENOPS_SIMULATE_COUNT devices, default 1)
    gives simulated devices sharing one simulated clock; otherwise the NVML GPUs this process
    sees. `indices` picks some of them."""
    sim = os.environ.get("GREENOPS_SIMULATE")
    if sim:
        count = int(os.environ.get("GREENOPS_SIMULATE_COUNT", "1"))
        key = (sim, count, os.environ.get("GREENOPS_STATE_DIR"))
        with _lock:
            if key not in _simulated:
                _simulated[key] = [
                    SimulatedDevice(sim, index=i, clock=_clock) for i in range(count)
                ]
            found: list[Device] = list(_simulated[key])
    else:
        from . import nvml

        found = list(nvml.visible_devices())
    if indices is None:
        if not found:
            raise DeviceNotFound("no GPU visible (set GREENOPS_SIMULATE=<profile> to simulate one)")
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
