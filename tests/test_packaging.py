"""The wheel as a user gets it: built quietly (`python -m build --wheel --no-isolation`), with
metadata that agrees with the binary (torch pinned to the release _C was built against, triton
and matplotlib extras, the license shipped), installed into a fresh venv and run from outside
the source tree; a build without torch stops with the fix; a checkout without a build says
that it shadows the installed package."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = torch.__version__.split("+")[0]

pytest.importorskip("build", reason="the wheel test needs `build` (scripts/setup.sh installs it)")


def _run(args, cwd, **kw):
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=1800, **kw)
    assert p.returncode == 0, f"{args} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    p = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out], ROOT)
    log = p.stdout + p.stderr
    # setuptools' banners (license table, data folders as undeclared packages) are gone
    for banner in ("SetuptoolsDeprecationWarning", "Package would be ignored", "_Warning"):
        assert banner not in log, banner
    (whl,) = out.glob("greenops-*.whl")
    return whl


def test_wheel_metadata_agrees_with_the_binary(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        text = z.read(meta).decode()
    requires = [
        line.split(":", 1)[1].strip() for line in text.splitlines() if "Requires-Dist" in line
    ]
    plain = [r for r in requires if "extra ==" not in r]
    assert f"torch=={RELEASE}" in plain  # exactly the torch _C was built against
    assert not any(r.startswith(("triton", "matplotlib")) for r in plain), plain
    assert any(r.startswith("triton") and 'extra == "triton"' in r for r in requires)
    assert any(r.startswith("matplotlib") and 'extra == "plot"' in r for r in requires)
    assert "License-Expression: Apache-2.0" in text
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    for data in (
        "greenops/power/cpu_tdp.csv",
        "greenops/kernels/__init__.py",
        "greenops/ops/cuda_auto.json",
    ):
        assert data in names, data
    assert any(n.startswith("greenops/_C.") and n.endswith(".so") for n in names)
    assert any(n.startswith("greenops/carbon/traces/") and n.endswith(".csv") for n in names)
    assert any(n.startswith("greenops/power/profiles/") and n.endswith(".csv") for n in names)


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh venv that sees this environment's torch and numpy (a .pth line: nested .pth
    files, such as the checkout's editable install, are not processed) and the wheel."""
    d = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", d / "env"], d)
    py = d / "env" / "bin" / "python"
    site = _run([py, "-c", "import site; print(site.getsitepackages()[0])"], d).stdout.strip()
    deps = os.path.dirname(os.path.dirname(torch.__file__))
    with open(os.path.join(site, "deps.pth"), "w") as f:
        f.write(deps + "\n")
    pip = [sys.executable, "-m", "pip", "--python", py, "install", "--quiet"]
    _run(pip + ["--no-deps", "--no-index", wheel], d)
    return py, d


def test_installed_wheel_runs_an_op_outside_the_tree(venv):
    py, d = venv
    code = textwrap.dedent(
        """
        import greenops, torch
        from greenops.ops import int8
        print(greenops.__file__)
        x, w = torch.randn(5, 64), torch.randn(32, 64)
        wq, ws = int8.quantize_int8(w)
        y = int8.int8_weight_mm(x, wq, ws)
        ref = x @ (wq.float() * ws[:, None]).T
        torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)
        print("ok", greenops._ext.load().__file__)
        """
    )
    out = _run([py, "-c", code], d).stdout.split()
    assert out[0].startswith(str(d)) and out[1] == "ok" and out[2].startswith(str(d))
    cli = json.loads(_run([d / "env" / "bin" / "greenops", "info", "--json"], d).stdout)
    assert cli["extension"]["loaded"] and cli["extension"]["built_against_torch"] == RELEASE


def test_a_checkout_without_a_build_says_it_shadows_the_installed_package(venv):
    py, d = venv
    checkout = d / "checkout"
    shutil.copytree(
        os.path.join(ROOT, "greenops"),
        checkout / "greenops",
        ignore=shutil.ignore_patterns("_C.*", "__pycache__"),
    )
    code = "import greenops; greenops._ext.load()"
    p = subprocess.run([py, "-c", code], cwd=checkout, capture_output=True, text=True)
    assert p.returncode != 0
    last = p.stderr.strip().splitlines()[-1]
    assert "ExtensionError" in last and "shadows the installed one" in last
    assert str(d / "env") in last


def test_a_build_without_torch_stops_with_the_fix():
    code = "import sys; sys.modules['torch'] = None; sys.argv = ['setup.py', '--version']; "
    code += "exec(open('setup.py').read())"
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 1
    assert "--no-build-isolation" in p.stderr and "install torch first" in p.stderr
