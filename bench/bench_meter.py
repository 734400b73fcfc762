"""EnergyMeter overhead: seconds per begin/end pair (what a window costs the measured work), on
the fake NVML and on the simulated device (a JSON state file under a lock per reading).

    python bench/bench_meter.py [--pairs 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from greenops import power
from greenops.power import nvml
from greenops.power.fake_nvml import FakeGpu, FakeNvml


def per_window_s(devs, pairs: int) -> float:
    meter = power.EnergyMeter(devs)
    for _ in range(pairs):
        meter.begin("s")
        meter.end("s")
    return meter.overhead_s / pairs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2000)
    a = ap.parse_args(argv)
    nvml.use_nvml(FakeNvml([FakeGpu("NVIDIA H100 80GB HBM3", "GPU-0", 200_000, 700_000)]))
    fake = per_window_s([nvml.visible_devices()[0]], a.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        sim = power.SimulatedDevice("v100-resnet50", state_path=os.path.join(tmp, "s.json"))
        simulated = per_window_s([sim], a.pairs)
    for name, s in (("fake NVML", fake), ("simulated V100", simulated)):
        print(f"{name:<16} {s * 1e6:8.1f} us per begin/end pair ({s / 0.010:.2%} of a 10 ms step)")
    return 0


def test_bench_meter_smoke():
    assert main(["--pairs", "20"]) == 0


if __name__ == "__main__":
    sys.exit(main())
