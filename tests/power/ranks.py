"""Runs a worker script as two real processes (ranks 0 and 1 of a gloo group) on two simulated
devices; each prints one JSON line last, which comes back per rank."""

import json
import os
import subprocess
import sys


def run_two_ranks(worker: str, tmp_path) -> list[dict]:
    """`worker` gets argv [rank, rendezvous file]; its state dir is tmp_path/state."""
    script = tmp_path / "worker.py"
    script.write_text(worker)
    env = {
        **os.environ,
        "GREENOPS_SIMULATE": "v100-resnet50",
        "GREENOPS_SIMULATE_COUNT": "2",
        "GREENOPS_STATE_DIR": str(tmp_path / "state"),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), str(tmp_path / "rdv")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for r in (0, 1)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs
