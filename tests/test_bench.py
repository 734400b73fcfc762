"""`greenops bench --quick` end to end on tiny shapes (the JSON's schema, not its timings), and
the GPU check's --dry mode."""

import json
import os
import subprocess
import sys

import pytest

from greenops import _ext, bench, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_quick_writes_table_json_markdown_and_plot(tmp_path, capsys):
    paths = {k: str(tmp_path / f"r.{k}") for k in ("json", "md", "png")}
    rc = cli.main(
        [
            "bench",
            "--quick",
            "--device",
            "cpu",
            "--json",
            paths["json"],
            "--markdown",
            paths["md"],
            "--plot",
            paths["png"],
        ]
    )
    assert rc == 0
    table = capsys.readouterr().out
    assert "### int8" in table and "greenops.int8_mm" in table
    assert "### int4" in table and "greenops.int4_weight_mm" in table
    assert "### bsr" in table and "greenops.bsr_mm" in table

    with open(paths["json"]) as f:
        r = json.load(f)
    assert r["schema"] == bench.SCHEMA
    env = r["environment"]
    assert {"date", "git_sha", "device", "machine", "versions"} <= set(env)
    assert env["device"] == "cpu" and env["versions"]["torch"]
    ceil = r["ceilings"]
    assert {"copy_gbps", "read_gbps", "int8_gops", "bf16_gops", "fp32_gops"} <= set(ceil)
    # hardware peaks: None only for a dtype class this CPU has no instruction for
    assert all(
        v > 0 or (v is None and k.startswith("hw_"))
        for k, v in ceil.items()
        if k.endswith(("gbps", "gops"))
    )
    assert ceil["hw_fp32_gops"] > 0 and ceil["hw_fp32_path"] == "fma"
    for fam in ("int8", "int4", "bsr"):
        shapes = {str(s) for s in bench.shapes_for(fam, "tiny")}
        assert {row["shape"] for row in r["rows"] if row["family"] == fam} == shapes
    want = {
        "int8": {"int_mm+scale", "bf16_matmul", "fp32_matmul"},
        "int4": {"torch_int4"},
        "bsr": {"dense_matmul", "torch_bsr"},
    }
    for row in r["rows"]:
        assert row["ms"] > 0 and row["gbps"] > 0
        assert set(row["speedup"]) >= want[row["family"]]
        assert row["baseline"] == (row["versus"] is None)
        assert row["versus"] is None or row["versus"] in row["speedup"]
        # CPU energy per op: RAPL where readable, else the estimate, and labelled as which
        assert row["energy_j"] > 0 and row["energy_basis"] in ("measured", "estimated")
        m = int(row["shape"].split("-")[0][1:])  # per token: each activation row is one
        assert row["energy_per_token_j"] == row["energy_j"] / m
    ours = {row["impl"] for row in r["rows"] if not row["baseline"]}
    assert {
        "greenops.int8_mm",
        "greenops.int8_weight_mm",
        "greenops.int4_weight_mm",
        "greenops.bsr_mm",
    } <= ours

    noise = r["noise"]  # measured, whatever the outcome: drift of every ceiling, noisy shapes
    measured = {k for k, v in ceil.items() if k.endswith(("gbps", "gops")) and v}
    assert set(noise["ceiling_drift"]) == measured
    assert isinstance(noise["disturbed"], bool) and noise["noisy_sets"] >= 0
    assert all(row["spread"] >= 0 and isinstance(row["noisy"], bool) for row in r["rows"])

    with open(paths["md"]) as f:
        assert f.read().strip() == table.strip()
    with open(paths["png"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not _ext.available(), reason="needs the C++ extension")
def test_hardware_peaks_name_the_instruction_of_each_class():
    from greenops.bench.core import hardware_peaks

    peaks = hardware_peaks(0.01)
    isa = _ext.load().cpu_isa_detected()
    assert peaks["hw_fp32_path"] == "fma" and peaks["hw_fp32_gops"] > 0
    want_int8 = {"avx512_amx": "amx_int8", "avx512_bf16": "vnni", "avx512_vnni": "vnni"}.get(isa)
    assert peaks["hw_int8_path"] == want_int8
    assert (peaks["hw_int8_gops"] is None) == (want_int8 is None)
    if isa == "avx512_amx":
        assert peaks["hw_bf16_path"] == "amx_bf16"
    with pytest.raises(ValueError, match="unknown peak"):
        _ext.load().cpu_peak_gops("fp64", 0.01)


def test_the_int8_gpu_target_shape_is_timed_on_gpus_only():
    target = bench.Shape(8192, 8192, 8192)
    assert target in bench.shapes_for("int8", "llm", "cuda")
    assert target not in bench.shapes_for("int8", "llm", "cpu")
    assert bench.shapes_for("int8", "llm", "cuda")[:-1] == bench.shapes_for("int8", "llm")
    assert bench.shapes_for("bsr", "llm", "cuda") == bench.shapes_for("bsr", "llm")


def test_bench_rejects_unknown_family():
    import pytest

    with pytest.raises(ValueError, match="unknown op family"):
        bench.run(["int3"], "tiny", "cpu")


def test_gpu_check_dry_run_prints_the_plan(tmp_path):
    out = subprocess.run(
        ["bash", os.path.join(ROOT, "bench", "gpu_check.sh"), str(tmp_path), "--dry"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "plan:" in out.stdout and "pytest -m cuda" in out.stdout
    assert "greenops bench --device cuda" in out.stdout
    assert list(tmp_path.iterdir()) == []  # --dry builds and writes nothing


def test_plot_without_matplotlib_stops_before_the_run_with_one_line():
    """--plot without matplotlib: a one-line message naming the extra, before any timing."""
    code = (
        "import sys; sys.modules['matplotlib'] = None; from greenops import cli; "
        "cli.main(['bench', '--quick', '--device', 'cpu', '--plot', 'x.png'])"
    )
    for argv in (code, code.replace("'bench', '--quick', '--device', 'cpu'", "'power', 'profile'")):
        p = subprocess.run(
            [sys.executable, "-c", argv], capture_output=True, text=True, timeout=120
        )
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.strip().startswith("greenops: ") and "--plot needs matplotlib" in p.stderr
        assert "greenops[plot]" in p.stderr and p.stdout == ""


def test_collapsed_samples_are_retried_then_flagged():
    """Repeats that jump between 1 ms and 8 ms (a thread descheduled for scheduler ticks) are
    noise after every retry; steady repeats are not."""
    import itertools
    import time

    from greenops.bench.core import NOISE_SPREAD, Case, time_steady

    calls = itertools.count()
    jumpy = Case(
        "t", "s:jumpy", lambda: time.sleep(0.008 if next(calls) % 2 else 0.001), 0, 0, "", True
    )
    steady = Case("t", "s:steady", lambda: time.sleep(0.005), 0, 0, "", False, "jumpy")
    t, spreads, noisy = time_steady([jumpy, steady], "cpu", budget_s=0.1, retries=2)
    assert noisy and spreads["s:jumpy"] > NOISE_SPREAD and spreads["s:steady"] < NOISE_SPREAD
    assert next(calls) >= 3 * 3  # three attempts of at least three repeats each
    t, spreads, noisy = time_steady([steady], "cpu", budget_s=0.1)
    assert not noisy and 0.004 < t["s:steady"] < 0.05


def test_markdown_prints_no_ratio_of_a_noisy_shape_and_names_a_disturbed_run():
    from greenops.bench.core import markdown

    env = {
        "date": "d",
        "git_sha": None,
        "device": "cpu",
        "machine": {"gpu": None, "processor": "p", "cpu_threads": 2, "cpu_isa": "avx2"},
        "versions": {"torch": "t", "triton": "t"},
    }
    ceil = {k: 1.0 for k in ("copy_gbps", "read_gbps", "int8_gops", "bf16_gops", "fp32_gops")}
    ceil.update(matmul_size=8, copy_bytes=1 << 20, read_bytes=1 << 20)
    row = {
        "family": "int8",
        "shape": "M1-N8-K8",
        "impl": "greenops.int8_mm",
        "baseline": False,
        "ms": 0.01,
        "gops": 1.0,
        "gbps": 1.0,
        "frac_peak": 0.5,
        "frac_bw": 0.5,
        "speedup": {"fp32_matmul": 123.45},
        "versus": "fp32_matmul",
        "energy_j": None,
        "spread": 0.9,
        "noisy": True,
    }
    noise = {"ceiling_drift": {"fp32_gops": -0.4}, "disturbed": True, "noisy_sets": 1}
    md = markdown({"environment": env, "ceilings": ceil, "noise": noise, "rows": [row]})
    assert "123.45" not in md and "| noisy |" in md
    assert "DISTURBED RUN" in md and "fp32_gops -40%" in md
    md = markdown({"environment": env, "ceilings": ceil, "rows": [dict(row, noisy=False)]})
    assert "123.45" in md and "DISTURBED" not in md
