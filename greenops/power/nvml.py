"""NvmlDevice: a real NVIDIA GPU through NVML (nvidia-ml-py, imported as pynvml).

NVML is probed lazily, once; its units (mW, mJ) are converted here, at the edge; its error
codes become typed exceptions. The devices follow CUDA_VISIBLE_DEVICES: entries that are GPU
UUIDs (or their prefixes) are matched by UUID; integer entries are NVML (PCI bus) indices,
which is CUDA's numbering under CUDA_DEVICE_ORDER=PCI_BUS_ID. MIG instances are rejected:
a power limit belongs to the whole physical GPU that all its instances share.
"""

from __future__ import annotations

import os
import threading

from .device import Constraints, Device
from .errors import DeviceNotFound, GpuLost, InvalidLimit, NoPermission, NotSupported, PowerError

_lock = threading.Lock()
_nvml = None  # the initialized module (real pynvml or an injected fake)
_nvml_error: str | None = None


def use_nvml(module) -> None:
    """Uses `module` as NVML (e.g. greenops.power.fake_nvml.FakeNvml for tests); None resets."""
    global _nvml, _nvml_error
    with _lock:
        _nvml, _nvml_error = module, None
        if module is not None:
            module.nvmlInit()


def nvml():
    """The initialized NVML module; raises NotSupported saying why when there is none."""
    global _nvml, _nvml_error
    with _lock:
        if _nvml is None and _nvml_error is None:
            try:
                import pynvml

                pynvml.nvmlInit()
                _nvml = pynvml
            except Exception as e:  # library missing, no driver, ...
                _nvml_error = f"NVML is not available ({type(e).__name__}: {e})"
        if _nvml is None:
            raise NotSupported(_nvml_error)
        return _nvml


def available() -> bool:
    try:
        nvml()
    except NotSupported:
        return False
    return True


def _translate(e: Exception, what: str) -> PowerError:
    n = nvml()
    code = getattr(e, "value", None)
    if code == getattr(n, "NVML_ERROR_NO_PERMISSION", 4):
        return NoPermission(f"{what}: permission denied by NVML; {NoPermission.HOW}")
    if code == getattr(n, "NVML_ERROR_NOT_SUPPORTED", 3):
        return NotSupported(f"{what}: not supported by this GPU or driver")
    if code == getattr(n, "NVML_ERROR_GPU_IS_LOST", 15):
        return GpuLost(
            f"{what}: the GPU is lost (fell off the bus or stopped answering); "
            "check `nvidia-smi` and the kernel log"
        )
    if code == getattr(n, "NVML_ERROR_INVALID_ARGUMENT", 2):
        return InvalidLimit(f"{what}: NVML rejected the value as invalid")
    return PowerError(f"{what}: NVML error {code}: {e}")


def _call(what: str, fn, *args):
    n = nvml()
    try:
        return fn(*args)
    except n.NVMLError as e:
        raise _translate(e, what) from e


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class NvmlDevice(Device):
    def __init__(self, nvml_index: int, index: int | None = None) -> None:
        n = nvml()
        self._nvml_index = nvml_index
        self._index = nvml_index if index is None else index
        self._handle = _call(f"GPU {nvml_index}", n.nvmlDeviceGetHandleByIndex, nvml_index)
        self._name = _str(_call(f"GPU {nvml_index}", n.nvmlDeviceGetName, self._handle))
        self._uuid = _str(_call(f"GPU {nvml_index}", n.nvmlDeviceGetUUID, self._handle))
        try:
            mig_current, _ = n.nvmlDeviceGetMigMode(self._handle)
        except Exception:  # not a MIG-capable GPU
            mig_current = 0
        self.mig_enabled = bool(mig_current)

    @property
    def name(self) -> str:
        return self._name

    @property
    def index(self) -> int:
        return self._index

    @property
    def uuid(self) -> str:
        return self._uuid

    def spec(self) -> dict:
        return {"kind": "nvml", "uuid": self._uuid}

    def _q(self, fn_name: str, *args):
        return _call(f"{self._name} ({self._uuid})", getattr(nvml(), fn_name), self._handle, *args)

    def constraints(self) -> Constraints:
        lo_mw, hi_mw = self._q("nvmlDeviceGetPowerManagementLimitConstraints")
        default_mw = self._q("nvmlDeviceGetPowerManagementDefaultLimit")
        return Constraints(lo_mw / 1e3, hi_mw / 1e3, default_mw / 1e3)

    def limit_w(self) -> float:
        return self._q("nvmlDeviceGetPowerManagementLimit") / 1e3

    def power_w(self) -> float:
        return self._q("nvmlDeviceGetPowerUsage") / 1e3

    def energy_j(self) -> float | None:
        try:
            return self._q("nvmlDeviceGetTotalEnergyConsumption") / 1e3
        except NotSupported:  # pre-Volta: the meter integrates sampled power instead
            return None

    def _write_limit_w(self, watts: float) -> None:
        if self.mig_enabled:
            raise NotSupported(
                f"{self._name} has MIG enabled: its power limit is shared by all "
                "MIG instances, so greenops will not change it"
            )
        self._q("nvmlDeviceSetPowerManagementLimit", int(round(watts * 1e3)))

    def sync(self) -> None:
        try:
            import torch

            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.synchronize()
        except Exception:
            pass


def visible_devices() -> list[NvmlDevice]:
    """The GPUs this process may use, in CUDA_VISIBLE_DEVICES order, indexed from 0."""
    n = nvml()
    count = _call("NVML", n.nvmlDeviceGetCount)
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return [NvmlDevice(i) for i in range(count)]
    uuids = {_str(n.nvmlDeviceGetUUID(n.nvmlDeviceGetHandleByIndex(i))): i for i in range(count)}
    out: list[NvmlDevice] = []
    for entry in [e.strip() for e in env.split(",") if e.strip()]:
        if entry.startswith("MIG-"):
            raise NotSupported(
                f"CUDA_VISIBLE_DEVICES names a MIG instance ({entry}): power "
                "limits belong to the physical GPU shared by all its instances; "
                "greenops does not manage them"
            )
        if entry.lstrip("-").isdigit():
            i = int(entry)
            if i < 0 or i >= count:
                break  # CUDA ignores this entry and every one after it
            out.append(NvmlDevice(i, index=len(out)))
        else:
            match = [
                i
                for u, i in uuids.items()
                if u.startswith(entry)
                or u.removeprefix("GPU-").startswith(entry.removeprefix("GPU-"))
            ]
            if len(match) != 1:
                raise DeviceNotFound(
                    f"CUDA_VISIBLE_DEVICES entry {entry!r} matches {len(match)} GPUs by UUID"
                )
            out.append(NvmlDevice(match[0], index=len(out)))
    return out
