"""The live carbon-aware controller on simulated devices: the cap follows the intensity through
power.cap's safe path, emissions are accounted, failures never reach the job."""

import datetime as dt
import json
import sys
import textwrap
import time
import warnings

import pytest
from ranks import run_two_ranks

from greenops import carbon, cli, power
from greenops.carbon import Curve, Point, Reactive
from greenops.carbon.sources import Source
from greenops.power import journal


class Dial(Source):
    """An intensity the test turns; `fail` makes every read raise."""

    name = "dial"
    update_period_s = 0.0

    def __init__(self, value):
        super().__init__()
        self.value, self.fail, self.reads = value, False, 0

    def _fetch_current(self):
        self.reads += 1
        if self.fail:
            raise OSError("grid API down")
        return self.value

    def _fetch_history(self, hours):
        return [Point(dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), 200.0)]


def test_cap_follows_intensity_and_is_restored(sim):
    src = Dial(200.0)
    curve = Curve.of(sim.profile)
    with carbon.carbon_aware(src, period_s=3600) as ctl:
        assert ctl.applied_mode == "hardware"
        ref = ctl.policy.reference_g  # calibrated from history: 200
        assert ref == 200.0
        at_ref = sim.limit_w()
        src.value = 2000.0
        ctl.tick()
        dirty = sim.limit_w()
        src.value = 10.0
        ctl.tick()
        clean = sim.limit_w()
        assert journal.entries()  # every change is journaled while it holds
    assert dirty == curve.min_energy_w < at_ref < clean == curve.fastest_w
    assert sim.limit_w() == 250.0  # the default, put back
    assert journal.entries() == []
    assert [w for _, _, w in ctl.decisions] == [at_ref, dirty, clean]
    assert [i for _, i, _ in ctl.decisions] == [200.0, 2000.0, 10.0]


def test_emissions_are_energy_times_the_intensity_of_each_period(sim):
    src = Dial(100.0)
    with carbon.carbon_aware(src, period_s=3600) as ctl:
        e0 = sim.energy_j()
        sim.run_step(50)
        e1 = sim.energy_j()
        src.value = 400.0
        ctl.tick()
        sim.run_step(50)
        e2 = sim.energy_j()
    m = ctl.measurement
    assert m.energy_j == pytest.approx(e2 - e0)
    assert m.gco2_eq == pytest.approx(((e1 - e0) * 100.0 + (e2 - e1) * 400.0) / 3.6e6)


def test_background_thread_decides_every_period(sim):
    src = Dial(300.0)
    with carbon.carbon_aware(src, period_s=0.02) as ctl:
        deadline = time.monotonic() + 5
        while len(ctl.decisions) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(ctl.decisions) >= 4
    n = len(ctl.decisions)
    time.sleep(0.1)
    assert len(ctl.decisions) == n  # the thread stopped with the block


def test_a_failing_source_warns_once_and_keeps_the_job_running(sim):
    src = Dial(2000.0)
    with carbon.carbon_aware(src, policy=Reactive(reference_g=200.0), period_s=3600) as ctl:
        low = sim.limit_w()
        src.fail = True
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            ctl.tick()
            ctl.tick()
        assert len([x for x in w if "greenops.carbon" in str(x.message)]) == 1
        assert sim.limit_w() == low  # last known intensity: same cap
    assert ctl.decisions[-1][1] == 2000.0


def test_no_permission_falls_back_to_the_software_governor(sim):
    sim.set_flags(deny_writes=True)
    src = Dial(2000.0)
    with pytest.warns(RuntimeWarning, match="software governor"):
        with carbon.carbon_aware(src, policy=Reactive(reference_g=200.0), period_s=3600) as ctl:
            assert ctl.applied_mode == "software"
            t0, e0 = sim.now_s(), sim.energy_j()
            for _ in range(200):
                sim.run_step()
                ctl.step()
            avg = (sim.energy_j() - e0) / (sim.now_s() - t0)
    assert sim.limit_w() == 250.0
    assert avg == pytest.approx(ctl.cap_w or ctl.decisions[-1][2], rel=0.02)


def test_dry_run_changes_nothing(sim, monkeypatch):
    monkeypatch.setenv("GREENOPS_POWER_DRY_RUN", "1")
    with carbon.carbon_aware(Dial(5000.0), policy=Reactive(reference_g=100.0)) as ctl:
        assert sim.limit_w() == 250.0
    assert ctl.decisions[0][2] == 150.0 and journal.entries() == []


def test_following_a_plan(sim):
    t0 = dt.datetime(2020, 6, 1, tzinfo=dt.timezone.utc)
    fc = [Point(t0 + dt.timedelta(hours=h), v) for h, v in enumerate([100.0, 900.0, 100.0])]
    curve = Curve.of(sim.profile)
    p = carbon.plan(curve, fc, 2.6 * 3600 / curve.at(250.0)[0], 3.0)
    now = [t0 + dt.timedelta(minutes=30)]
    with carbon.carbon_aware(Dial(0.0), policy=p, clock=lambda: now[0]) as ctl:
        first = sim.limit_w()
        now[0] = t0 + dt.timedelta(minutes=90)
        ctl.tick()
        second = sim.limit_w()
    assert first == p.cap_at(t0 + dt.timedelta(minutes=30))
    assert second == p.cap_at(t0 + dt.timedelta(minutes=90)) < first


def test_profile_outside_the_device_range_is_refused(sim):
    wide = Curve((50.0, 400.0), (2.0, 1.0), (60.0, 300.0))
    with pytest.raises(power.InvalidLimit, match="outside"):
        with carbon.carbon_aware(Dial(1.0), profile=wide):
            pass
    assert sim.limit_w() == 250.0


def test_real_gpus_need_a_profile(fake_nvml):
    with pytest.raises(ValueError, match="profile"):
        with carbon.carbon_aware(Dial(1.0)):
            pass


def test_greenops_run_carbon_writes_emissions_json(sim, tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    trace.write_text("Time,Carbon Intensity\n2020-01-01 00:00,500\n2020-01-01 00:30,500\n")
    out = tmp_path / "run.json"
    rc = cli.main(
        [
            "run",
            "--carbon",
            "trace",
            "--trace",
            str(trace),
            "--shift",
            "--period",
            "0.05",
            "--json",
            str(out),
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(0.5)",
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "gCO2eq (trace)" in err and "carbon-aware" in err
    d = json.loads(out.read_text())
    assert d["schema"] == "greenops-run/2" and d["exit_code"] == 0 and d["simulated"]
    assert d["energy_j"] > 0 and d["gco2_eq"] == pytest.approx(d["energy_j"] / 3.6e6 * 500)
    assert d["decisions"] and all(x["intensity_g_per_kwh"] == 500 for x in d["decisions"])
    assert sim.limit_w() == 250.0


def test_greenops_run_static_cap_with_accounting(sim, capsys, tmp_path):
    out = tmp_path / "run.json"
    rc = cli.main(
        [
            "run",
            "--cap",
            "150",
            "--carbon",
            "constant",
            "--value",
            "100",
            "--json",
            str(out),
            "--",
            sys.executable,
            "-c",
            "pass",
        ]
    )
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["cap"] == 150 and d["decisions"] == []
    assert d["gco2_eq"] == pytest.approx(d["energy_j"] / 3.6e6 * 100)


def test_greenops_run_follows_a_plan_for_a_deadline(sim, tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    rows = [f"2020-01-01 {h:02d}:00,{100 if h % 2 else 600}" for h in range(24)]
    trace.write_text("Time,Carbon Intensity\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run.json"
    rc = cli.main(
        [
            "run",
            "--carbon",
            "trace",
            "--trace",
            str(trace),
            "--shift",
            "--deadline",
            "10",
            "--work-hours",
            "8",
            "--json",
            str(out),
            "--",
            sys.executable,
            "-c",
            "pass",
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "planned to finish at" in err and "carbon-aware (plan" in err
    d = json.loads(out.read_text())
    # The first hour of the shifted trace is dirty (600): the plan starts below the fastest cap.
    assert d["decisions"][0]["intensity_g_per_kwh"] == 600
    assert d["decisions"][0]["cap_w"] < 250.0


@pytest.mark.parametrize(
    "args, error",
    [
        (["--carbon", "constant", "--value", "1", "--deadline", "5"], "--work-hours"),
        (["--deadline", "5", "--work-hours", "4"], "--carbon"),
    ],
)
def test_greenops_run_bad_plans(sim, args, error):
    with pytest.raises(SystemExit, match=error):
        cli.main(["run", *args, "--", "true"])


WORKER = textwrap.dedent("""
    import json, sys
    import torch.distributed as dist
    import greenops.carbon as carbon
    import greenops.power as power
    from greenops.carbon import Constant, Reactive

    class Boom(Constant):
        def _fetch_current(self):
            raise AssertionError("only rank 0 may read the intensity")

    rank = int(sys.argv[1])
    dist.init_process_group("gloo", init_method="file://" + sys.argv[2], rank=rank, world_size=2)
    dev = power.devices([rank])[0]
    src = Constant(5000.0) if rank == 0 else Boom(1.0)
    seen = []
    with carbon.carbon_aware(src, policy=Reactive(reference_g=100.0), devices=[dev],
                            period_s=0.01, sync_every=5) as ctl:
        seen.append(dev.limit_w())
        for _ in range(20):
            dev.run_step()
            ctl.step()
        seen.append(dev.limit_w())
    print(json.dumps({"rank": rank, "seen": seen, "restored": dev.limit_w(),
                      "reads": len(ctl.decisions)}))
    dist.destroy_process_group()
""")


def test_distributed_rank0_decides_for_every_rank(tmp_path):
    outs = run_two_ranks(WORKER, tmp_path)
    r0, r1 = outs
    assert r0["seen"] == r1["seen"] == [150.0, 150.0]
    assert r0["restored"] == r1["restored"] == 250.0
    assert r0["reads"] >= 1 and r1["reads"] == 0


def test_a_planned_pause_really_pauses_the_job_with_allow_pause(sim):
    """With allow_pause the plan's pause blocks ctl.step() until the plan resumes (here one
    hour of plan time passes in 1 s of real time); without it a pause is the lowest cap."""
    t0 = dt.datetime(2020, 6, 1, tzinfo=dt.timezone.utc)
    fc = [Point(t0 + dt.timedelta(hours=h), v) for h, v in enumerate([100.0, 5000.0, 100.0])]
    curve = Curve.of(sim.profile)
    p = carbon.plan(curve, fc, work_hours=1.3, deadline=3.0, allow_pause=True)
    pause = next(s for s in p.segments if not s.running)
    for allow in (True, False):
        m0 = time.monotonic()

        def clock(m0=m0, start=pause.start):  # the block opens when the pause begins
            return start + dt.timedelta(hours=time.monotonic() - m0)

        with carbon.carbon_aware(
            Dial(100.0), policy=p, clock=clock, allow_pause=allow, period_s=3600
        ) as ctl:
            assert sim.limit_w() == curve.limits_w[0]
            t = time.monotonic()
            ctl.step()
            blocked = time.monotonic() - t
            after = sim.limit_w()
        if allow:
            assert 0.8 < blocked < 5 and ctl.paused_s == pytest.approx(blocked, abs=0.05)
            assert after == p.cap_at(pause.end) > curve.limits_w[0]  # resumed at the plan's cap
        else:
            assert blocked < 0.1 and ctl.paused_s == 0


def test_a_replanner_policy_sees_the_steps_done(sim):
    """The live controller gives a Replanner the progress at each decision: ctl.step() counts,
    or the job's own progress() callback."""
    t0 = dt.datetime(2020, 6, 1, tzinfo=dt.timezone.utc)
    fc = [Point(t0 + dt.timedelta(hours=h), v) for h, v in enumerate([100.0, 900.0, 100.0, 50.0])]
    curve = Curve.of(sim.profile)
    now = [t0]
    for progress in (None, lambda: 1234.0):
        r = carbon.Replanner(curve, lambda h: fc, t0 + dt.timedelta(hours=3), work_hours=2)
        with carbon.carbon_aware(
            Dial(100.0), policy=r, clock=lambda: now[0], period_s=3600, progress=progress
        ) as ctl:
            for _ in range(7):
                ctl.step()
            now[0] = t0 + dt.timedelta(minutes=30)
            ctl.tick()
        assert [d for _, d, _, _ in r.log] == ([1234.0] * 2 if progress else [0, 7])
        if progress is None:  # 7 steps in half an hour: it learns the job cannot make it
            assert r.status.startswith("flat out: the deadline cannot be met")
        assert sim.limit_w() == 250.0  # restored after the block
        now[0] = t0


def test_greenops_run_replans_from_the_commands_progress_file(sim, tmp_path, capsys):
    """--progress-file: the command writes its steps done; greenops re-plans from them (a
    Replanner), reads the last good value through rewrites, and reports its status."""
    trace = tmp_path / "trace.csv"
    rows = [f"2020-01-01 {h:02d}:00,{100 if h % 2 else 600}" for h in range(24)]
    trace.write_text("Time,Carbon Intensity\n" + "\n".join(rows) + "\n")
    prog, out = tmp_path / "progress", tmp_path / "run.json"
    job = (
        "import pathlib, sys, time\n"
        "for i in range(1, 6):\n"
        "    pathlib.Path(sys.argv[1]).write_text(str(i * 100))\n"
        "    time.sleep(0.1)\n"
    )
    rc = cli.main(
        ["run", "--carbon", "trace", "--trace", str(trace), "--shift", "--deadline", "10"]
        + ["--work-hours", "8", "--progress-file", str(prog), "--work-steps", "1000"]
        + ["--period", "0.1", "--json", str(out), "--", sys.executable, "-c", job, str(prog)]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "carbon-aware (replanner" in err and ("on plan" in err or "flat out" in err)
    d = json.loads(out.read_text())
    assert len(d["decisions"]) >= 2
    with pytest.raises(SystemExit, match="go with --deadline"):
        cli.main(
            ["run", "--carbon", "constant", "--value", "1", "--progress-file", "x", "--", "true"]
        )
