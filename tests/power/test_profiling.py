import pytest

from greenops import cli, power
from greenops.power.profiling import ProfileResult, ProfileRow


def _result():
    rows = [
        ProfileRow(300, 1.00, 250.0),
        ProfileRow(250, 1.04, 220.0),
        ProfileRow(200, 1.12, 200.0),
        ProfileRow(150, 1.50, 210.0),
    ]
    return ProfileResult(rows, 300.0, ["gpu"], simulated=False)


def test_selectors():
    r = _result()
    assert r.min_energy().limit_w == 200 and r.min_time().limit_w == 300
    assert r.within_slowdown(0.05).limit_w == 250
    assert r.within_slowdown(0.15).limit_w == 200
    assert r.zeus_cost(1.0).limit_w == 200 and r.zeus_cost(0.0).limit_w == 300
    # eta = 0.5: 0.5*E + 0.5*300*T -> 300: 275, 250: 266, 200: 268, 150: 330
    assert r.zeus_cost(0.5).limit_w == 250
    with pytest.raises(ValueError, match="eta"):
        r.zeus_cost(1.5)


def test_save_load_plot(tmp_path):
    r = _result()
    r.save(str(tmp_path / "p.json"))
    assert ProfileResult.load(str(tmp_path / "p.json")) == r
    r.plot(str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_default_limits_stay_within_constraints(sim):
    assert power.default_limits([sim]) == [250, 225, 200, 175, 150, 125, 100]
    assert power.default_limits([sim], step_w=40) == [250, 210, 170, 130, 100]


def test_profile_on_the_simulated_v100_recovers_the_measured_sweep(sim):
    r = power.profile(sim.run_step, warmup_steps=1, steps_per_limit=5, progress=False)
    assert [row.limit_w for row in r.rows] == [250, 225, 200, 175, 150, 125, 100]
    for row in r.rows:
        t, p = sim.profile.at(row.limit_w)
        assert row.time_per_step_s == pytest.approx(t)
        assert row.avg_power_w == pytest.approx(p)
    # the V100 ResNet-50 sweep's least-energy limit is 150 W, ~20% below 250 W's energy
    best = r.min_energy()
    assert best.limit_w == 150
    assert 1 - best.energy_per_step_j / r.row(250).energy_per_step_j == pytest.approx(
        0.204, abs=0.01
    )
    assert r.simulated and sim.limit_w() == 250  # every cap restored


def test_cli_profile(sim, tmp_path, capsys):
    rc = cli.main(
        [
            "power",
            "profile",
            "--limits",
            "250,200,150",
            "--steps",
            "3",
            "--json",
            str(tmp_path / "p.json"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "least energy: 150 W" in out and "SIMULATED" in out
    assert len(ProfileResult.load(str(tmp_path / "p.json")).rows) == 3
