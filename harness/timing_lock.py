"""A machine-wide lock held while a trial measures latency, so that trials sharing a node (Ray
workers, several ``skimbench run`` processes) time one at a time instead of slowing each other
down. The lock is an ``flock`` on a file in this machine's temporary folder, named after the
host, so that nodes sharing a network /tmp still lock per node. The kernel releases it when its
holder dies, so a crashed trial never blocks the others.

The lock serialises latency measurements only: another trial may still be training on the same
cores meanwhile. ``harness.trial`` records how each latency was measured (tag ``latency_timing``)
and the report says so next to its latency figures.
"""

from __future__ import annotations

import fcntl
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

EXCLUSIVE = "exclusive: one latency measurement at a time on this machine"


def lock_path() -> Path:
    return Path(tempfile.gettempdir()) / f"skimbench-timing-{socket.gethostname()}.lock"


@contextmanager
def exclusive_timing(path: Path | None = None) -> Iterator[dict[str, str]]:
    """Hold the machine's timing lock for the body; yields the facts to record: ``latency_timing``
    (``EXCLUSIVE``, or why the lock could not be taken) and ``latency_lock_wait_s``."""
    path = lock_path() if path is None else path
    started = time.perf_counter()
    try:
        handle = open(path, "a")
    except OSError as exc:  # an unwritable temporary folder: time anyway, and say so
        yield {"latency_timing": f"shared: timing lock unavailable ({exc.strerror})", "latency_lock_wait_s": "0"}
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield {"latency_timing": EXCLUSIVE, "latency_lock_wait_s": f"{time.perf_counter() - started:.2f}"}
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
