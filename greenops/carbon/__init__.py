"""greenops.carbon: grid carbon intensity (gCO2eq/kWh) from live APIs, recorded traces or a
constant, behind one interface. See docs/carbon.md."""

from .curve import Curve
from .http import FetchError
from .planner import InfeasibleDeadline, Outcome, Plan, Segment, plan, simulate
from .policy import Reactive
from .sources import (
    Constant,
    ElectricityMaps,
    Point,
    Source,
    Trace,
    UKGrid,
    WattTime,
    bundled_trace,
    load_trace,
    parse_time,
)

__all__ = [
    "Constant",
    "Curve",
    "InfeasibleDeadline",
    "Outcome",
    "Plan",
    "Reactive",
    "Segment",
    "plan",
    "simulate",
    "ElectricityMaps",
    "FetchError",
    "Point",
    "Source",
    "Trace",
    "UKGrid",
    "WattTime",
    "bundled_trace",
    "load_trace",
    "parse_time",
]
