"""Small state files shared between processes (the simulated device's "driver" state, the cap
journal): JSON, mode 0600, updated under an exclusive flock so concurrent processes never see
half a file."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator


def state_dir() -> str:
    """$GREENOPS_STATE_DIR, else $XDG_STATE_HOME/greenops, else ~/.local/state/greenops."""
    d = os.environ.get("GREENOPS_STATE_DIR")
    if not d:
        base = os.environ.get("XDG_STATE_HOME") or os.path.join(
            os.path.expanduser("~"), ".local", "state"
        )
        d = os.path.join(base, "greenops")
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


@contextlib.contextmanager
def locked(path: str) -> Iterator[dict]:
    """Yields the file's JSON (a dict; {} when absent) under an exclusive lock and writes it
    back (atomically: temp file + rename) when the block completes without error. No fsync:
    what must survive is a killed process, whose writes the OS keeps; a GPU's power limit
    does not survive a host crash either."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = read(path)
        before = json.dumps(data, sort_keys=True)
        yield data
        if json.dumps(data, sort_keys=True) != before:
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                json.dump(data, f, indent=1)
            os.replace(tmp, path)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
