"""RAPL through powercap, on a fake tree of real files: zones and domains, the counter's
wraparound (and the background reader that sees every wrap), the root-only counter read as
another user, CPU power caps restored on every way out in real processes, and the estimate
where there is no counter."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import fake_powercap as fp
import pytest

from greenops import cli, power
from greenops.power import journal, rapl, registry
from greenops.power.estimate import EstimatedCpu


@pytest.fixture
def tree(tmp_path, monkeypatch):
    root = tmp_path / "powercap"
    root.mkdir()
    paths = fp.server(str(root))
    monkeypatch.setenv("GREENOPS_POWERCAP_ROOT", str(root))
    return paths


def test_zones_domains_and_what_a_meter_reads(tree):
    zs = rapl.zones()
    assert [z.zone for z in zs] == [
        "intel-rapl:0",
        "intel-rapl:0:0",
        "intel-rapl:0:1",
        "intel-rapl:1",
        "intel-rapl:1:0",
        "intel-rapl:1:1",
    ]
    assert [z.domain for z in zs] == ["package", "core", "dram"] * 2
    meter = registry.devices(kind="meter")  # no GPU here: the packages and DRAM only
    assert [d.uuid for d in meter] == [
        "RAPL-intel-rapl:0",
        "RAPL-intel-rapl:0:1",
        "RAPL-intel-rapl:1",
        "RAPL-intel-rapl:1:1",
    ]
    assert [d.uuid for d in registry.devices(kind="cpu")] == [
        "RAPL-intel-rapl:0",
        "RAPL-intel-rapl:1",
    ]
    z = zs[0]
    assert z.energy_j() == 1.0 and z.limit_w() == 205.0
    c = z.constraints()
    assert (c.min_w, c.max_w, c.default_w) == (1.0, 270.0, 270.0)


def test_missing_dram_zone(tmp_path, monkeypatch):
    root = tmp_path / "pc"
    root.mkdir()
    fp.server(str(root), sockets=1, dram=False)
    monkeypatch.setenv("GREENOPS_POWERCAP_ROOT", str(root))
    assert [d.domain for d in registry.devices(kind="meter")] == ["package"]


def test_wraparound_is_undone(tree):
    z = rapl.RaplZone("intel-rapl:0", 0)
    top = z.range_uj()
    fp.write(tree["intel-rapl:0"], "energy_uj", top - 3_000_000)
    e0 = z.energy_j()
    fp.write(tree["intel-rapl:0"], "energy_uj", 2_000_000)  # wrapped: 5 J later
    assert z.energy_j() - e0 == pytest.approx(5.0)
    fp.write(tree["intel-rapl:0"], "energy_uj", 4_000_000)
    assert z.energy_j() - e0 == pytest.approx(7.0)


def test_a_window_longer_than_the_wrap_period_sees_every_wrap(tree):
    """The meter's background reader catches both wraps although the window reads only at
    its begin and end (a counter of 10 J range, stepped 6 J at a time)."""
    for n in ("intel-rapl:0", "intel-rapl:0:1", "intel-rapl:1", "intel-rapl:1:1"):
        fp.write(tree[n], "max_energy_range_uj", 10_000_000)
        fp.write(tree[n], "energy_uj", 0)
    devs = registry.devices(kind="meter")[:1]
    m = power.EnergyMeter(devs)
    m.begin("w")
    watch_period = m._watch.period_s
    for v in (6, 2, 8, 4):  # 0 -> 6 -> 12 (2) -> 18 (8) -> 24 (4): +24 J, two wraps
        fp.write(tree["intel-rapl:0"], "energy_uj", v * 1_000_000)
        time.sleep(max(3 * watch_period, 0.2))
    out = m.end("w")
    assert out.energy_j == pytest.approx(24.0)
    assert out.by_domain_j() == {"package": pytest.approx(24.0)}


def test_meter_sums_packages_and_dram_per_domain(tree):
    m = power.EnergyMeter()
    m.begin("w")
    fp.write(tree["intel-rapl:0"], "energy_uj", 11_000_000)  # +10 J
    fp.write(tree["intel-rapl:1:1"], "energy_uj", 3_200_000)  # +3 J
    out = m.end("w")
    assert out.energy_j == pytest.approx(13.0) and out.estimated_energy_j is None
    assert out.by_domain_j() == {"package": pytest.approx(10.0), "dram": pytest.approx(3.0)}


READER = textwrap.dedent("""
    import json, os
    from greenops.power import estimate, rapl, registry  # imported while the files are ours
    z = rapl.RaplZone("intel-rapl:0", 0)
    os.setgid(65534); os.setuid(65534)   # then as nobody: a user who is not root
    try:
        z.energy_j()
        err = None
    except Exception as e:
        err = [type(e).__name__, str(e)]
    meter = registry.devices(kind="meter")
    print(json.dumps({"err": err, "meter": [type(d).__name__ for d in meter],
                      "why": getattr(meter[0], "unmeasured_because", None)}))
""")


@pytest.mark.skipif(os.geteuid() != 0, reason="drops privileges from root to test EACCES")
def test_root_only_counter_read_as_another_user(tmp_path):
    import shutil
    import tempfile

    base = tempfile.mkdtemp(prefix="greenops-rapl-")  # pytest's tmp_path is private to root
    try:
        os.chmod(base, 0o755)
        paths = fp.server(base, sockets=1)
        for path in paths.values():  # since Linux 5.10 energy_uj is 0400 root
            os.chmod(os.path.join(path, "energy_uj"), 0o400)
        env = {
            **os.environ,
            "GREENOPS_POWERCAP_ROOT": base,
            "GREENOPS_STATE_DIR": str(tmp_path / "st"),
        }
        out = subprocess.run(
            [sys.executable, "-c", READER], capture_output=True, text=True, timeout=60, env=env
        )
    finally:
        shutil.rmtree(base)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["err"][0] == "NoPermission" and "CVE-2020-8694" in r["err"][1]
    assert "chmod" in r["err"][1] and "estimate" in r["err"][1]
    assert r["meter"] == ["EstimatedCpu"] and "not readable" in r["why"]


def test_estimate_is_labelled_and_kept_apart(monkeypatch, tmp_path):
    monkeypatch.setenv("GREENOPS_POWERCAP_ROOT", str(tmp_path / "none"))
    monkeypatch.setenv("GREENOPS_CPU_TDP_W", "20")
    (d,) = registry.devices(kind="meter")
    assert isinstance(d, EstimatedCpu) and d.estimated and "given TDP 20 W" in d.basis
    m = power.EnergyMeter()
    with m.window("w") as w:
        t = time.monotonic()
        while time.monotonic() - t < 0.3:
            pass
    assert w.energy_j is None and w.estimated_energy_j > 0
    assert "ESTIMATED" in str(w) and w.to_dict()["devices"][0]["estimated"] is True
    # the model: busy time at most full draw, idle share at least
    n = d.n_cpus
    assert 0.3 * 20 * w.time_s * 0.9 <= w.estimated_energy_j <= 20 * w.time_s * 1.1 * max(1, n / n)


def test_estimate_model_from_proc(monkeypatch):
    d = EstimatedCpu(tdp_w=10.0, scope="process")
    e0 = d.energy_j()
    t = time.monotonic()
    while time.monotonic() - t < 0.5:  # one CPU busy
        pass
    e = d.energy_j() - e0
    per = 10.0 / d.n_cpus
    want = per * (0.3 * d.n_cpus * 0.5 + 0.7 * 0.5)
    assert e == pytest.approx(want, rel=0.35)


# --- CPU caps in real processes ---------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, time
    import greenops.power as p
    with p.cap(150, on="cpu"):
        print("capped", [d.limit_w() for d in p.devices(kind="cpu")], flush=True)
        time.sleep(60)
""")


def _limits(tree):
    return [
        fp.read(tree[n], "constraint_0_power_limit_uw") for n in ("intel-rapl:0", "intel-rapl:1")
    ]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_cpu_cap_restored_on_every_way_out(tree, tmp_path, sig):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "capped [150.0, 150.0]"
    assert _limits(tree) == [150_000_000, 150_000_000]
    proc.send_signal(sig)
    proc.wait(timeout=30)
    if sig == signal.SIGKILL:
        assert _limits(tree) == [150_000_000] * 2 and len(journal.entries()) == 2
        out = subprocess.run(
            [sys.executable, "-m", "greenops", "power", "restore"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "restored RAPL-intel-rapl:0 to 205 W" in out.stdout, out.stderr
    assert _limits(tree) == [205_000_000, 205_000_000] and journal.entries() == []


def test_cpu_cap_from_the_cli(tree, capsys):
    code = "import greenops.power as p; raise SystemExit(int(p.devices(kind='cpu')[0].limit_w()))"
    rc = cli.main(["power", "cap", "120", "--on", "cpu", "--", sys.executable, "-c", code])
    assert rc == 120 and _limits(tree) == [205_000_000] * 2
    assert "under a 120 cap" in capsys.readouterr().err


def test_cpu_cap_validated_without_clamping(tree, capsys):
    rc = cli.main(["power", "cap", "400", "--on", "cpu", "--", sys.executable, "-c", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "400 W is outside" in err and "Traceback" not in err
    assert _limits(tree) == [205_000_000] * 2
