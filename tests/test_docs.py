"""Every ```python block of README.md and docs/*.md runs as written, so that docs and code
cannot drift apart. Each block runs in a fresh namespace holding the placeholders the prose
takes for granted (a weight, an activation, a model, a training function...), on a simulated
GPU with writes dry-run and no powercap (tests/conftest.py), network sources swapped for a
constant one. A block marked `<!-- docs-test: skip REASON -->` on the line before is skipped
with that reason (none is, today)."""

import os
import re
from pathlib import Path

import pytest
import torch
from checkpoint_formats import gptq_tensors
from torch import nn

import greenops

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(<!-- docs-test: skip (?P<why>[^>]*)-->\s*\n)?```python\n(?P<code>.*?)```", re.S
)


def blocks():
    for f in FILES:
        text = f.read_text()
        for m in BLOCK.finditer(text):
            line = text[: m.start()].count("\n") + 1
            marks = [pytest.mark.skip(reason=m["why"].strip())] if m["why"] else []
            yield pytest.param(m["code"], id=f"{f.name}:{line}", marks=marks)


def placeholders() -> dict:
    from greenops import carbon, power

    torch.manual_seed(0)
    qweight, qzeros, gptq_scales, g_idx, _ = gptq_tensors(256, 64, 128, act_order=False)
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256))
    return {
        "torch": torch,
        "greenops": greenops,
        "nn": nn,
        "power": power,
        "carbon": carbon,
        "weight": torch.randn(256, 256),
        "x": torch.randn(8, 256),
        "bias": torch.randn(256),
        "qweight": qweight,
        "qzeros": qzeros,
        "gptq_scales": gptq_scales,
        "g_idx": g_idx,
        "model": model,
        "train": lambda *a, **k: None,
        "train_one_epoch": lambda *a, **k: None,
        "train_step": lambda *a, **k: None,
        "loader": [torch.randn(4, 256) for _ in range(3)],
    }


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A simulated V100 with writes dry-run, a private state directory, sweep.json (a profile
    of the simulated device) in the working directory, and no network."""
    from greenops import carbon, power
    from greenops.power import registry

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GREENOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GREENOPS_SIMULATE", "v100-resnet50")
    monkeypatch.setenv("GREENOPS_POWER_DRY_RUN", "1")
    registry.reset()
    dev = registry.devices()[0]
    power.profile(dev.run_step, devices=[dev], steps_per_limit=3, progress=False).save("sweep.json")

    def offline(*args, **kwargs):
        return carbon.Constant(300.0)

    for name in ("ElectricityMaps", "WattTime", "UKGrid"):
        monkeypatch.setattr(carbon, name, offline)
    yield
    registry.reset()


@pytest.mark.parametrize("code", list(blocks()))
def test_doc_block_runs(code, sandbox):
    exec(compile(code, "<doc block>", "exec"), placeholders())


def test_every_doc_file_was_looked_at():
    assert len(list(blocks())) >= 8 and all(f.exists() for f in FILES)
    assert os.environ["GREENOPS_POWERCAP_ROOT"].startswith(os.sep + "nonexistent")
