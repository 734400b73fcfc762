"""The built-in forecaster (greenops.carbon.seasonal_forecast) against persistence on the
bundled traces: mean absolute % error at 1, 6 and 24 h, forecasting every 1.5 h from day 4 on
with up to 7 days of history. Prints the table in docs/carbon.md.

    python bench/bench_forecast.py
"""

from greenops.carbon import Trace, seasonal_forecast

HORIZONS = (1, 6, 24)


def mape(points, blend_hours):
    errs = {h: [] for h in HORIZONS}
    step_h = (points[1].time - points[0].time).total_seconds() / 3600
    per_day = round(24 / step_h)
    for i in range(3 * per_day, len(points) - per_day, 3):
        f = seasonal_forecast(points[max(0, i - 7 * per_day) : i], 24, blend_hours)
        for h in HORIZONS:
            k = round(h / step_h) - 1
            actual = points[i + k].intensity_g_per_kwh
            errs[h].append(abs(f[k].intensity_g_per_kwh - actual) / actual)
    return {h: 100 * sum(v) / len(v) for h, v in errs.items()}


def main() -> None:
    print("| trace | " + " | ".join(f"{h} h" for h in HORIZONS) + " |")
    print("|---|" + "---:|" * len(HORIZONS))
    for name in ("gb-2020-01", "fr-2020-01"):
        pts = Trace(name).points
        for label, tau in (("built-in", 6.0), ("persistence", 1e12)):
            e = mape(pts, tau)
            cells = " | ".join(f"{e[h]:.1f}%" for h in HORIZONS)
            print(f"| {name[:2].upper()}, {label} | {cells} |")


if __name__ == "__main__":
    main()
