"""'auto' on CUDA tensors where both a Triton and a CUDA C++ kernel exist: the measured table
(greenops/ops/cuda_auto.json) picks per M, the C++ kernel only where it takes the arguments,
and scripts/cuda_auto_table.py writes the table from a benchmark run. CPU-only: the dispatch
logic is plain Python over stand-in impls."""

import importlib.util
import json
import os

import pytest

from greenops.ops import _backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def table(monkeypatch):
    doc = {
        "ops": {
            "int8_mm": [
                {"max_m": 16, "backend": "cuda"},
                {"max_m": 256, "backend": "triton"},
                {"max_m": 4096, "backend": "cuda"},
            ]
        }
    }
    monkeypatch.setattr(_backend, "_auto_table", doc)
    return doc


def test_the_bundled_table_is_valid_and_defaults_to_triton():
    with open(os.path.join(ROOT, "greenops", "ops", "cuda_auto.json")) as f:
        doc = json.load(f)
    for rules in doc["ops"].values():
        assert [r["max_m"] for r in rules] == sorted(r["max_m"] for r in rules)
        assert {r["backend"] for r in rules} <= {"cuda", "triton"}
    assert _backend.measured_backend("no_such_op", 1) == "triton"


def test_measured_backend_follows_the_rules(table):
    got = [_backend.measured_backend("int8_mm", m) for m in (1, 16, 17, 256, 257, 4096, 4097)]
    assert got == ["cuda", "cuda", "triton", "triton", "cuda", "cuda", "triton"]


def test_dispatch_falls_back_to_triton_where_the_kernel_cannot_take_the_call(table):
    calls = []
    impls = {
        "triton": lambda m, ok: calls.append("triton"),
        "cuda": lambda m, ok: calls.append("cuda"),
    }
    fn = _backend.measured_dispatch("int8_mm", impls, lambda m, ok: m, lambda m, ok: ok)
    fn(8, True)
    fn(8, False)
    fn(100, True)
    assert calls == ["cuda", "triton", "triton"]


def test_table_script_picks_the_faster_kernel_per_m(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "cuda_auto_table", os.path.join(ROOT, "scripts", "cuda_auto_table.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def row(shape, impl, ms):
        return {"family": "int8", "shape": shape, "impl": impl, "ms": ms}

    tri, cpp = mod.PAIRS["int8_mm"]
    rows = [
        row("M1-N4096-K4096", tri, 2.0),
        row("M1-N4096-K4096", cpp, 1.0),
        row("M1-N8192-K8192", tri, 5.0),
        row("M1-N8192-K8192", cpp, 4.0),
        row("M16-N4096-K4096", tri, 2.0),
        row("M16-N4096-K4096", cpp, 1.5),
        row("M256-N4096-K4096", tri, 1.0),
        row("M256-N4096-K4096", cpp, 1.2),
        row("M4096-N4096-K4096", tri, 9.0),
        row("M4096-N4096-K4096", cpp, 9.0),  # tie: triton
    ]
    results = {
        "environment": {"machine": {"gpu": "H100"}, "date": "d", "git_sha": "x"},
        "rows": rows,
    }
    src, out = tmp_path / "r.json", tmp_path / "table.json"
    src.write_text(json.dumps(results))
    out.write_text(json.dumps({"about": "", "source": "", "ops": {}}))
    assert mod.main([str(src), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["ops"] == {
        "int8_mm": [{"max_m": 16, "backend": "cuda"}, {"max_m": 4096, "backend": "triton"}]
    }
    assert "H100" in doc["source"]
