"""The live view: trial names survive rich's markup, it fits an 80x24 terminal, it re-renders on a
timer, and it shows the shared stage being computed (events from the real stage store)."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

from rich.console import Console

from harness.progress import GridProgress
from harness.stages import StageStore
from harness.trial import Plugin, Trial


def _trials(n: int) -> list[Trial]:
    return [
        Trial(
            "x",
            "uniform",
            Plugin("d"),
            Plugin("b"),
            Plugin("uniform", {"k": k}),
            0,
            {},
            hash=f"{k:016x}",
            name=f"uniform[k={k}]",
        )
        for k in range(1, n + 1)
    ]


def _screen(progress: GridProgress, console: Console) -> str:
    console.print(progress.render())
    return console.export_text()


def test_names_with_brackets_are_shown_not_read_as_markup():
    console = Console(record=True, width=80, height=24, force_terminal=True)
    progress = GridProgress(_trials(2), console=console, enabled=False)
    progress.started(f"{1:016x}")
    progress.finished(f"{2:016x}", {"top1_pct": 50.0})
    text = _screen(progress, console)
    assert "uniform[k=1]" in text and "uniform[k=2]" in text


def test_a_35_trial_grid_fits_80x24_with_running_recent_and_counts():
    console = Console(record=True, width=80, height=24, force_terminal=True)
    trials = _trials(35)
    progress = GridProgress(trials, console=console, enabled=False)
    for trial in trials[:12]:
        progress.started(trial.hash)
    for trial in trials[:9]:
        progress.finished(trial.hash, {"top1_pct": 50.0, "gflops_per_video_mean": 1.0})
    progress.failed(trials[9].hash, "ValueError: boom")
    lines = _screen(progress, console).rstrip("\n").splitlines()
    assert len(lines) <= 23
    assert lines[0].startswith("9 done, 2 running, 1 failed, 23 pending")
    text = "\n".join(lines)
    assert "uniform[k=11]" in text and "uniform[k=12]" in text  # running
    assert "failed uniform[k=10]: ValueError: boom" in text and "done uniform[k=9]" in text  # the last finished
    assert "uniform[k=1] " not in text.replace("uniform[k=1]\n", "")  # older finished ones make room
    crowded = GridProgress(trials, console=console, enabled=False)
    for trial in trials:
        crowded.started(trial.hash)
    lines = crowded.lines(23)
    listed = [line for line in lines if line.startswith("  uniform")]
    assert len(lines) == 23 and lines[-1] == f"  ... and {35 - len(listed)} more running" and len(listed) == 20


def test_the_view_rerenders_on_a_timer_without_trial_events():
    out = io.StringIO()
    console = Console(file=out, width=80, height=24, force_terminal=True)
    with GridProgress(_trials(3), console=console):
        time.sleep(2.4)  # no event at all: the stage of a heavy classifier training, say
    assert "elapsed 2s" in out.getvalue()


def test_the_shared_stage_being_computed_is_shown(tmp_path: Path):
    store = StageStore(tmp_path / "stages")
    release, computing = threading.Event(), threading.Event()

    def compute(out: Path) -> None:
        computing.set()
        release.wait(30)
        (out / "x").write_text("1")

    progress = GridProgress(_trials(1), enabled=False, store_root=store.root)
    worker = threading.Thread(target=store.get_or_compute, args=("heavy_classifier", {"a": 1}, compute))
    worker.start()
    try:
        assert computing.wait(30)
        lines = progress.lines(23)
        shown = [line for line in lines if line.startswith("[cyan]stage[/cyan] heavy_classifier")]
        assert len(shown) == 1 and "computing" in shown[0], lines
    finally:
        release.set()
        worker.join()
    assert not any("heavy_classifier" in line for line in progress.lines(23))
