"""`greenops carbon now|forecast`."""

from __future__ import annotations

import json

from . import sources

SOURCES = ("electricitymaps", "watttime", "uk", "trace", "constant")


def add_parser(sub) -> None:
    p = sub.add_parser("carbon", help="grid carbon intensity now, or its forecast")
    p.add_argument("what", choices=["now", "forecast"])
    p.add_argument("--source", choices=SOURCES, required=True)
    add_source_options(p)
    p.add_argument("--hours", type=float, default=24, help="forecast horizon (default 24)")
    p.add_argument("--json", action="store_true")


def add_source_options(p) -> None:
    """The options that pick a source's zone/region/trace (shared with `greenops run`)."""
    p.add_argument("--zone", help="Electricity Maps zone (e.g. DE)")
    p.add_argument("--lat", type=float)
    p.add_argument("--lon", type=float)
    p.add_argument("--region", help="WattTime region (e.g. CAISO_NORTH) or UK region id 1-17")
    p.add_argument("--postcode", help="UK outward postcode (e.g. RG10)")
    p.add_argument("--trace", help="CSV/JSON intensity trace (source trace)")
    p.add_argument("--shift", action="store_true", help="replay the trace as if it started now")
    p.add_argument("--value", type=float, help="g/kWh (source constant)")
    p.add_argument("--base-url", help="API base URL (a proxy, a mirror, a test server)")


def source_from(
    name: str,
    zone=None,
    lat=None,
    lon=None,
    region=None,
    postcode=None,
    trace=None,
    shift=False,
    value=None,
    base_url=None,
) -> sources.Source:
    """Builds a source from command-line style options; tokens come from the environment."""
    if name == "electricitymaps":
        return sources.ElectricityMaps(zone=zone, lat=lat, lon=lon, base_url=base_url)
    if name == "watttime":
        if not region:
            raise SystemExit("greenops carbon: --source watttime needs --region")
        return sources.WattTime(region, base_url=base_url)
    if name == "uk":
        return sources.UKGrid(
            region=int(region) if region else None, postcode=postcode, base_url=base_url
        )
    if name == "trace":
        if not trace:
            raise SystemExit("greenops carbon: --source trace needs --trace FILE")
        return sources.Trace(trace, shift_to_now=shift)
    if value is None:
        raise SystemExit("greenops carbon: --source constant needs --value G_PER_KWH")
    return sources.Constant(value)


def source_from_args(name: str, args) -> sources.Source:
    return source_from(
        name,
        args.zone,
        args.lat,
        args.lon,
        args.region,
        args.postcode,
        args.trace,
        args.shift,
        args.value,
        args.base_url,
    )


def main(args) -> int:
    """`greenops carbon now|forecast`; a bad option or file is one line (exit 2)."""
    import os
    import sys
    import warnings

    try:
        src = source_from_args(args.source, args)
    except (ValueError, OSError) as e:
        if os.environ.get("GREENOPS_DEBUG"):
            raise
        print(f"greenops carbon: {e}", file=sys.stderr)
        return 2
    if args.what == "now":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the reason is printed below, once
            v = src.current()
        if args.json:
            print(
                json.dumps(
                    {
                        "source": src.name,
                        "intensity_g_per_kwh": v,
                        "error": src.last_error if v is None else None,
                    }
                )
            )
        else:
            why = f" ({src.last_error})" if src.last_error else ""
            print(
                f"{src.name}: " + (f"{v:.1f} gCO2eq/kWh" if v is not None else f"unavailable{why}")
            )
        return 0 if v is not None else 1
    pts = src.forecast(args.hours)
    if args.json:
        print(
            json.dumps(
                {
                    "source": src.name,
                    "forecast": [
                        {"time": p.time.isoformat(), "intensity_g_per_kwh": p.intensity_g_per_kwh}
                        for p in pts
                    ],
                }
            )
        )
    else:
        for p in pts:
            print(f"{p.time.isoformat()}  {p.intensity_g_per_kwh:8.1f} gCO2eq/kWh")
        if not pts:
            print(f"{src.name}: no forecast available")
    return 0 if pts else 1
