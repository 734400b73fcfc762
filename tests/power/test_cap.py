"""power.cap: validation, exact restore on every way out (in-process and in real subprocesses
killed by signals), the journal, and the software fallback."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from greenops import power
from greenops.power import journal, nvml
from greenops.power.simulated import SimulatedDevice


def test_restores_the_previous_limit_not_the_maximum(fake_nvml):
    d = nvml.visible_devices()[1]  # the user had 650 W, max is 700 W
    with power.cap(400, [d]) as c:
        assert d.limit_w() == 400 and c.applied_mode == "hardware"
        assert len(journal.entries()) == 1
    assert d.limit_w() == 650
    assert journal.entries() == []


def test_restores_on_exception_and_nested_in_order(fake_nvml):
    d = nvml.visible_devices()[0]
    with pytest.raises(ZeroDivisionError):
        with power.cap(500, [d]):
            with power.cap(300, [d]):
                assert d.limit_w() == 300
            assert d.limit_w() == 500
            raise ZeroDivisionError
    assert d.limit_w() == 700
    assert [w for _, w in fake_nvml.writes] == [500_000, 300_000, 500_000, 700_000]


def test_decorator_and_fraction_of_default(fake_nvml):
    d = nvml.visible_devices()[0]

    @power.cap(0.5, [d])
    def work():
        return d.limit_w()

    assert work() == 350.0 and d.limit_w() == 700.0


def test_out_of_range_is_refused_before_any_change(fake_nvml):
    devs = nvml.visible_devices()
    with pytest.raises(power.InvalidLimit, match=r"150 W is outside .*\[200, 700\]"):
        with power.cap(150, devs):
            pass
    assert fake_nvml.writes == [] and journal.entries() == []


def test_no_permission_hardware_raises_auto_falls_back_to_governor(fake_nvml):
    fake_nvml.root = False
    devs = nvml.visible_devices()
    with pytest.raises(power.NoPermission, match="CAP_SYS_ADMIN"):
        with power.cap(300, devs, mode="hardware"):
            pass
    with pytest.warns(RuntimeWarning, match="software governor"):
        with power.cap(300, devs, mode="auto") as c:
            assert c.applied_mode == "software" and c.governor is not None
            assert c.governor.budget_w == {d.uuid: 300.0 for d in devs}
    assert journal.entries() == [] and [d.limit_w() for d in devs] == [700, 650]


def test_failed_restore_keeps_the_journal_entry(fake_nvml):
    d = nvml.visible_devices()[0]
    with power.cap(300, [d]):
        fake_nvml.gpus[0].lost = True
    assert len(journal.entries()) == 1  # kept for `greenops power restore`
    fake_nvml.gpus[0].lost = False


# --- real processes on a simulated device: the state file plays the driver -----------------

CHILD = textwrap.dedent("""
    import signal, sys, time
    import greenops.power as p
    if sys.argv[1] == "handler":
        def mine(signum, frame):
            print("own handler ran", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, mine)
    with p.cap(150):
        print("capped", p.devices()[0].limit_w(), flush=True)
        time.sleep(60)
""")


def _start_child(tmp_path, mode="plain"):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "GREENOPS_SIMULATE": "v100-resnet50"}
    proc = subprocess.Popen(
        [sys.executable, str(script), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline().strip() == "capped 150.0"
    return proc, env


def _device():
    return SimulatedDevice("v100-resnet50")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_restore_in_a_real_process(tmp_path, sig):
    proc, _ = _start_child(tmp_path)
    assert _device().limit_w() == 150
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert _device().limit_w() == 250
    assert journal.entries() == []


def test_sigterm_chains_the_programs_own_handler(tmp_path):
    proc, _ = _start_child(tmp_path, "handler")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 3
    assert "own handler ran" in proc.stdout.read()
    assert _device().limit_w() == 250


def test_sigkill_then_greenops_power_restore(tmp_path):
    proc, env = _start_child(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert _device().limit_w() == 150  # nothing could run at SIGKILL
    (entry,) = journal.entries()
    assert entry["previous_limit_w"] == 250 and entry["pid"] == proc.pid
    out = subprocess.run(
        [sys.executable, "-m", "greenops", "power", "restore"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "restored SIM-v100-resnet50-0 to 250 W" in out.stdout
    assert _device().limit_w() == 250 and journal.entries() == []


def test_sigkill_is_repaired_by_the_next_start(tmp_path, monkeypatch):
    proc, _ = _start_child(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    monkeypatch.setenv("GREENOPS_SIMULATE", "v100-resnet50")
    import greenops.power.caps as cap_mod

    monkeypatch.setattr(cap_mod, "_restored_stale", False)
    with power.cap(200):
        # the dead process's 150 W was first put back to 250 W, then this cap set 200 W
        assert power.devices()[0].limit_w() == 200
        assert [e["previous_limit_w"] for e in journal.entries()] == [250]
    assert power.devices()[0].limit_w() == 250 and journal.entries() == []


def test_interpreter_exit_restores_and_journal_is_private(tmp_path):
    script = tmp_path / "exit.py"
    script.write_text(
        textwrap.dedent("""
        import os, stat, sys
        import greenops.power as p
        from greenops.power import journal
        p.cap(175).__enter__()  # never exited: atexit must restore
        mode = stat.S_IMODE(os.stat(journal.journal_path()).st_mode)
        print(p.devices()[0].limit_w(), oct(mode), flush=True)
        sys.exit(0)
    """)
    )
    env = {**os.environ, "GREENOPS_SIMULATE": "v100-resnet50"}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["175.0", "0o600"]
    assert _device().limit_w() == 250 and journal.entries() == []


def test_a_failure_on_one_device_puts_the_others_back(fake_nvml):
    from greenops.power.fake_nvml import NVML_ERROR_GPU_IS_LOST

    devs = nvml.visible_devices()
    original = devs[1].limit_w()
    fake_nvml.gpus[1].fail_writes_with = NVML_ERROR_GPU_IS_LOST
    with pytest.raises(power.GpuLost):
        with power.cap(400, devs):
            pass
    assert devs[0].limit_w() == 700 and devs[1].limit_w() == original
    assert [w for _, w in fake_nvml.writes] == [400_000, 700_000]
    assert journal.entries() == []
