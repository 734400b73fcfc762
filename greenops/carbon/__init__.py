"""greenops.carbon: grid carbon intensity (gCO2eq/kWh) from live APIs, recorded traces or a
constant, behind one interface; the deadline planner, replays, and the live controller
(`carbon_aware`) that caps devices through greenops.power. See docs/carbon.md."""

from .controller import carbon_aware, job_curve
from .curve import Curve
from .forecast import Forecaster, Forecasting, seasonal_forecast
from .http import FetchError
from .planner import InfeasibleDeadline, Outcome, Plan, Segment, plan, simulate
from .policy import Reactive
from .replanner import Replanner
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
    "Forecaster",
    "Forecasting",
    "seasonal_forecast",
    "carbon_aware",
    "job_curve",
    "InfeasibleDeadline",
    "Outcome",
    "Plan",
    "Reactive",
    "Replanner",
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
