import json
import subprocess
import sys

from greenops import cli, power


def test_status_json(sim, capsys):
    assert cli.main(["power", "status", "--json"]) == 0
    row, *cpu = json.loads(capsys.readouterr().out)
    assert row["simulated"] and row["limit_w"] == 250 and row["min_limit_w"] == 100
    assert row["kind"] == "gpu" and [r["kind"] for r in cpu] == ["cpu"] * len(cpu) and cpu


def test_run_under_a_cap_prints_energy_and_restores(sim, capsys):
    rc = cli.main(
        [
            "run",
            "--cap",
            "150",
            "--",
            sys.executable,
            "-c",
            "import greenops.power as p; raise SystemExit(int(p.devices()[0].limit_w()))",
        ]
    )
    assert rc == 150  # the program saw the cap, and its exit code is passed on
    err = capsys.readouterr().err
    assert "greenops run: exit 150" in err and " J SIMULATED over " in err
    assert power.devices()[0].limit_w() == 250


def test_power_cap_restores_whatever_the_programs_fate(sim):
    rc = cli.main(["power", "cap", "125", "--", sys.executable, "-c", "raise SystemExit(7)"])
    assert rc == 7 and power.devices()[0].limit_w() == 250


def test_power_cap_needs_a_command(sim):
    import pytest

    with pytest.raises(SystemExit, match="after --"):
        cli.main(["power", "cap", "125"])


def test_restore_with_nothing_to_do(sim):
    out = subprocess.run(
        [sys.executable, "-m", "greenops", "power", "restore"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "nothing to restore" in out.stdout
