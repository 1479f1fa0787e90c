"""Launches that run at the same time: each trial is claimed before it runs, the store is created once.

A launch claims the trials it is about to run with one file per trial hash in
``OUTPUT/claims/`` (created with ``O_EXCL``, holding the owner's host, pid and process start
time) and removes its files when it ends. A trial claimed by a live launch is left to that launch;
a claim whose owner process is dead (same host, pid gone or reused) is taken over. Claiming and
take-over happen under an exclusive ``flock`` on ``OUTPUT/claims/.lock`` (released by the kernel if
the holder dies), so two launches never both decide a claim is theirs.

``store_lock`` serialises the creation of a SQLite tracking store: two first launches against a
fresh ``mlflow.db`` would otherwise both run MLflow's schema migration, and one fails with
"duplicate column name". Launches on other machines must share the output folder (or use
different ones and accept that both run a trial): see docs/reliability.md.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); waits for other holders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise first contact with a SQLite tracking store (its schema migration); other stores as is."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    with locked(Path(uri[len("sqlite:///") :] + ".lock")):
        yield


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart; "" elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, after the parenthesised command name


def _me() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}


def _alive(owner: dict) -> bool:
    """Whether the claim's owner still runs. Another host's process cannot be checked: assumed alive."""
    if owner.get("host") != socket.gethostname():
        return True
    pid = int(owner.get("pid", 0))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    return not owner.get("start") or owner["start"] == _start_time(pid)


def describe(owner: dict) -> str:
    return f"launch pid {owner.get('pid')} on {owner.get('host')}"


def claim(folder: Path, hashes: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Claim each trial hash for this process: (claimed, {hash: owner} of those a live launch holds)."""
    folder.mkdir(parents=True, exist_ok=True)
    mine, others = [], {}
    me = json.dumps(_me())
    with locked(folder / ".lock"):
        for h in hashes:
            path = folder / f"{h}.claim"
            owner = _owner(path)
            if owner is not None and _alive(owner):
                others[h] = describe(owner)
                continue
            path.unlink(missing_ok=True)  # no claim, or its owner died
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(me)
            mine.append(h)
    return mine, others


def release(folder: Path, hashes: Iterable[str]) -> None:
    """Remove this process's claims."""
    with locked(folder / ".lock"):
        for h in hashes:
            path = folder / f"{h}.claim"
            owner = _owner(path)
            if owner is not None and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
                path.unlink(missing_ok=True)


def _owner(path: Path) -> dict | None:
    """The owner written in a claim file; None if there is no (readable) claim."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
