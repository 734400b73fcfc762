"""The cap journal: every power-limit change is recorded here before it is made, so that the
limits of a process killed hard (SIGKILL, OOM killer, power loss of the host excepted) can be
put back by `greenops power restore` or by the next process that starts the runtime. An entry
is removed only once its limit has been restored."""

from __future__ import annotations

import logging
import os
import time

from .state import locked, read, state_dir

log = logging.getLogger("greenops.power")


def journal_path() -> str:
    """$GREENOPS_POWER_JOURNAL, else power-journal.json in the state directory."""
    return os.environ.get("GREENOPS_POWER_JOURNAL") or os.path.join(
        state_dir(), "power-journal.json"
    )


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: a PID is reused, this pair is not."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    now = _proc_start(pid)
    return now is None or start is None or now == start


def record(device_spec: dict, uuid: str, previous_w: float, new_w: float) -> int:
    """Appends an entry before a change; returns its id."""
    pid = os.getpid()
    with locked(journal_path()) as j:
        j.setdefault("entries", [])
        j["next_id"] = entry_id = j.get("next_id", 0) + 1
        j["entries"].append(
            {
                "id": entry_id,
                "pid": pid,
                "proc_start": _proc_start(pid),
                "uuid": uuid,
                "device": device_spec,
                "previous_limit_w": previous_w,
                "new_limit_w": new_w,
                "time": time.time(),
            }
        )
    return entry_id


def remove(entry_ids: list[int]) -> None:
    ids = set(entry_ids)
    with locked(journal_path()) as j:
        j["entries"] = [e for e in j.get("entries", []) if e["id"] not in ids]


def entries() -> list[dict]:
    return list(read(journal_path()).get("entries", []))


def stale_entries() -> list[dict]:
    """Entries of processes that no longer exist."""
    return [e for e in entries() if not _alive(e["pid"], e.get("proc_start"))]


def restore(entries_to_restore: list[dict], device_from_spec) -> list[dict]:
    """Puts back the limits these entries changed, newest first, so that each device ends at
    the limit it had before the oldest change. Entries are removed only for devices whose
    restore succeeded; returns the entries restored."""
    done, failed_uuids = [], set()
    for e in sorted(entries_to_restore, key=lambda e: e["id"], reverse=True):
        if e["uuid"] in failed_uuids:
            continue
        try:
            device_from_spec(e["device"]).set_limit_w(e["previous_limit_w"])
            done.append(e)
        except Exception as err:  # keep the entry: a later restore may succeed
            failed_uuids.add(e["uuid"])
            log.error("could not restore %s to %g W: %s", e["uuid"], e["previous_limit_w"], err)
    remove([e["id"] for e in done])
    return done
