"""Running trials: ``execute(trial)`` -- the one entry point -- and the launchers that schedule it.

``execute`` reads top to bottom: ``tracking.start`` opens the trial's MLflow run, ``run_trial``
runs it (in this process, or with a ``timeout_s`` in a child process killed when time is up), and
``tracking.record`` closes the run with its outcome. A launcher (``harness.launchers.local``:
the plan in order in this process; ``harness.launchers.ray``: the plan as Ray tasks, on one machine or a
cluster) takes the trials to run and reports each one's fate, as hydra's launcher plugins do.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness import tracking, unrecorded
from harness.hashing import source_file
from harness.registry import BACKBONES, DATASETS, METHODS, load_plugin_file
from harness.stages import StageStore
from harness.trial import Trial, TrialResult, run_trial


class TrialFailed(RuntimeError):
    """Raised after a failed trial was recorded in MLflow, so the scheduler may retry it."""


class TrialTimeout(TrialFailed):
    """A trial stopped by its timeout: recorded, reported, not retried (it would only time out again)."""


class LaunchError(RuntimeError):
    """A grid that cannot start (no GPU for a GPU trial, unreachable cluster...): one clear line."""


@dataclass(frozen=True)
class LaunchContext:
    """What every trial needs besides itself; passed to Ray workers and child processes by value."""

    uri: str
    experiment_id: str
    parent_run_id: str | None
    store_root: str
    plugins: tuple[str, ...] = ()
    unrecorded_root: str = ""  # where a trial whose MLflow run fails is recorded (harness.unrecorded)

    def load_plugins(self) -> None:
        for plugin in self.plugins:
            load_plugin_file(plugin)


@dataclass
class Launched:
    """What a launcher reports: trial hash -> its metrics (finished) or its one-line error (failed)."""

    finished: dict[str, dict[str, float]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class Launcher(Protocol):
    def start(self, context: LaunchContext) -> None:
        """Called before the plan is built: start what the launch will need (workers), without waiting."""
        ...

    def launch(self, plan: Any, context: LaunchContext, progress: Any) -> Launched:
        """Run the plan (``harness.plan.Plan``): each stage once, then every trial through ``execute``
        (retrying up to ``trial.max_failures`` times), feeding
        ``progress.started/finished/failed/retrying(trial_hash, ...)``."""
        ...


def execute(
    trial: Trial, context: LaunchContext, extra_tags: dict[str, str] | None = None, ready_at: float | None = None
) -> dict[str, float]:
    """Run one trial inside its own MLflow run; return its metrics, or raise ``TrialFailed`` (recorded).

    The schedule metrics: ``sched_start``/``sched_end`` (epoch seconds), ``sched_run_s`` (this call),
    ``sched_stage_wait_s`` (computing or waiting for stages not yet in the store), and with
    ``ready_at`` (when its stages were done) ``sched_queue_wait_s`` (until it started)."""
    begun = time.time()
    context.load_plugins()
    name = f"{trial.name or trial.label} {trial.hash[:8]}"
    try:
        run_id = tracking.start(
            trial,
            uri=context.uri,
            experiment_id=context.experiment_id,
            parent_run_id=context.parent_run_id,
            extra_tags=extra_tags,
            sources=sources(trial),
        )
    except Exception as exc:  # the store refused the run: keep a record in the output folder instead
        raise _unrecorded(trial, context, name, "cannot create its MLflow run", exc) from exc
    try:
        result = _run(trial, context)
    except _Stopped as stop:
        tracking.record(context.uri, run_id, stop.outcome, error=stop.error, details=stop.details)
        kind = TrialTimeout if stop.outcome == "TIMEOUT" else TrialFailed
        raise kind(f"{name}: {stop.error}") from None
    except BaseException as exc:  # recorded, then re-raised for the launcher's retry policy
        outcome = classify(exc)
        error = f"{type(exc).__name__}: {exc}"
        tracking.record(context.uri, run_id, outcome, error=error, details=traceback.format_exc())
        if isinstance(exc, Exception):
            raise TrialFailed(f"{name}: {error}") from exc
        raise
    ended = time.time()
    result.metrics.update(
        {"sched_start": begun, "sched_end": ended, "sched_run_s": ended - begun, "sched_pid": float(os.getpid())}
    )
    if ready_at is not None:
        result.metrics["sched_queue_wait_s"] = max(0.0, begun - ready_at)
    try:
        tracking.record(context.uri, run_id, "FINISHED", result=result)
    except Exception as exc:  # noqa: BLE001 - the metrics go into the record rather than being lost
        raise _unrecorded(trial, context, name, f"cannot record its result {result.metrics}", exc) from exc
    if context.unrecorded_root:
        unrecorded.remove(Path(context.unrecorded_root), trial.hash)
    return result.metrics


def _unrecorded(trial: Trial, context: LaunchContext, name: str, what: str, exc: Exception) -> TrialFailed:
    """Write the fallback record of a trial MLflow refused; the error for the launcher (it fails the trial)."""
    error = f"{what}: {type(exc).__name__}: {exc}"
    if context.unrecorded_root:
        where = unrecorded.write(Path(context.unrecorded_root), trial.to_dict(), error, traceback.format_exc())
        error += f" (recorded in {where})"
    return TrialFailed(f"{name}: {error}")


def stage_error(name: str, key: str, exc: BaseException) -> str:
    """The one line a trial records when a stage it needs failed."""
    return f"stage {name} {key[:10]} failed: {type(exc).__name__}: {exc}"


def record_blocked(trial: Trial, context: LaunchContext, error: str, details: str) -> str:
    """Record a trial that cannot run because a stage it needs failed: its run holds the stage's
    traceback. Returns the trial's one-line error."""
    context.load_plugins()
    run_id = tracking.start(
        trial,
        uri=context.uri,
        experiment_id=context.experiment_id,
        parent_run_id=context.parent_run_id,
        sources=sources(trial),
    )
    tracking.record(context.uri, run_id, "ERROR", error=error, details=details)
    return f"{trial.name or trial.label} {trial.hash[:8]}: {error}"


def classify(exc: BaseException) -> str:
    """The outcome of a trial that raised: KILLED (interrupted), OOM (out of memory) or ERROR."""
    if isinstance(exc, KeyboardInterrupt):
        return "KILLED"
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return "OOM"
    return "ERROR"


def sources(trial: Trial) -> list[Path]:
    """The source files of the trial's method, backbone and dataset plugins (logged with the run)."""
    classes = (METHODS.get(trial.method.name), BACKBONES.get(trial.backbone.name), DATASETS.get(trial.dataset.name))
    return sorted({path for path in map(source_file, classes) if path is not None})


class _Stopped(Exception):
    """The trial's child process was stopped (timeout), died, or reported an error."""

    def __init__(self, outcome: str, error: str, details: str = ""):
        super().__init__(error)
        self.outcome, self.error, self.details = outcome, error, details


def _run(trial: Trial, context: LaunchContext) -> TrialResult:
    """``run_trial`` here, or with a ``timeout_s`` in a child process that is SIGKILLed when time is up."""
    if not trial.timeout_s:
        return _run_here(trial, context)
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    child = spawn.Process(target=_child, args=(trial, context, results), daemon=True)
    child.start()
    deadline = time.monotonic() + float(trial.timeout_s)
    message = None
    while message is None:  # read before joining: a large result would block the child's exit
        try:
            message = results.get(timeout=0.2)
        except queue.Empty:
            if time.monotonic() >= deadline:  # a timeout that really stops the trial, whatever it is doing
                child.kill()
                child.join()
                raise _Stopped(
                    "TIMEOUT",
                    f"TIMEOUT after {trial.timeout_s:g} s",
                    f"TIMEOUT: the trial exceeded timeout_s = {trial.timeout_s:g} s and its process was killed\n",
                ) from None
            if not child.is_alive() and results.empty():
                child.join()
                raise _Stopped("CRASHED", f"trial process died (exit code {child.exitcode})") from None
    child.join()
    kind, payload = message
    if kind == "error":
        raise _Stopped(*payload)
    return payload


def _run_here(trial: Trial, context: LaunchContext) -> TrialResult:
    store = StageStore(context.store_root)
    with tempfile.TemporaryDirectory(prefix="skimbench-trial-") as work:
        result = run_trial(trial, store, Path(work), log=lambda msg: None)
    result.metrics["sched_stage_wait_s"] = store.waited_s
    return result


def _child(trial: Trial, context: LaunchContext, results: Any) -> None:
    _die_with_parent()
    context.load_plugins()
    try:
        result = _run_here(trial, context)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which records it
        results.put(("error", (classify(exc), f"{type(exc).__name__}: {exc}", traceback.format_exc())))
    else:
        results.put(("ok", result))


def _die_with_parent() -> None:
    """Linux: SIGKILL this trial process when its parent (a Ray worker) dies, so no orphan logs on."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
