"""greenops.power: measure energy and control GPU power limits while work runs.

Devices: NVML GPUs, or simulated ones (GREENOPS_SIMULATE=<profile>) modelled from real
power-limit sweeps. GREENOPS_POWER_DRY_RUN=1 logs and skips every limit write. See
docs/power.md.
"""

from . import distributed
from .caps import active_limits, cap, restore_stale
from .carbon_aware import carbon_aware
from .device import Constraints, Device, dry_run
from .errors import DeviceNotFound, GpuLost, InvalidLimit, NoPermission, NotSupported, PowerError
from .governor import Governor
from .meter import EnergyMeter, Measurement
from .profiling import ProfileResult, ProfileRow, default_limits, profile
from .registry import device_from_spec, devices
from .simulated import PowerProfile, SimulatedDevice, bundled_profiles, load_profile

__all__ = [
    "Constraints",
    "Device",
    "DeviceNotFound",
    "EnergyMeter",
    "Governor",
    "GpuLost",
    "InvalidLimit",
    "Measurement",
    "NoPermission",
    "NotSupported",
    "PowerError",
    "PowerProfile",
    "ProfileResult",
    "ProfileRow",
    "SimulatedDevice",
    "active_limits",
    "bundled_profiles",
    "cap",
    "carbon_aware",
    "default_limits",
    "device_from_spec",
    "devices",
    "distributed",
    "dry_run",
    "load_profile",
    "profile",
    "restore_stale",
]
