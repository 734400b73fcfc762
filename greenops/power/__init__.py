"""greenops.power: measure energy and control power limits while work runs.

Devices: NVML GPUs, or simulated ones (GREENOPS_SIMULATE=<profile>) modelled from real
power-limit sweeps; CPU packages and DRAM through RAPL (Linux powercap), and an EstimatedCpu
where no counter can be read. GREENOPS_POWER_DRY_RUN=1 logs and skips every limit write. See
docs/power.md.
"""

from . import distributed
from .caps import active_limits, cap, restore_stale
from .device import Constraints, Device, dry_run
from .errors import DeviceNotFound, GpuLost, InvalidLimit, NoPermission, NotSupported, PowerError
from .estimate import EstimatedCpu
from .governor import Governor
from .meter import EnergyMeter, Measurement
from .metrics import MetricsServer, serve_metrics
from .profiling import ProfileResult, ProfileRow, default_limits, profile
from .rapl import RaplZone
from .registry import cpus, device_from_spec, devices, gpus
from .simulated import PowerProfile, SimulatedDevice, bundled_profiles, load_profile

__all__ = [
    "Constraints",
    "Device",
    "DeviceNotFound",
    "EnergyMeter",
    "EstimatedCpu",
    "Governor",
    "GpuLost",
    "InvalidLimit",
    "Measurement",
    "MetricsServer",
    "NoPermission",
    "NotSupported",
    "PowerError",
    "PowerProfile",
    "RaplZone",
    "ProfileResult",
    "ProfileRow",
    "SimulatedDevice",
    "active_limits",
    "bundled_profiles",
    "cap",
    "cpus",
    "default_limits",
    "device_from_spec",
    "devices",
    "distributed",
    "gpus",
    "dry_run",
    "load_profile",
    "profile",
    "restore_stale",
    "serve_metrics",
]
