"""`greenops demo`: quantize and sparsify a weight matrix and time the kernels against float;
train a small model five ways (float, QAT int8/int4, PTQ int4, block-sparse); energy and carbon
on the GPU or, without one, on the simulated device."""

from __future__ import annotations

import os

import torch

from . import ops
from .bench.core import NOISE_SPREAD, Case, time_steady
from .sparse import BlockSparseWeight, bsr_mm


def _sqnr_db(ref: torch.Tensor, approx: torch.Tensor) -> float:
    ref = ref.double()
    return (20 * torch.log10(ref.norm() / (ref - approx.double()).norm())).item()


def _power(steps: int = 100) -> None:
    """Energy: measured on a real GPU (read-only) where NVML sees one; otherwise the simulated
    V100 (a model fitted to a measured ResNet-50 power-limit sweep): profile the limits, pick
    the least energy within 10% slowdown, run the same work uncapped and capped."""
    import tempfile

    from . import power
    from .power import nvml

    if nvml.available() and not os.environ.get("GREENOPS_SIMULATE"):
        devs = power.devices()
        x = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
        meter = power.EnergyMeter(devs)
        with meter.window("bf16 matmul x200") as m:
            for _ in range(200):
                x @ x
        print(f"\npower: {m}  (measured by NVML on {devs[0].name}; limits left unchanged)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        dev = power.SimulatedDevice("v100-resnet50", state_path=os.path.join(tmp, "sim.json"))
        print(f"\npower: no GPU here, so on {dev.name}: every figure below is SIMULATED")
        r = power.profile(dev.run_step, devices=[dev], steps_per_limit=5, progress=False)
        print("\n".join("  " + line for line in r.table().splitlines()))
        choice = r.within_slowdown(0.10)
        meter = power.EnergyMeter([dev])
        with meter.window("uncapped") as full:
            dev.run_step(steps)
        with power.cap(choice.limit_w, [dev], mode="hardware"):
            with meter.window("capped") as capped:
                dev.run_step(steps)
        print(
            f"  {steps} training steps uncapped: {full.energy_j / 1e3:.2f} kJ in "
            f"{full.time_s:.1f} s; at {choice.limit_w:g} W (least energy within 10% slowdown): "
            f"{capped.energy_j / 1e3:.2f} kJ in {capped.time_s:.1f} s -> "
            f"{1 - capped.energy_j / full.energy_j:.1%} less energy, "
            f"{capped.time_s / full.time_s - 1:.1%} more time (SIMULATED)"
        )
        print(f"  at 400 gCO2/kWh that is {full.gco2(400):.2f} g vs {capped.gco2(400):.2f} g CO2")


def _carbon(days: float = 2.0, slack: float = 1.05) -> None:
    """Carbon: a job of `days` of uncapped work on the simulated V100 (ResNet-50 sweep), replayed
    over the bundled GB grid trace (January 2020): uncapped, reactive, and planned to finish
    within `slack` x the uncapped time."""
    import datetime as dt

    from . import carbon
    from .carbon.replay import replay

    trace = carbon.bundled_trace("gb-2020-01")
    pts = carbon.load_trace(trace)
    curve = carbon.Curve.of("v100-resnet50")
    work = days * 86400 / curve.at(curve.fastest_w)[0]
    p = carbon.plan(curve, pts, work, dt.timedelta(days=days * slack))
    mean = sum(x.intensity_g_per_kwh for x in pts) / len(pts)
    runs = [
        replay("v100-resnet50", trace, work, curve.fastest_w, name="uncapped"),
        replay("v100-resnet50", trace, work, carbon.Reactive(0.5, mean), name="reactive"),
        replay("v100-resnet50", trace, work, p, name=f"planned (deadline {slack:g}x)"),
    ]
    print(
        f"\ncarbon: a {days:g}-day job replayed over the GB grid, {pts[0].time:%Y-%m-%d} "
        "(SIMULATED V100, real intensity trace):"
    )
    for r in runs:
        q = r.ratios(runs[0])
        print(
            f"  {r.name:<28} {r.time_s / 3600:6.1f} h {r.energy_j / 3.6e6:6.2f} kWh "
            f"{r.gco2_eq / 1e3:6.3f} kgCO2eq   time {q['time']:.3f}x  carbon {q['carbon']:.3f}x"
        )


def _training(steps: int) -> None:
    from . import train_demo

    print(
        f"\ntraining: an MLP (64-1024-1024-10) on a Gaussian-mixture task, {steps} float steps, "
        f"then {steps // 2} fine-tune steps per variant:"
    )
    rows, label = train_demo.compare(steps=steps, finetune=steps // 2)
    print("\n".join("  " + line for line in train_demo.format_rows(rows, label).splitlines()))


def run(size: int = 4096, tokens: int = 16, train_steps: int = 300) -> int:
    torch.manual_seed(0)
    N = K = size
    device = "cuda" if torch.cuda.is_available() else "cpu"
    w = torch.randn(N, K, device=device)
    x = torch.randn(tokens, K, device=device)
    w_q, w_scale = ops.quantize_int8(w)  # per output channel
    print(
        f"\nweight {N}x{K}: {w.numel() * 4 / 2**20:.0f} MiB fp32 -> "
        f"{w_q.numel() / 2**20:.0f} MiB int8 + {w_scale.numel() * 4 / 2**10:.0f} KiB scales"
    )

    packed, s4, z4 = ops.quantize_int4(w, 128)  # group-wise, asymmetric
    sparse = BlockSparseWeight.from_dense(w, (32, 32), sparsity=0.75)  # block L2 magnitude
    print(
        f"  -> {packed.numel() / 2**20:.0f} MiB int4 + {(s4.numel() + z4.numel()) * 4 / 2**20:.1f}"
        f" MiB scales/zeros (g128); 75% block-sparse 32x32: "
        f"{sparse.values.numel() * 4 / 2**20:.0f} MiB of blocks"
    )

    def w8a8():
        a_q, a_scale = ops.quantize_int8(x)  # per token, dynamic
        return ops.int8_mm(a_q, a_scale, w_q, w_scale)

    ref = x.double() @ w.double().T
    pruned_ref = x.double() @ sparse.to_dense().double().T
    rows = [
        ("fp32 torch.matmul", lambda: x @ w.T, ref),
        ("greenops W8A8 (quantize_int8 + int8_mm)", w8a8, ref),
        ("greenops W8A16 (int8_weight_mm)", lambda: ops.int8_weight_mm(x, w_q, w_scale), ref),
        (
            "greenops W4A16 g128 (int4_weight_mm)",
            lambda: ops.int4_weight_mm(x, packed, s4, z4, 128),
            ref,
        ),
        ("greenops 75% block-sparse (bsr_mm) *", lambda: bsr_mm(x, sparse), pruned_ref),
    ]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    print(
        f"activations {tokens}x{K} on {device} ({torch.get_num_threads()} threads); "
        "median of repeated runs:"
    )
    # all rows round-robin (drift hits fp32 and ours alike), retried while the repeats spread
    cases = [
        Case("demo", name, lambda fn=fn: (fn(), sync()), 0, 0, "", i == 0)
        for i, (name, fn, _) in enumerate(rows)
    ]
    t, spread, _ = time_steady(cases, device, budget_s=1.0 * len(cases))
    base = rows[0][0]
    noisy = False
    for name, fn, want in rows:
        ms = t[name] * 1e3
        sqnr = _sqnr_db(want, fn())
        steady = max(spread[name], spread[base]) <= NOISE_SPREAD
        noisy |= not steady
        ratio = f"{t[base] / t[name]:6.2f}x" if steady else "  noisy"
        print(f"  {name:<42} {ms:8.3f} ms  {ratio} vs fp32   SQNR {sqnr:5.1f} dB")
    print("  * SQNR against the pruned weight's exact product: pruning changes the function")
    if noisy:
        print(
            f"  (noisy: repeats spread beyond {NOISE_SPREAD:.0%} of the median even after "
            "retries, so no ratio is printed; something else is using this machine's cores)"
        )
    if train_steps:
        _training(train_steps)
    _power()
    _carbon()
    return 0
