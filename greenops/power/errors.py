"""Typed errors of the power runtime. Each says what happened and what to do."""

from __future__ import annotations


class PowerError(RuntimeError):
    """Base class of every power-runtime error."""


class NoPermission(PowerError):
    """Setting a power limit needs privileges this process lacks."""

    HOW = (
        "setting a GPU power limit needs root or the CAP_SYS_ADMIN capability (for example "
        "`sudo setcap cap_sys_admin+ep $(readlink -f $(which python))`), or a privileged helper "
        "that sets it for you; without it, use mode='software' (a governor that paces the work) "
        "or mode='auto' (falls back to it)"
    )


class NotSupported(PowerError):
    """The device or driver does not support this query or setting."""


class GpuLost(PowerError):
    """The GPU fell off the bus or stopped answering; its state is unknown."""


class InvalidLimit(PowerError, ValueError):
    """A requested limit lies outside the device's constraints (never silently clamped)."""


class DeviceNotFound(PowerError, LookupError):
    """No such device (index, UUID, or none visible at all)."""
