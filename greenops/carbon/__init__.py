"""greenops.carbon: grid carbon intensity (gCO2eq/kWh) from live APIs, recorded traces or a
constant, behind one interface. See docs/carbon.md."""

from .http import FetchError
from .sources import (
    Constant,
    ElectricityMaps,
    Point,
    Source,
    Trace,
    UKGrid,
    WattTime,
    load_trace,
    parse_time,
)

__all__ = [
    "Constant",
    "ElectricityMaps",
    "FetchError",
    "Point",
    "Source",
    "Trace",
    "UKGrid",
    "WattTime",
    "load_trace",
    "parse_time",
]
