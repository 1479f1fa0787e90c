"""The local launcher: trials one after another in this process (``skimbench run --local``)."""
from __future__ import annotations

from typing import Any, Sequence

from harness.launchers import LaunchContext, Launched, TrialFailed, TrialTimeout, execute
from harness.trial import Trial


class LocalLauncher:
    def launch(self, trials: Sequence[Trial], context: LaunchContext, progress: Any) -> Launched:
        """Each trial through ``execute``, retried up to ``max_failures`` times (as Ray does); a
        timed-out trial is not retried."""
        launched = Launched()
        for trial in trials:
            progress.started(trial.hash)
            error = ""
            for attempt in range(1 + int(trial.max_failures or 0)):
                if attempt:
                    progress.retrying(trial.hash)
                try:
                    metrics = execute(trial, context)
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
