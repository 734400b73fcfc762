"""A faithful in-process fake of the pynvml calls greenops uses, for tests: NVML's units (mW,
mJ), its constraints, its error codes (as pynvml.NVMLError with .value) and root-only writes.

    fake = FakeNvml(gpus=[FakeGpu("NVIDIA H100", "GPU-1234...", 200_000, 700_000)])
    greenops.power.nvml.use_nvml(fake)
"""

from __future__ import annotations

import dataclasses

NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNINITIALIZED = 1


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclasses.dataclass
class FakeGpu:
    name: str
    uuid: str
    min_mw: int
    max_mw: int
    default_mw: int | None = None
    limit_mw: int | None = None
    power_mw: int = 60_000
    energy_mj: int = 0
    has_energy_counter: bool = True
    mig: bool = False
    lost: bool = False
    fail_writes_with: int | None = None  # an NVML error code every limit write raises

    def __post_init__(self) -> None:
        self.default_mw = self.default_mw or self.max_mw
        self.limit_mw = self.limit_mw or self.default_mw


class FakeNvml:
    """Module-like: pass an instance wherever pynvml would go. `root` decides whether limit
    writes are permitted; `writes` records every successful one."""

    NVMLError = NVMLError
    NVML_ERROR_INVALID_ARGUMENT = NVML_ERROR_INVALID_ARGUMENT
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST

    def __init__(self, gpus: list[FakeGpu], root: bool = True) -> None:
        self.gpus = gpus
        self.root = root
        self.initialized = False
        self.writes: list[tuple[str, int]] = []

    def _gpu(self, handle: int) -> FakeGpu:
        if not self.initialized:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        g = self.gpus[handle]
        if g.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return g

    def nvmlInit(self) -> None:
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self.initialized = False

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        if not 0 <= i < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return i

    def nvmlDeviceGetName(self, h: int) -> str:
        return self._gpu(h).name

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return self._gpu(h).uuid

    def nvmlDeviceGetMigMode(self, h: int) -> tuple[int, int]:
        return (int(self._gpu(h).mig), int(self._gpu(h).mig))

    def nvmlDeviceGetPowerManagementLimitConstraints(self, h: int) -> tuple[int, int]:
        g = self._gpu(h)
        return g.min_mw, g.max_mw

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h: int) -> int:
        return self._gpu(h).default_mw

    def nvmlDeviceGetPowerManagementLimit(self, h: int) -> int:
        return self._gpu(h).limit_mw

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return self._gpu(h).power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        g = self._gpu(h)
        if not g.has_energy_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return g.energy_mj

    def nvmlDeviceSetPowerManagementLimit(self, h: int, limit_mw: int) -> None:
        g = self._gpu(h)
        if not isinstance(limit_mw, int):
            raise TypeError("NVML takes an integer limit in mW")
        if g.fail_writes_with is not None:
            raise NVMLError(g.fail_writes_with)
        if not self.root:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        if not g.min_mw <= limit_mw <= g.max_mw:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        g.limit_mw = limit_mw
        self.writes.append((g.uuid, limit_mw))
