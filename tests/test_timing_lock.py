"""Latency measurements on one machine never overlap: two processes that reach the timing lock at
the same moment (a barrier) run their measurements one after the other."""

import multiprocessing
import os
import time

from harness.timing_lock import EXCLUSIVE, exclusive_timing


def measure(name, lock, log, barrier):
    barrier.wait()
    with exclusive_timing(lock) as facts:
        with open(log, "a") as f:
            f.write(f"enter {name} {facts['latency_timing'] == EXCLUSIVE}\n")
        time.sleep(0.3)  # a measurement long enough for the other process to try the lock meanwhile
        with open(log, "a") as f:
            f.write(f"exit {name}\n")


def test_two_concurrent_measurements_do_not_overlap(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(3)
    log = tmp_path / "log"
    workers = [
        context.Process(target=measure, args=(name, tmp_path / "timing.lock", log, barrier)) for name in ("a", "b", "c")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    events = log.read_text().split("\n")[:-1]
    assert len(events) == 6
    for enter, leave in zip(events[::2], events[1::2]):  # every enter is followed by the same process's exit
        name = enter.split()[1]
        assert enter == f"enter {name} True" and leave == f"exit {name}", events


def test_lock_unavailable_is_recorded_not_fatal(tmp_path):
    with exclusive_timing(tmp_path / "missing-folder" / "timing.lock") as facts:
        pass
    assert facts["latency_timing"].startswith("shared: timing lock unavailable")
    assert os.listdir(tmp_path) == []
