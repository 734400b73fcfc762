"""The runtime on any machine: `greenops run` runs the command whatever can be measured or
capped and passes on its exit code; estimates are labelled; unknown carbon is unknown (null),
read within a bounded wait; a software cap paces a command where no limit can be set; CLI
mistakes are one line; the Prometheus endpoint serves cumulative counters on loopback."""

import json
import os
import sys
import time
import urllib.request

import fake_powercap as fp
import pytest

from greenops import cli, power
from greenops.power import registry


@pytest.fixture
def bare(tmp_path, monkeypatch):
    """No GPU (no NVML driver here), no powercap tree: only the estimate."""
    monkeypatch.setenv("GREENOPS_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    monkeypatch.setenv("GREENOPS_CPU_TDP_W", "16")


CODE = "import time; t = time.time()\nwhile time.time() - t < 0.3: pass\nraise SystemExit(5)"


def test_run_on_a_machine_with_nothing_to_measure_runs_the_command(bare, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert cli.main(["run", "--json", str(out), "--", sys.executable, "-c", CODE]) == 5
    err = capsys.readouterr().err
    assert "exit 5" in err and "J ESTIMATED" in err and "Traceback" not in err
    r = json.loads(out.read_text())
    assert r["exit_code"] == 5 and r["energy_j"] is None and r["estimated_energy_j"] > 0
    assert r["devices"][0]["estimated"] is True and r["gco2_eq"] is None


def test_a_cap_that_cannot_be_set_still_runs_the_command(bare, capsys):
    assert cli.main(["run", "--cap", "100", "--", sys.executable, "-c", CODE]) == 5
    err = capsys.readouterr().err
    assert "nothing" in err.lower() and "UNCAPPED" in err and "exit 5" in err
    assert cli.main(["power", "cap", "100", "--", sys.executable, "-c", CODE]) == 5


def _run_unreachable_uk(out, code):
    """greenops run --carbon uk against a port nothing listens on, JSON to `out`."""
    uk = ["--carbon", "uk", "--base-url", "http://127.0.0.1:9", "--json", str(out)]
    return cli.main(["run", *uk, "--", sys.executable, "-c", code])


def test_unreachable_carbon_source_is_unknown_not_zero(bare, tmp_path, capsys):
    out = tmp_path / "r.json"
    t0 = time.monotonic()
    rc = _run_unreachable_uk(out, CODE)
    elapsed = time.monotonic() - t0
    assert rc == 5
    r = json.loads(out.read_text())
    assert r["gco2_eq"] is None and r["carbon_coverage"] == 0.0
    assert "gCO2eq unknown" in capsys.readouterr().err
    # the source retries for ~3.5 s each time; the job waits at most 2 s at its start and end
    assert elapsed < 0.3 + 2 * 2.0 + 2.5


def test_partial_carbon_coverage(sim):
    class Flaky:
        name = "flaky"

        def __init__(self):
            self.n = 0

        def current(self):
            self.n += 1
            return None if self.n == 1 else 200.0

    m = power.EnergyMeter(carbon=Flaky())
    d = m.devices[0]
    m.begin("w")
    d.run_step(10)
    m.tick()  # the first interval's intensity was unknown; from here 200 g/kWh
    d.run_step(10)
    w = m.end("w")
    assert 0.4 < w.carbon_coverage < 0.6
    assert w.gco2_eq == pytest.approx(w.energy_j * w.carbon_coverage / 3.6e6 * 200, rel=1e-6)


def test_simulated_gpu_in_a_window_of_real_work(sim):
    """The README's energy example with GREENOPS_SIMULATE: real work, no simulated steps —
    the simulated GPU is modelled busy at its limit for the window's wall time."""
    m = power.EnergyMeter()
    with m.window("train") as w:
        time.sleep(0.3)
    assert w.simulated and w.simulated_busy and w.time_s >= 0.3
    assert w.energy_j == pytest.approx(w.time_s * sim.profile.at(250)[1], rel=0.05)
    assert "modelled busy" in str(w)


def test_software_cap_paces_a_command(sim, tmp_path, capsys):
    """No permission to set the limit: `auto` pauses the command's process group (SIGSTOP /
    SIGCONT) so that the average power stays within the budget. The simulated V100 draws
    227 W busy and 30 W idle: unpaced the average would be 227 W."""
    sim.set_flags(deny_writes=True)
    out = tmp_path / "r.json"
    code = "import time\nt = time.time()\nwhile time.time() - t < 3: pass"
    rc = cli.main(["run", "--cap", "150", "--json", str(out), "--", sys.executable, "-c", code])
    err = capsys.readouterr().err
    r = json.loads(out.read_text())
    assert rc == 0 and "software cap" in err and sim.limit_w() == 250
    assert r["avg_power_w"] == pytest.approx(150, rel=0.1)
    paused = float(r["cap_result"].split("paused ")[1].split(" s")[0])
    assert paused > 1.0  # (227 - 150) / (227 - 30) of the time, roughly


def test_cli_errors_are_one_line(sim, capsys):
    rc = cli.main(["power", "cap", "10000", "--", sys.executable, "-c", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().count("\n") == 0 and "10000 W is outside" in err
    assert "Traceback" not in err


def test_power_status_without_a_gpu(bare, capsys):
    assert cli.main(["power", "status"]) == 0
    out = capsys.readouterr().out
    assert "ESTIMATED" in out and "given TDP 16 W" in out


def test_metrics_endpoint_scrape(tmp_path, monkeypatch):
    from prometheus_client.parser import text_string_to_metric_families

    root = tmp_path / "pc"
    root.mkdir()
    paths = fp.server(str(root), sockets=1)
    monkeypatch.setenv("GREENOPS_POWERCAP_ROOT", str(root))

    class Src:
        name = "const"

        def current(self):
            return 300.0

    srv = power.serve_metrics(0, registry.devices(kind="meter"), carbon=Src())
    try:
        assert srv.server.server_address[0] == "127.0.0.1"
        srv.update()
        fp.write(paths["intel-rapl:0"], "energy_uj", 1_000_000 + 36_000_000)  # +36 J
        srv.update()
        body = urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/metrics", timeout=5).read()
    finally:
        srv.close()
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    energy = {
        s.labels["device"]: s.value
        for s in fams["greenops_energy_joules"].samples
        if s.name.endswith("_total")
    }
    assert energy["RAPL-intel-rapl:0"] == pytest.approx(36.0)
    assert energy["RAPL-intel-rapl:0:1"] == 0.0
    carbon = [s for s in fams["greenops_carbon_grams"].samples if s.name.endswith("_total")]
    assert carbon[0].value == pytest.approx(36.0 / 3.6e6 * 300)
    limits = {s.labels["device"]: s.value for s in fams["greenops_power_limit_watts"].samples}
    assert limits["RAPL-intel-rapl:0"] == 205.0
    assert fams["greenops_carbon_intensity_grams_per_kwh"].samples[0].value == 300.0


def test_run_serves_metrics(bare, capsys):
    code = (
        "import os, time, urllib.request\n"
        "port = os.environ['P']\n"
        "time.sleep(0.3)\n"
        "body = urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics').read().decode()\n"
        "raise SystemExit(0 if 'greenops_energy_joules_total' in body else 9)"
    )
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ["P"] = str(port)
    try:
        rc = cli.main(["run", "--metrics-port", str(port), "--", sys.executable, "-c", code])
    finally:
        del os.environ["P"]
    assert rc == 0


def test_carbon_aware_with_an_unreachable_source(sim, tmp_path, capsys):
    """The controller path (a cappable simulated GPU): no intensity, so the fastest cap, and
    unknown emissions — within the bounded waits."""
    out = tmp_path / "r.json"
    t0 = time.monotonic()
    rc = _run_unreachable_uk(out, "raise SystemExit(4)")
    assert rc == 4 and time.monotonic() - t0 < 3 * 2.0 + 3
    r = json.loads(out.read_text())
    assert r["gco2_eq"] is None and r["decisions"][0]["intensity_g_per_kwh"] is None
    assert r["decisions"][0]["cap_w"] == 250 and sim.limit_w() == 250
