"""The Ray launcher: the trials as one Ray Tune grid, on this machine or a cluster (the default).

Each Tune trial calls ``harness.launchers.execute`` with the trial (as ``Trial.to_dict()``: what
travels through Ray) and the facts of the worker it landed on. Tune retries a failed trial up to
``max_failures`` times; a timed-out one is reported as a result, so Tune does not retry it. The
cluster is checked first for the GPUs and CPUs a trial asks for (it would otherwise pend forever).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import ray
import ray._private.services as ray_services
from ray import tune

from harness import tracking
from harness.launchers import LaunchContext, Launched, LaunchError, TrialTimeout, execute
from harness.trial import Trial

os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # trials resolve paths against the launch folder
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


class RayLauncher:
    def __init__(self, spec: Any, address: str | None = None):
        self.spec = spec
        self.address = address

    def launch(self, trials: Sequence[Trial], context: LaunchContext, progress: Any) -> Launched:
        launched = Launched()
        if not trials:
            return launched
        spec = self.spec
        connect_ray(spec, self.address)
        cpus, gpus = float(spec.resources.get("cpus", 1)), float(spec.resources.get("gpus", 0))
        available = ray.cluster_resources()
        if gpus > 0 and available.get("GPU", 0) < gpus:
            raise LaunchError(f"the spec asks for {gpus:g} GPU per trial but the Ray cluster has "
                              f"{available.get('GPU', 0):g} GPUs; set resources.gpus: 0 or connect to a cluster "
                              "with GPUs (--address)")
        if available.get("CPU", 0) < cpus:
            raise LaunchError(f"the spec asks for {cpus:g} CPUs per trial but the Ray cluster has "
                              f"{available.get('CPU', 0):g}")

        trainable = tune.with_resources(tune.with_parameters(_trainable, context=context), {"cpu": cpus, "gpu": gpus})
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search([trial.to_dict() for trial in trials])},
            tune_config=tune.TuneConfig(max_concurrent_trials=spec.ray.get("max_concurrent"), reuse_actors=True,
                                        trial_dirname_creator=_dirname),
            run_config=tune.RunConfig(name=f"{spec.experiment}-{(context.parent_run_id or 'run')[:8]}",
                                      storage_path=str(Path(spec.output).resolve() / "ray"),
                                      failure_config=tune.FailureConfig(max_failures=int(spec.max_failures)),
                                      verbose=0, callbacks=[_ProgressCallback(progress)]),
        )
        for result in tuner.fit():
            h = result.config["trial"]["hash"]
            if result.error is not None:
                launched.failed[h] = _one_line(result.error)
            elif (result.metrics or {}).get("timed_out"):
                launched.failed[h] = result.metrics.get("error", "TIMEOUT")
            else:
                launched.finished[h] = dict(result.metrics or {})
        for trial in trials:
            if trial.hash not in launched.finished and trial.hash not in launched.failed:
                launched.failed[trial.hash] = "no result from Ray"
        for h in launched.failed:  # a worker that died on the last attempt left its run RUNNING
            tracking.abandon_running(context.uri, context.experiment_id, h, "WORKER_LOST")
        return launched


def connect_ray(spec: Any, address: str | None) -> None:
    address = address or spec.ray.get("address") or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return
    common = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="ERROR")
    try:
        if address:
            ray.init(address=address, **common)
        else:  # a local instance listens on loopback only (safe by default; tests/test_reliability.py)
            with _node_ip_stays_loopback():
                ray.init(num_cpus=spec.ray.get("num_cpus"), num_gpus=spec.ray.get("num_gpus"),
                         _node_ip_address="127.0.0.1", **common)
    except Exception as exc:  # noqa: BLE001
        raise LaunchError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from exc


@contextmanager
def _node_ip_stays_loopback() -> Iterator[None]:
    """Keep ``_node_ip_address="127.0.0.1"`` as given while a local instance starts.

    Ray (2.60) passes the node address through ``services.resolve_ip_for_localhost``, which turns
    127.0.0.1 into the machine's external address; the GCS, the raylet, the workers and the driver
    then listen on every interface and the runtime-env agent on that address, unauthenticated.
    With the node address really 127.0.0.1 every one of them binds loopback. Neither ``ray.init``
    nor ``ray start`` has an option for this (``ray start --node-ip-address`` resolves it the same
    way), and the environment switch that avoids it (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) is
    read once at import for the whole process, so it would also mislabel a driver that attaches
    to a real cluster. Hence this patch of Ray's private function, for the duration of the start only.
    """
    resolve = ray_services.resolve_ip_for_localhost
    ray_services.resolve_ip_for_localhost = lambda host: host
    try:
        yield
    finally:
        ray_services.resolve_ip_for_localhost = resolve


def _dirname(tune_trial: Any) -> str:
    return f"{tune_trial.config['trial']['method']['name']}-{tune_trial.config['trial']['hash']}"


def _trainable(config: dict, context: LaunchContext) -> None:
    runtime = ray.get_runtime_context()
    facts = {f"{tracking.TAG}ray_node": runtime.get_node_id(),
             f"{tracking.TAG}ray_gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
             f"{tracking.TAG}cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    try:
        metrics = execute(Trial.from_dict(config["trial"]), context, extra_tags=facts)
    except TrialTimeout as exc:  # reported as a result, so Tune does not retry it
        tune.report({"timed_out": 1.0, "error": str(exc)})
        return
    tune.report(dict(metrics))


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    for line in reversed(text):  # Ray wraps the cause; its last line names the real error
        if "TrialFailed" in line or "Error" in line:
            return line.strip()[:300]
    return (text[-1] if text else repr(error))[:300]


class _ProgressCallback(tune.Callback):
    """Feeds Ray Tune's trial events into the terminal progress view."""

    def __init__(self, progress: Any):
        self.progress = progress

    def __getstate__(self) -> dict:  # Tune pickles its callbacks for restore; the live view stays here
        return {}

    def __setstate__(self, state: dict) -> None:
        self.progress = None

    def on_trial_start(self, iteration, trials, trial, **info):
        if self.progress is not None:
            self.progress.started(trial.config["trial"]["hash"])

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.progress is None:
            return
        if result.get("timed_out"):
            self.progress.failed(trial.config["trial"]["hash"], str(result.get("error", "TIMEOUT")))
        else:
            self.progress.finished(trial.config["trial"]["hash"], result)

    def on_trial_error(self, iteration, trials, trial, **info):
        if self.progress is not None:
            error = getattr(trial, "error_msg", None) or "failed"
            self.progress.failed(trial.config["trial"]["hash"], _one_line(RuntimeError(str(error))))

    def on_trial_recover(self, iteration, trials, trial, **info):
        if self.progress is not None:
            self.progress.retrying(trial.config["trial"]["hash"])
