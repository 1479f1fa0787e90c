"""The local launcher: the plan in this process, in order (``skimbench run --local``): each stage once,
by priority, then the trials; a trial whose stage failed is recorded with that stage's traceback."""

from __future__ import annotations

import time
import traceback
from typing import Any

from harness.launchers import LaunchContext, Launched, TrialFailed, TrialTimeout, execute, record_blocked, stage_error
from harness.plan import Plan, run_stage


class LocalLauncher:
    def start(self, context: LaunchContext) -> None:
        """Nothing to start: the plan runs in this process."""

    def launch(self, plan: Plan, context: LaunchContext, progress: Any) -> Launched:
        """Each stage through ``run_stage``, then each trial through ``execute``, retried up to
        ``max_failures`` times (as Ray does); a timed-out trial is not retried."""
        launched = Launched()
        context.load_plugins()
        broken: dict[str, tuple[str, str]] = {}  # stage key -> (one line, traceback)
        for key in plan.order():
            stage = plan.stages[key]
            if stage.after & broken.keys():
                broken[key] = broken[next(iter(stage.after & broken.keys()))]
                continue
            try:
                run_stage(plan.representative(key), key, context.store_root)
            except Exception as exc:  # noqa: BLE001 - fails its dependents, the rest goes on
                broken[key] = (stage_error(stage.name, key, exc), traceback.format_exc())
        for trial in plan.trials:
            failed_stage = next((k for k in plan.needs.get(trial.hash, []) if k in broken), None)
            if failed_stage is not None:
                error = record_blocked(trial, context, *broken[failed_stage])
                launched.failed[trial.hash] = error
                progress.failed(trial.hash, error)
                continue
            progress.started(trial.hash)
            ready = time.time()
            error = ""
            for attempt in range(1 + int(trial.max_failures or 0)):
                if attempt:
                    progress.retrying(trial.hash)
                try:
                    metrics = execute(trial, context, ready_at=ready)
                except TrialTimeout as exc:
                    error = str(exc)
                    break
                except TrialFailed as exc:
                    error = str(exc)
                else:
                    launched.finished[trial.hash] = metrics
                    progress.finished(trial.hash, metrics)
                    break
            if trial.hash not in launched.finished:
                launched.failed[trial.hash] = error
                progress.failed(trial.hash, error)
        return launched
