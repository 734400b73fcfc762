import os

import pytest

from greenops import power
from greenops.power.simulated import STEPS_PER_WINDOW, SimulatedDevice, load_profile

DATA = os.path.join(os.path.dirname(__file__), "data")


def test_bundled_profile_reproduces_the_measured_sweep():
    p = load_profile("v100-resnet50")
    assert p.limits_w == (100, 125, 150, 175, 200, 225, 250)
    # zeus_profile_V100+resnet50+gpu0.csv, 150 W window: 32.41 s, 4830.3 J
    t, w = p.at(150)
    assert t * STEPS_PER_WINDOW == pytest.approx(32.41288539709058)
    assert w == pytest.approx(4830.296000000031 / 32.41288539709058)
    # between sweeps: linear
    t1, w1 = p.at(137.5)
    assert (p.at(125)[0] + p.at(150)[0]) / 2 == pytest.approx(t1)
    assert (p.at(125)[1] + p.at(150)[1]) / 2 == pytest.approx(w1)


def test_summary_format_from_a_path():
    path = os.path.join(DATA, "zeus_summary_power_v100_resnet50.csv")
    p = load_profile(f"{path}#imagenet,resnet50,256,adadelta")
    assert p.limits_w[0] == 100 and p.limits_w[-1] == 250 and len(p.limits_w) == 7
    assert p.gpu == "V100"
    assert all(p.at(lim)[1] > 0 for lim in p.limits_w)
    with pytest.raises(ValueError, match="no configuration"):
        load_profile(f"{path}#imagenet,resnet50,7,sgd")
    with pytest.raises(power.DeviceNotFound, match="bundled"):
        load_profile("h100-llama")


def test_energy_integrates_power_over_simulated_time(tmp_path):
    d = SimulatedDevice("a40-resnet50", state_path=str(tmp_path / "s.json"))
    e0, t0 = d.energy_j(), d.now_s()
    seconds = d.run_step(10)
    step_t, p = d.profile.at(d.limit_w())
    assert seconds == pytest.approx(10 * step_t)
    assert d.now_s() - t0 == pytest.approx(seconds)
    assert d.energy_j() - e0 == pytest.approx(p * seconds)
    d.sleep(2.0)
    assert d.energy_j() - e0 == pytest.approx(p * seconds + 2.0 * d.idle_w)
    assert d.simulated and d.name.startswith("Simulated")


def test_lower_cap_is_slower_and_saves_energy_per_step(tmp_path):
    d = SimulatedDevice("v100-resnet50", state_path=str(tmp_path / "s.json"))
    e0 = d.energy_j()
    t_full = d.run_step()
    e_full = d.energy_j() - e0
    d.set_limit_w(150)
    e0 = d.energy_j()
    t_capped = d.run_step()
    assert t_capped > t_full and d.energy_j() - e0 < e_full


def test_state_is_shared_like_a_driver_and_constraints_hold(tmp_path):
    path = str(tmp_path / "s.json")
    a, b = SimulatedDevice(state_path=path), SimulatedDevice(state_path=path)
    a.set_limit_w(175)
    assert b.limit_w() == 175
    with pytest.raises(power.InvalidLimit, match=r"\[100, 250\] W"):
        a.set_limit_w(260)
    assert b.limit_w() == 175  # refused, not clamped
    a.set_flags(deny_writes=True)
    with pytest.raises(power.NoPermission, match="CAP_SYS_ADMIN"):
        b.set_limit_w(200)
    a.set_flags(deny_writes=False, lost=True)
    with pytest.raises(power.GpuLost):
        b.limit_w()


def test_simulate_env_selects_simulated_devices(monkeypatch):
    monkeypatch.setenv("GREENOPS_SIMULATE", "a40-bert")
    monkeypatch.setenv("GREENOPS_SIMULATE_COUNT", "2")
    devs = power.devices()
    assert [d.index for d in devs] == [0, 1] and all(d.simulated for d in devs)
    assert devs[0].clock is devs[1].clock  # one simulated clock per process
    assert power.devices([1])[0] is devs[1]
    with pytest.raises(power.DeviceNotFound, match="no device"):
        power.devices([5])
