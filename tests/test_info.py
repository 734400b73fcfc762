"""greenops.info(), the CLI, and the extension loader's errors."""

import json
import subprocess
import sys
import types

import pytest

import greenops
from greenops import _ext, cli


def test_info_reports_build_and_backends():
    d = greenops.info()
    assert d["greenops"] == greenops.__version__
    ext = d["extension"]
    assert ext["loaded"] and ext["error"] is None
    assert ext["cpu_isa"] in ("avx512_amx", "avx512_bf16", "avx512_vnni", "avx2", "scalar")
    assert isinstance(ext["cuda_built"], bool)
    assert set(d["backends"]) == set(greenops.ops.OPS)
    # Plain torch ops on CUDA: int4 quantize/dequantize (once per weight).
    torch_ops = {"quantize_int4", "dequantize_int4"}
    for op, per_device in d["backends"].items():
        assert per_device["cpu"] == "cpp", op
        assert per_device["cuda"] == ("torch" if op in torch_ops else "triton"), op
    json.dumps(d)  # JSON-ready


def test_info_follows_the_isa_cap():
    with greenops.use_cpu_isa("scalar"):
        assert greenops.info()["extension"]["cpu_isa"] == "scalar"
    assert (
        greenops.info()["extension"]["cpu_isa"] == greenops.info()["extension"]["cpu_isa_detected"]
    )


def test_cli_info_text_and_json(capsys):
    assert cli.main(["info"]) == 0
    text = capsys.readouterr().out
    assert "CPU ISA" in text and "int8_mm" in text
    assert cli.main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["greenops"] == greenops.__version__


def test_cli_entry_point_runs_as_module():
    out = subprocess.run(
        [sys.executable, "-m", "greenops", "info"], capture_output=True, text=True, check=True
    ).stdout
    assert f"greenops {greenops.__version__}" in out


def test_demo_runs_on_a_small_matrix(capsys):
    assert cli.main(["demo", "--size", "256", "--tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert "greenops W8A8" in out and "SQNR" in out


@pytest.fixture
def fresh_loader(monkeypatch):
    monkeypatch.setattr(_ext, "_module", None)
    monkeypatch.setattr(_ext, "_error", None)
    return monkeypatch


def _fake_ext(version, torch_version):
    return types.SimpleNamespace(__version__=version, torch_version=torch_version)


def test_stale_extension_says_how_to_rebuild(fresh_loader):
    fresh_loader.setattr(_ext.importlib, "import_module", lambda name: _fake_ext("0.0.1", "x"))
    with pytest.raises(greenops.ExtensionError, match="stale.*pip install --no-build-isolation"):
        _ext.load()
    assert not _ext.available()


def test_extension_built_for_another_torch(fresh_loader):
    fake = _fake_ext(greenops.__version__, "1.0.0")
    fresh_loader.setattr(_ext.importlib, "import_module", lambda name: fake)
    with pytest.raises(greenops.ExtensionError, match="built against torch 1.0.0"):
        _ext.load()


def test_missing_extension_makes_ops_raise(fresh_loader):
    def missing(name):
        raise ImportError("No module named 'greenops._C'")

    fresh_loader.setattr(_ext.importlib, "import_module", missing)
    import torch

    with pytest.raises(greenops.ExtensionError, match="could not be loaded.*rebuild"):
        greenops.quantize_int8(torch.randn(2, 4))


def test_triton_autotune_env_switch():
    import os
    import subprocess
    import sys

    code = "from greenops.ops import _backend; print(_backend._autotune)"
    for value, want in (("0", "False"), ("1", "True")):
        env = {**os.environ, "GREENOPS_TRITON_AUTOTUNE": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.stdout.strip() == want, out.stderr
