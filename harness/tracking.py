"""MLflow tracking: one parent run per launch, one child run per trial, nothing lost.

Everything goes through ``MlflowClient`` with explicit run ids (no global "active run"), so trials
in Ray workers, threads or other machines log independently. SQLite allows one writer at a time:
writes are retried with back-off when the database is locked, and the driver creates the schema
and the experiment before any worker starts, so workers never race the schema migration.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from harness.repro import git_commit, hardware, package_versions
from harness.paths import safe_join

T = TypeVar("T")
DEFAULT_TRACKING_URI = "sqlite:///results/mlflow.db"
TAG = "skimbench."


def resolve_uri(uri: str, base: Path | None = None) -> str:
    """Make a relative ``sqlite:///path`` absolute (workers may run elsewhere) and create its folder."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = (base or Path.cwd()) / uri[len("sqlite:///"):]
        path.parent.mkdir(parents=True, exist_ok=True)
        return "sqlite:///" + str(path.resolve())
    return uri


def with_retry(fn: Callable[[], T], attempts: int = 12) -> T:
    """Retry a tracking call on transient store errors (SQLite lock, server hiccup)."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            text = str(exc).lower()
            transient = any(w in text for w in ("locked", "busy", "timed out", "connection", "503", "502", "temporarily"))
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def ensure_experiment(uri: str, name: str, artifact_root: Path | None = None) -> str:
    """Experiment id for ``name``, created if missing (local stores keep artifacts under ``artifact_root``)."""
    location = None
    if artifact_root is not None and not uri.startswith(("http://", "https://", "databricks")):
        location = safe_join(artifact_root, name).resolve().as_uri()  # before anything is written
    c = client(uri)
    found = with_retry(lambda: c.get_experiment_by_name(name))
    if found is not None:
        return found.experiment_id
    try:
        return with_retry(lambda: c.create_experiment(name, artifact_location=location))
    except Exception:  # created concurrently by another driver
        found = with_retry(lambda: c.get_experiment_by_name(name))
        if found is None:
            raise
        return found.experiment_id


def environment_tags() -> dict[str, str]:
    tags = {f"{TAG}version.{k}": v for k, v in package_versions().items()}
    tags.update({f"{TAG}hardware.{k}": v for k, v in hardware().items()})
    tags[f"{TAG}git_commit"] = git_commit()
    return tags


def start_parent(uri: str, experiment_id: str, spec_path: str, spec_hash: str, num_trials: int) -> str:
    tags = environment_tags()
    tags.update({f"{TAG}spec": str(spec_path), f"{TAG}spec_hash": spec_hash, f"{TAG}role": "launch",
                 f"{TAG}num_trials": str(num_trials), "mlflow.runName": f"launch {time.strftime('%Y-%m-%d %H:%M:%S')}"})
    run = with_retry(lambda: client(uri).create_run(experiment_id, tags=tags))
    return run.info.run_id


def end_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    with_retry(lambda: client(uri).set_terminated(run_id, status))


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """``{"method": {"params": {"k": 4}}}`` -> ``{"method.params.k": "4"}`` (lists as JSON)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    text = json.dumps(value) if isinstance(value, (list, tuple, bool)) or value is None else str(value)
    return {prefix[:-1]: text[:6000]}


def _batched(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def trial_tags(cfg: dict[str, Any]) -> dict[str, str]:
    from harness.registry import METHODS

    method_cls = METHODS.get(cfg["method"]["name"])
    budget_param = method_cls.budget_param
    return {
        f"{TAG}trial_hash": cfg["hash"], f"{TAG}method": cfg["method"]["name"],
        f"{TAG}label": cfg.get("label") or cfg["method"]["name"],
        f"{TAG}dataset": cfg["dataset"]["name"], f"{TAG}backbone": cfg["backbone"]["name"],
        f"{TAG}seed": str(cfg["seed"]), f"{TAG}budget_param": budget_param or "",
        f"{TAG}budget": "" if budget_param is None else json.dumps(cfg["method"]["params"].get(budget_param)),
        f"{TAG}deployable": str(method_cls.deployable).lower(), f"{TAG}dynamic": str(method_cls.dynamic).lower(),
        f"{TAG}selection_unit": method_cls.selection_unit, f"{TAG}spec_hash": cfg.get("spec_hash", ""),
        f"{TAG}role": "trial", f"{TAG}attempt": str(cfg.get("attempt", 1)),
        "mlflow.runName": f"{cfg.get('label') or cfg['method']['name']} {cfg['hash'][:8]} seed{cfg['seed']}",
    }


def log_dict(uri: str, run_id: str, *, params: dict[str, str] | None = None, metrics: dict[str, float] | None = None,
             tags: dict[str, str] | None = None) -> None:
    c = client(uri)
    now = int(time.time() * 1000)
    for chunk in _batched([Param(k, v) for k, v in (params or {}).items()], 100):
        with_retry(lambda: c.log_batch(run_id, params=chunk))
    for chunk in _batched([RunTag(k, v) for k, v in (tags or {}).items()], 100):
        with_retry(lambda: c.log_batch(run_id, tags=chunk))
    for chunk in _batched([Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()], 1000):
        with_retry(lambda: c.log_batch(run_id, metrics=chunk))


def log_files(uri: str, run_id: str, folder: Path) -> None:
    c = client(uri)
    for path in sorted(folder.iterdir()):
        if path.is_file():
            with_retry(lambda: c.log_artifact(run_id, str(path)))


class TrialFailed(RuntimeError):
    """Raised after a failed trial was recorded in MLflow, so the scheduler may retry it."""


def create_trial_run(cfg: dict[str, Any], *, uri: str, experiment_id: str, parent_run_id: str | None,
                     extra_tags: dict[str, str] | None = None) -> str:
    """Create the trial's child run with its tags and params; earlier attempts left RUNNING are closed."""
    abandon_running(uri, experiment_id, cfg["hash"], "WORKER_LOST")
    tags = trial_tags(cfg)
    tags.update(environment_tags())
    tags.update(extra_tags or {})
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run_id = with_retry(lambda: client(uri).create_run(experiment_id, tags=tags)).info.run_id
    log_dict(uri, run_id, params=flatten({k: cfg[k] for k in ("dataset", "backbone", "method", "seed", "evaluation")}))
    return run_id


def abandon_running(uri: str, experiment_id: str, trial_hash: str, outcome: str) -> int:
    """Mark runs of this trial still RUNNING as KILLED: their process died (killed worker or driver)."""
    c = client(uri)
    stale = with_retry(lambda: c.search_runs([experiment_id], max_results=100, filter_string=(
        f"tags.`{TAG}trial_hash` = '{trial_hash}' and attributes.status = 'RUNNING'")))
    for run in stale:
        with_retry(lambda: c.set_tag(run.info.run_id, f"{TAG}outcome", outcome))
        end_run(uri, run.info.run_id, "KILLED")
    return len(stale)


def tracked_trial(cfg: dict[str, Any], *, uri: str, experiment_id: str, parent_run_id: str | None, store_root: str,
                  log: Callable[[str], None] = print, run_id: str | None = None,
                  extra_tags: dict[str, str] | None = None) -> dict[str, float]:
    """Run one trial inside its own MLflow child run; FINISHED with everything, or FAILED with a traceback."""
    from harness.stages import StageStore
    from harness.trial import run_trial

    c = client(uri)
    if run_id is None:
        run_id = create_trial_run(cfg, uri=uri, experiment_id=experiment_id, parent_run_id=parent_run_id,
                                  extra_tags=extra_tags)
    with tempfile.TemporaryDirectory(prefix="skimbench-trial-") as tmp:
        out = Path(tmp)
        (out / "config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True))
        try:
            result = run_trial(cfg, StageStore(store_root), out / "work", log=log)
        except BaseException as exc:  # recorded, then re-raised for the scheduler's retry policy
            (out / "traceback.txt").write_text(traceback.format_exc())
            outcome = "OOM" if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower() else "ERROR"
            if isinstance(exc, KeyboardInterrupt):
                outcome = "KILLED"
            with_retry(lambda: c.set_tag(run_id, f"{TAG}outcome", outcome))
            with_retry(lambda: c.set_tag(run_id, f"{TAG}error", f"{type(exc).__name__}: {exc}"[:5000]))
            log_files(uri, run_id, out)
            end_run(uri, run_id, "KILLED" if outcome == "KILLED" else "FAILED")
            if isinstance(exc, Exception):
                raise TrialFailed(f"{cfg['method']['name']} {cfg['hash'][:8]}: {type(exc).__name__}: {exc}") from exc
            raise
        result.predictions.to_csv(out / "predictions.csv", index=False)
        with open(out / "skipped_videos.csv", "w") as f:
            f.write("video_id,reason\n" + "".join(f"{v},{json.dumps(r)}\n" for v, r in result.skipped))
        (out / "flops_components.json").write_text(json.dumps(result.flops_components, indent=1, default=str))
        (out / "stages.json").write_text(json.dumps(result.stages_used, indent=1, sort_keys=True))
        log_files(uri, run_id, out)
        log_dict(uri, run_id, metrics=result.metrics,
                 tags={f"{TAG}dataset_manifest": result.facts["dataset_manifest"], f"{TAG}device": result.facts["device"],
                       f"{TAG}threads": result.facts["threads"],
                       f"{TAG}latency_measured_on": result.facts["latency_measured_on"], f"{TAG}stages": json.dumps(result.stages_used, sort_keys=True),
                       f"{TAG}outcome": "FINISHED", f"{TAG}pid": str(os.getpid())})
        end_run(uri, run_id, "FINISHED")
    return result.metrics


def trial_runs(uri: str, experiment: str) -> list:
    """Every trial run of an experiment (all pages), newest first."""
    c = client(uri)
    found = with_retry(lambda: c.get_experiment_by_name(experiment))
    if found is None:
        return []
    runs, token = [], None
    while True:
        page = with_retry(lambda: c.search_runs([found.experiment_id], filter_string=f"tags.`{TAG}role` = 'trial'",
                                                max_results=1000, page_token=token))
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def record_timeout(uri: str, run_id: str, seconds: float) -> None:
    """A trial killed by its timeout: KILLED, outcome TIMEOUT, the reason as its traceback artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        note = Path(tmp) / "traceback.txt"
        note.write_text(f"TIMEOUT: the trial exceeded timeout_s = {seconds:g} s and its process was killed\n")
        with_retry(lambda: client(uri).log_artifact(run_id, str(note)))
    with_retry(lambda: client(uri).set_tag(run_id, f"{TAG}outcome", "TIMEOUT"))
    with_retry(lambda: client(uri).set_tag(run_id, f"{TAG}error", f"timed out after {seconds:g} s"))
    end_run(uri, run_id, "KILLED")


def finished_trials(uri: str, experiment: str) -> dict[str, str]:
    """trial hash -> status for resuming a grid: FINISHED if any run finished, else the newest run's
    status (TIMEOUT for a run its timeout killed). Runs are listed newest first."""
    status: dict[str, str] = {}
    for run in trial_runs(uri, experiment):
        h = run.data.tags.get(f"{TAG}trial_hash")
        if not h:
            continue
        if run.info.status == "FINISHED":
            status[h] = "FINISHED"
        elif h not in status:
            status[h] = "TIMEOUT" if run.data.tags.get(f"{TAG}outcome") == "TIMEOUT" else run.info.status
    return status
