"""Power tests run on simulated devices and a fake NVML, each test with its own state
directory, so no test ever touches a real GPU's settings."""

import pytest

from greenops.power import nvml, registry
from greenops.power.fake_nvml import FakeGpu, FakeNvml


@pytest.fixture(autouse=True)
def isolated_power_state(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("GREENOPS_POWER_JOURNAL", raising=False)
    monkeypatch.delenv("GREENOPS_POWER_DRY_RUN", raising=False)
    monkeypatch.delenv("GREENOPS_SIMULATE", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    registry.reset()
    yield
    registry.reset()
    nvml.use_nvml(None)
    from greenops.power import caps as cap_mod

    cap_mod._restore_through(None)


@pytest.fixture
def fake_nvml():
    fake = FakeNvml(
        [
            FakeGpu("NVIDIA H100 80GB HBM3", "GPU-aaaa1111-0000", 200_000, 700_000),
            FakeGpu(
                "NVIDIA H100 80GB HBM3", "GPU-bbbb2222-0000", 200_000, 700_000, limit_mw=650_000
            ),
        ]
    )
    nvml.use_nvml(fake)
    return fake


@pytest.fixture
def sim(monkeypatch):
    """One simulated V100 (ResNet-50 sweep) as the visible device."""
    monkeypatch.setenv("GREENOPS_SIMULATE", "v100-resnet50")
    return registry.devices()[0]
