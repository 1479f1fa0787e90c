"""Run an expanded grid: skip what already finished, open the parent run, hand the rest to a launcher.

Before launching, finished trials of the same experiment are looked up by trial hash in MLflow and
skipped (resume). The rest becomes a plan (``harness.plan``: the shared stages the trials declare,
each once, and the trials each unblocks). The launcher is ``harness.launchers.ray.RayLauncher`` (default) or
``harness.launchers.local.LocalLauncher`` (``--local``); both run every trial through the same
``harness.launchers.execute``, so ``--local`` gives the same metrics as Ray for the same seed.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness import tracking, unrecorded
from harness import trial_claims as claims
from harness.grid import spec_hash
from harness.launchers import LaunchContext, Launcher
from harness.plan import build_plan
from harness.progress import GridProgress
from harness.stages import stage_spans
from harness.trial import Trial


@dataclass
class GridOutcome:
    experiment: str
    parent_run_id: str | None  # None when every trial was skipped (no empty parent run)
    tracking_uri: str
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    elsewhere: dict[str, str] = field(default_factory=dict)  # hash -> the live launch that claimed it
    unrecorded: dict[str, str] = field(default_factory=dict)  # hash -> error: MLflow refused its run earlier
    unrecorded_folder: str = ""

    def summary(self) -> list[str]:
        """The lines ``skimbench run`` prints when the grid is done."""
        lines = [
            f"skimbench: {len(self.finished)} finished, {len(self.failed)} failed, "
            f"{len(self.skipped)} skipped (already finished) in {self.seconds:.0f}s"
            + (f"; parent run {self.parent_run_id}" if self.parent_run_id else "")
        ]
        lines += [f"  FAILED {h}: {error}" for h, error in self.failed.items()]
        if self.elsewhere:
            lines.append(
                f"skimbench: {len(self.elsewhere)} skipped: running in another launch "
                f"({', '.join(sorted(set(self.elsewhere.values())))})"
            )
        if self.unrecorded:
            lines.append(
                f"skimbench: {len(self.unrecorded)} skipped: their MLflow run could not be created or "
                f"closed, see the records in {self.unrecorded_folder}; --rerun-failed runs them again"
            )
            lines += [f"  UNRECORDED {h}: {error}" for h, error in self.unrecorded.items()]
        return [line.encode("utf-8", "backslashreplace").decode("utf-8") for line in lines]


def select_trials(
    trials: Sequence[Trial], previous: dict[str, str], *, force: bool, rerun_failed: bool
) -> tuple[list[Trial], list[str]]:
    """Split into (to run, skipped hashes). FINISHED is skipped; FAILED and TIMEOUT only rerun with
    ``rerun_failed``; interrupted ones (RUNNING, KILLED: a killed driver or worker) rerun; ``force`` runs all."""
    to_run, skipped = [], []
    for trial in trials:
        status = previous.get(trial.hash)
        done = status == "FINISHED" or (status in ("FAILED", "TIMEOUT") and not rerun_failed)
        if done and not force:
            skipped.append(trial.hash)
        else:
            to_run.append(trial)
    return to_run, skipped


def make_launcher(spec: Any, *, local: bool, address: str | None) -> Launcher:
    if local:
        from harness.launchers.local import LocalLauncher  # noqa: PLC0415 - Ray is not imported for --local

        return LocalLauncher()
    from harness.launchers.ray import RayLauncher  # noqa: PLC0415 - importing Ray takes seconds

    return RayLauncher(spec, address)


def run_grid(
    spec: Any,
    trials: Sequence[Trial],
    *,
    local: bool = False,
    address: str | None = None,
    force: bool = False,
    rerun_failed: bool = False,
    plugins: Sequence[str] = (),
    show_progress: bool = True,
) -> GridOutcome:
    started = time.time()
    output = Path(spec.output).resolve()
    uri = tracking.resolve_uri(spec.tracking["uri"])
    experiment = spec.tracking["experiment"]
    with claims.store_lock(uri):  # one launch at a time creates a fresh store (its schema migration)
        experiment_id = tracking.ensure_experiment(uri, experiment, artifact_root=output / "mlartifacts")

    # Claim first, then read what finished: a trial a concurrent launch finished is seen as finished.
    claimed, elsewhere = claims.claim(output / "claims", [trial.hash for trial in trials])
    try:
        return _run_claimed(
            spec,
            [trial for trial in trials if trial.hash not in elsewhere],
            elsewhere,
            uri=uri,
            experiment_id=experiment_id,
            local=local,
            address=address,
            force=force,
            rerun_failed=rerun_failed,
            plugins=plugins,
            show_progress=show_progress,
            started=started,
        )
    finally:
        claims.release(output / "claims", claimed)


def _run_claimed(
    spec: Any,
    trials: Sequence[Trial],
    elsewhere: dict[str, str],
    *,
    uri: str,
    experiment_id: str,
    local: bool,
    address: str | None,
    force: bool,
    rerun_failed: bool,
    plugins: Sequence[str],
    show_progress: bool,
    started: float,
) -> GridOutcome:
    output = Path(spec.output).resolve()
    experiment = spec.tracking["experiment"]
    previous = tracking.finished_trials(uri, experiment)
    refused = unrecorded.read(output / "unrecorded")
    for h in refused:  # not retried silently on every resume: FAILED, as far as resuming goes
        if previous.get(h) != "FINISHED":
            previous[h] = "FAILED"
    to_run, skipped = select_trials(trials, previous, force=force, rerun_failed=rerun_failed)
    outcome = GridOutcome(experiment, None, uri, elsewhere=elsewhere, unrecorded_folder=str(output / "unrecorded"))
    outcome.unrecorded = {h: refused[h] for h in skipped if h in refused and previous[h] == "FAILED"}
    outcome.skipped = [h for h in skipped if h not in outcome.unrecorded]
    if not to_run:
        outcome.seconds = time.time() - started
        return outcome
    # runs of these trials left RUNNING by a launch that died (its claims are gone): closed, once
    tracking.abandon_running(uri, experiment_id, [t.hash for t in to_run], "WORKER_LOST")
    parent = tracking.start_parent(uri, experiment_id, experiment, Path(spec.path), spec_hash(spec), len(to_run))
    outcome.parent_run_id = parent
    context = LaunchContext(
        uri,
        experiment_id,
        parent,
        str(output / "stages"),
        tuple(str(Path(p).resolve()) for p in plugins),
        str(output / "unrecorded"),
    )
    context.load_plugins()
    launcher = make_launcher(spec, local=local, address=address)
    progress = GridProgress(to_run, skipped=len(skipped), enabled=show_progress, store_root=output / "stages")
    status = "KILLED"
    try:
        launcher.start(context)  # Ray: workers start while the plan is built
        plan = build_plan(to_run, context.store_root)  # stages already in the store are not scheduled again
        with progress:
            launched = launcher.launch(plan, context, progress)
        outcome.finished = list(launched.finished)
        outcome.failed = dict(launched.failed)
        status = "FAILED" if outcome.failed else "FINISHED"
    finally:
        log_stage_spans(uri, parent, context.store_root, started)
        tracking.end_run(uri, parent, status)
        outcome.seconds = time.time() - started
    return outcome


def log_stage_spans(uri: str, parent_run_id: str, store_root: str, since: float) -> None:
    """The stages computed during this launch (who, when), as the parent run's ``schedule_stages.json``:
    with the trials' schedule metrics, the report draws the workers' timeline from it."""
    with tempfile.TemporaryDirectory(prefix="skimbench-schedule-") as tmp:
        (Path(tmp) / "schedule_stages.json").write_text(json.dumps(stage_spans(store_root, since), indent=1))
        tracking.log_files(uri, parent_run_id, Path(tmp))
