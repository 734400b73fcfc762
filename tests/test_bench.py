"""`greenops bench --quick` end to end on tiny shapes (the JSON's schema, not its timings), and
the GPU check's --dry mode."""

import json
import os
import subprocess
import sys

from greenops import bench, cli

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
    assert {"copy_gbps", "int8_gops", "bf16_gops", "fp32_gops"} <= set(r["ceilings"])
    assert all(v > 0 for k, v in r["ceilings"].items() if k.endswith(("gbps", "gops")))
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
    ours = {row["impl"] for row in r["rows"] if not row["baseline"]}
    assert {
        "greenops.int8_mm",
        "greenops.int8_weight_mm",
        "greenops.int4_weight_mm",
        "greenops.bsr_mm",
    } <= ours

    with open(paths["md"]) as f:
        assert f.read().strip() == table.strip()
    with open(paths["png"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


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
