"""Run an expanded grid: through Ray Tune (default) or in-process one after another (``--local``).

Each trial is ``harness.tracking.tracked_trial`` -- the same function on both paths, so ``--local``
gives the same metrics as Ray for the same seed. Before launching, finished trials of the same
experiment are looked up by trial hash in MLflow and skipped (resume), and the cluster is checked
for the GPUs the spec asks for (a trial asking for a GPU the cluster lacks would pend forever).
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness import tracking
from harness.grid import spec_hash
from harness.progress import GridProgress

os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # trials resolve paths against the launch folder
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


class TrialTimeout(tracking.TrialFailed):
    """A trial stopped by its timeout: recorded, reported, not retried (it would only time out again)."""


class LaunchError(RuntimeError):
    """A grid that cannot start (no GPU for a GPU trial, unreachable cluster...): one clear line."""


@dataclass
class GridOutcome:
    experiment: str
    parent_run_id: str
    tracking_uri: str
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class LaunchContext:
    """What every trial needs besides its config; passed to Ray workers by value."""

    uri: str
    experiment_id: str
    parent_run_id: str | None
    store_root: str
    plugins: tuple[str, ...] = ()

    def run(self, cfg: dict[str, Any], extra_tags: dict[str, str] | None = None) -> dict[str, float]:
        """Run one trial; with a ``timeout_s`` it runs in a child process that is killed when time is up."""
        self.load_plugins()
        timeout = cfg.get("timeout_s")
        if not timeout:
            return tracking.tracked_trial(cfg, uri=self.uri, experiment_id=self.experiment_id,
                                          parent_run_id=self.parent_run_id, store_root=self.store_root,
                                          log=lambda msg: None, extra_tags=extra_tags)
        run_id = tracking.create_trial_run(cfg, uri=self.uri, experiment_id=self.experiment_id,
                                           parent_run_id=self.parent_run_id, extra_tags=extra_tags)
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        child = ctx.Process(target=_trial_process, args=(self, cfg, run_id, results), daemon=True)
        child.start()
        child.join(float(timeout))
        if child.is_alive():  # a timeout that really stops the trial: SIGKILL, whatever it is doing
            child.kill()
            child.join()
            tracking.record_timeout(self.uri, run_id, float(timeout))
            raise TrialTimeout(f"{cfg['method']['name']} {cfg['hash'][:8]}: TIMEOUT after {timeout:g} s")
        try:
            kind, payload = results.get(timeout=5)
        except queue.Empty:
            tracking.abandon_running(self.uri, self.experiment_id, cfg["hash"], "CRASHED")
            raise tracking.TrialFailed(f"{cfg['method']['name']} {cfg['hash'][:8]}: trial process died (exit code {child.exitcode})")
        if kind == "error":
            raise tracking.TrialFailed(payload)
        return payload

    def load_plugins(self) -> None:
        from harness.registry import load_plugin_file

        for plugin in self.plugins:
            load_plugin_file(plugin)


def _trial_process(launch: LaunchContext, cfg: dict, run_id: str, results: Any) -> None:
    _die_with_parent()
    launch.load_plugins()
    try:
        metrics = tracking.tracked_trial(cfg, uri=launch.uri, experiment_id=launch.experiment_id,
                                         parent_run_id=launch.parent_run_id, store_root=launch.store_root,
                                         log=lambda msg: None, run_id=run_id)
    except tracking.TrialFailed as exc:
        results.put(("error", str(exc)))
    else:
        results.put(("ok", metrics))


def select_trials(trials: Sequence[dict], previous: dict[str, str], *, force: bool, rerun_failed: bool) -> tuple[list[dict], list[str]]:
    """Split into (to run, skipped). FINISHED is skipped; FAILED and TIMEOUT only rerun with
    ``rerun_failed``; interrupted ones (RUNNING, KILLED: a killed driver or worker) rerun; ``force`` runs all."""
    to_run, skipped = [], []
    for cfg in trials:
        status = previous.get(cfg["hash"])
        done = status == "FINISHED" or (status in ("FAILED", "TIMEOUT") and not rerun_failed)
        if done and not force:
            skipped.append(cfg["hash"])
        else:
            to_run.append(cfg)
    return to_run, skipped


def run_grid(spec: Any, trials: Sequence[dict], *, local: bool = False, address: str | None = None,
             force: bool = False, rerun_failed: bool = False, plugins: Sequence[str] = (), show_progress: bool = True) -> GridOutcome:
    started = time.time()
    output = Path(spec.output).resolve()
    uri = tracking.resolve_uri(spec.tracking["uri"])
    experiment = spec.tracking["experiment"]
    experiment_id = tracking.ensure_experiment(uri, experiment, artifact_root=output / "mlartifacts")

    previous = tracking.finished_trials(uri, experiment)
    to_run, skipped = select_trials(trials, previous, force=force, rerun_failed=rerun_failed)
    parent = tracking.start_parent(uri, experiment_id, str(spec.path), spec_hash(spec), len(to_run))
    outcome = GridOutcome(experiment, parent, uri, skipped=skipped)
    launch = LaunchContext(uri, experiment_id, parent, str(output / "stages"), tuple(str(Path(p).resolve()) for p in plugins))
    progress = GridProgress(to_run, skipped=len(skipped), enabled=show_progress)
    status = "FINISHED"
    try:
        with progress:
            if local:
                _run_local(launch, to_run, progress, outcome)
            else:
                _run_ray(spec, launch, to_run, progress, outcome, address)
    except BaseException:
        status = "KILLED"
        raise
    finally:
        tracking.end_run(uri, parent, status if not outcome.failed or status == "KILLED" else "FAILED")
        outcome.seconds = time.time() - started
    return outcome


def _die_with_parent() -> None:
    """Linux: SIGKILL this trial process when its parent (a Ray worker) dies, so no orphan logs on."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_local(launch: LaunchContext, trials: Sequence[dict], progress: GridProgress, outcome: GridOutcome) -> None:
    """One trial after another in this process, with the same retry rule as Ray (``max_failures``)."""
    for cfg in trials:
        progress.started(cfg["hash"])
        for attempt in range(1 + int(cfg.get("max_failures") or 0)):
            if attempt:
                progress.retrying(cfg["hash"])
            try:
                metrics = launch.run(cfg)
            except TrialTimeout as exc:
                error = str(exc)
                break
            except tracking.TrialFailed as exc:
                error = str(exc)
            else:
                outcome.finished.append(cfg["hash"])
                progress.finished(cfg["hash"], metrics)
                break
        if cfg["hash"] not in outcome.finished:
            outcome.failed[cfg["hash"]] = error
            progress.failed(cfg["hash"], error)


def connect_ray(spec: Any, address: str | None) -> None:
    import ray

    address = address or spec.ray.get("address") or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return
    common = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="ERROR")
    try:
        if address:
            ray.init(address=address, **common)
        else:
            # a local instance listens on loopback only (safe by default)
            ray.init(num_cpus=spec.ray.get("num_cpus"), num_gpus=spec.ray.get("num_gpus"), _node_ip_address="127.0.0.1", **common)
    except Exception as exc:  # noqa: BLE001
        raise LaunchError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from exc


def _run_ray(spec: Any, launch: LaunchContext, trials: Sequence[dict], progress: GridProgress, outcome: GridOutcome,
             address: str | None) -> None:
    if not trials:
        return
    import ray
    from ray import tune

    connect_ray(spec, address)
    cpus, gpus = float(spec.resources.get("cpus", 1)), float(spec.resources.get("gpus", 0))
    available = ray.cluster_resources()
    if gpus > 0 and available.get("GPU", 0) < gpus:
        raise LaunchError(f"the spec asks for {gpus:g} GPU per trial but the Ray cluster has {available.get('GPU', 0):g} GPUs; "
                          "set resources.gpus: 0 or connect to a cluster with GPUs (--address)")
    if available.get("CPU", 0) < cpus:
        raise LaunchError(f"the spec asks for {cpus:g} CPUs per trial but the Ray cluster has {available.get('CPU', 0):g}")

    by_hash = {cfg["hash"]: cfg for cfg in trials}
    trainable = tune.with_resources(tune.with_parameters(_tune_trainable, launch=launch), {"cpu": cpus, "gpu": gpus})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(list(trials))},
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.ray.get("max_concurrent"), reuse_actors=True,
                                    trial_dirname_creator=lambda t: f"{t.config['trial']['method']['name']}-{t.config['trial']['hash']}"),
        run_config=tune.RunConfig(name=f"{spec.experiment}-{launch.parent_run_id[:8]}", storage_path=str(Path(spec.output).resolve() / "ray"),
                                  failure_config=tune.FailureConfig(max_failures=int(spec.max_failures)), verbose=0,
                                  callbacks=[_ProgressCallback(progress)]),
    )
    results = tuner.fit()
    for result in results:
        h = result.config["trial"]["hash"]
        if result.error is not None:
            outcome.failed[h] = _one_line(result.error)
        elif (result.metrics or {}).get("timed_out"):
            outcome.failed[h] = result.metrics.get("error", "TIMEOUT")
        else:
            outcome.finished.append(h)
    for h in set(by_hash) - set(outcome.finished) - set(outcome.failed):
        outcome.failed[h] = "no result from Ray"
    for h in outcome.failed:  # a worker that died on the last attempt left its run RUNNING
        tracking.abandon_running(launch.uri, launch.experiment_id, h, "WORKER_LOST")


def _tune_trainable(config: dict, launch: LaunchContext) -> None:
    import ray
    from ray import tune

    runtime = ray.get_runtime_context()
    facts = {f"{tracking.TAG}ray_node": runtime.get_node_id(),
             f"{tracking.TAG}ray_gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
             f"{tracking.TAG}cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    try:
        metrics = launch.run(config["trial"], extra_tags=facts)
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


try:
    from ray.tune import Callback as _TuneCallback
except Exception:  # pragma: no cover - ray is a hard dependency
    _TuneCallback = object


class _ProgressCallback(_TuneCallback):
    """Feeds Ray Tune's trial events into the terminal progress view."""

    def __init__(self, progress: GridProgress):
        self.progress = progress

    def __getstate__(self) -> dict:  # Tune pickles its callbacks for restore; the live view stays here
        return {}

    def __setstate__(self, state: dict) -> None:
        self.progress = GridProgress([], enabled=False)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.progress.started(trial.config["trial"]["hash"])

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.progress.finished(trial.config["trial"]["hash"], result)

    def on_trial_error(self, iteration, trials, trial, **info):
        error = getattr(trial, "error_msg", None) or "failed"
        self.progress.failed(trial.config["trial"]["hash"], _one_line(RuntimeError(str(error))))

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.progress.retrying(trial.config["trial"]["hash"])
