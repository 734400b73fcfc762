import pytest

from greenops import power
from greenops.power import nvml


def test_units_are_converted_at_the_edge(fake_nvml):
    d = nvml.visible_devices()[1]
    fake_nvml.gpus[1].power_mw = 312_500
    fake_nvml.gpus[1].energy_mj = 7_000_500
    c = d.constraints()
    assert (c.min_w, c.max_w, c.default_w) == (200.0, 700.0, 700.0)
    assert d.limit_w() == 650.0 and d.power_w() == 312.5 and d.energy_j() == 7000.5
    assert d.set_limit_w(450.5)
    assert fake_nvml.writes == [("GPU-bbbb2222-0000", 450_500)]  # integer mW


def test_errors_are_typed_and_say_what_to_do(fake_nvml):
    d = nvml.visible_devices()[0]
    with pytest.raises(power.InvalidLimit, match=r"\[200, 700\]"):
        d.set_limit_w(150)
    assert fake_nvml.writes == []
    fake_nvml.root = False
    with pytest.raises(power.NoPermission, match="CAP_SYS_ADMIN"):
        d.set_limit_w(300)
    fake_nvml.gpus[0].lost = True
    with pytest.raises(power.GpuLost, match="nvidia-smi"):
        d.limit_w()


def test_missing_energy_counter_reads_none(fake_nvml):
    fake_nvml.gpus[0].has_energy_counter = False
    assert nvml.visible_devices()[0].energy_j() is None


def test_cuda_visible_devices_maps_by_uuid_and_index(fake_nvml, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb2222")
    (d,) = nvml.visible_devices()
    assert d.uuid == "GPU-bbbb2222-0000" and d.index == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert [d.uuid[:8] for d in nvml.visible_devices()] == ["GPU-bbbb", "GPU-aaaa"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,7,1")  # CUDA stops at the invalid entry
    assert len(nvml.visible_devices()) == 1


def test_mig_is_rejected(fake_nvml, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-5c89b7c1-1b5e-5d5e-8b6f-2c3d4e5f6a7b")
    with pytest.raises(power.NotSupported, match="MIG instance"):
        nvml.visible_devices()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    fake_nvml.gpus[0].mig = True
    with pytest.raises(power.NotSupported, match="MIG enabled"):
        nvml.visible_devices()[0].set_limit_w(300)


def test_dry_run_reads_but_never_writes(fake_nvml, monkeypatch):
    monkeypatch.setenv("GREENOPS_POWER_DRY_RUN", "1")
    d = nvml.visible_devices()[0]
    assert d.set_limit_w(300) is False
    with power.cap(250, [d], mode="hardware"):
        assert d.limit_w() == 700.0
    assert fake_nvml.writes == []
    assert power.active_limits() == []
