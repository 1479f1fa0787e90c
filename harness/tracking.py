"""MLflow tracking: one parent run per launch, one child run per trial, nothing lost.

This module only talks to MLflow: ``start`` opens a trial's run (tags, params, config.json, the
plugins' source files), ``record`` closes it with its outcome (metrics and artifacts, or the
traceback). Running the trial and classifying failures is ``harness.launchers.execute``'s job.

Everything goes through ``MlflowClient`` with explicit run ids (no global "active run"), so trials
in Ray workers, threads or other machines log independently. SQLite allows one writer at a time:
writes are retried with back-off when the database is locked, and the driver creates the schema
and the experiment before any worker starts, so workers never race the schema migration.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from mlflow import __version__ as mlflow_version
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from harness.paths import safe_join
from harness.registry import METHODS
from harness.repro import git_commit, hardware, package_versions
from harness.trial import Trial, TrialResult

T = TypeVar("T")
DEFAULT_TRACKING_URI = "sqlite:///results/mlflow.db"
TAG = "skimbench."
# MLflow 3's UI opens an experiment on its runs (not the GenAI traces page) with this kind; the value
# is ``ExperimentKind.CUSTOM_MODEL_DEVELOPMENT`` in MLflow's UI source (mlflow/server/js).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# A trial's outcome -> the MLflow status of its run.
RUN_STATUS = {
    "FINISHED": "FINISHED",
    "ERROR": "FAILED",
    "OOM": "FAILED",
    "KILLED": "KILLED",
    "TIMEOUT": "KILLED",
    "CRASHED": "KILLED",
}


def resolve_uri(uri: str, base: Path | None = None) -> str:
    """Make a relative ``sqlite:///path`` absolute (workers may run elsewhere) and create its folder."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = (base or Path.cwd()) / uri[len("sqlite:///") :]
        path.parent.mkdir(parents=True, exist_ok=True)
        return "sqlite:///" + str(path.resolve())
    return uri


def with_retry(fn: Callable[[], T], attempts: int = 12, also: tuple[str, ...] = ()) -> T:
    """Retry a tracking call on transient store errors (SQLite lock, server hiccup), and on errors
    whose text contains one of ``also``."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            text = str(exc).lower()
            transient = any(
                w in text for w in ("locked", "busy", "timed out", "connection", "503", "502", "temporarily", *also)
            )
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def seed_sqlite_store(uri: str) -> None:
    """Start a new SQLite store as a copy of an empty one MLflow created and migrated once per MLflow
    version (``~/.cache/skimbench/mlflow-<version>.db``): MLflow's schema migration (alembic, every
    revision since 1.0) costs seconds at each new output folder. Anything failing here leaves MLflow
    to create the store itself. Call it under ``trial_claims.store_lock``."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///") :])
    if path.exists():
        return
    cache = (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "skimbench" / f"mlflow-{mlflow_version}.db"
    )
    try:
        if not cache.exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
            MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments()  # MLflow creates and migrates it
            os.replace(tmp, cache)
        shutil.copyfile(cache, path)
    except Exception:  # noqa: BLE001 - MLflow creates the store as usual
        path.unlink(missing_ok=True)


def ensure_experiment(uri: str, name: str, artifact_root: Path | None = None) -> str:
    """Experiment id for ``name``, created if missing (local stores keep artifacts under ``artifact_root``).
    A new SQLite store starts from MLflow's migrated empty store (``seed_sqlite_store``)."""
    seed_sqlite_store(uri)
    location = None
    if artifact_root is not None and not uri.startswith(("http://", "https://", "databricks")):
        location = safe_join(artifact_root, name).resolve().as_uri()  # before anything is written
    c = client(uri)
    found = with_retry(lambda: c.get_experiment_by_name(name))
    if found is not None:
        for key, value in EXPERIMENT_KIND.items():  # experiments created by older versions
            if found.tags.get(key) != value:
                with_retry(lambda: c.set_experiment_tag(found.experiment_id, key, value))
        return found.experiment_id
    try:
        return with_retry(lambda: c.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND))
    except Exception:  # created concurrently by another driver
        found = with_retry(lambda: c.get_experiment_by_name(name))
        if found is None:
            raise
        return found.experiment_id


@functools.lru_cache(maxsize=1)
def _environment_tags() -> tuple[tuple[str, str], ...]:
    """Versions, hardware and commit: captured once per process (a worker's do not change between trials)."""
    tags = {f"{TAG}version.{k}": v for k, v in package_versions().items()}
    tags.update({f"{TAG}hardware.{k}": v for k, v in hardware().items()})
    tags[f"{TAG}git_commit"] = git_commit()
    tags["mlflow.source.git.commit"] = tags[f"{TAG}git_commit"]  # shown by MLflow's UI as the run's commit
    return tuple(tags.items())


def environment_tags() -> dict[str, str]:
    return dict(_environment_tags())


def start_parent(
    uri: str, experiment_id: str, experiment: str, spec_path: Path, spec_hash: str, num_trials: int
) -> str:
    """The launch's parent run, named ``EXPERIMENT (SPEC FILE)``, with the spec YAML attached."""
    tags = environment_tags()
    tags.update(
        {
            f"{TAG}spec": str(spec_path),
            f"{TAG}spec_hash": spec_hash,
            f"{TAG}role": "launch",
            f"{TAG}num_trials": str(num_trials),
            "mlflow.runName": f"{experiment} ({Path(spec_path).name})",
            "mlflow.source.name": str(spec_path),
        }
    )
    run_id = with_retry(lambda: client(uri).create_run(experiment_id, tags=tags)).info.run_id
    if Path(spec_path).is_file():
        with_retry(lambda: client(uri).log_artifact(run_id, str(spec_path)))
    return run_id


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
        yield items[i : i + size]


def trial_tags(trial: Trial) -> dict[str, str]:
    method_cls = METHODS.get(trial.method.name)
    budget_param = method_cls.budget_param
    tags = {
        f"{TAG}trial_hash": trial.hash,
        f"{TAG}method": trial.method.name,
        f"{TAG}label": trial.label,
        f"{TAG}name": trial.name or trial.label,
        f"{TAG}dataset": trial.dataset.name,
        f"{TAG}backbone": trial.backbone.name,
        f"{TAG}seed": str(trial.seed),
        f"{TAG}budget_param": budget_param or "",
        f"{TAG}budget": "" if budget_param is None else json.dumps(trial.method.params.get(budget_param)),
        f"{TAG}deployable": str(method_cls.deployable).lower(),
        f"{TAG}dynamic": str(method_cls.dynamic).lower(),
        f"{TAG}selection_unit": method_cls.selection_unit,
        f"{TAG}spec_hash": trial.spec_hash,
        f"{TAG}role": "trial",
        "mlflow.runName": trial.name or trial.label,
    }
    tags.update({f"{TAG}code.{role}": version for role, version in trial.code.items()})
    return tags


def log_dict(
    uri: str,
    run_id: str,
    *,
    params: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """One ``log_batch`` per MLflow batch limit (100 params, 100 tags, 1000 entries): usually one call."""
    c = client(uri)
    now = int(time.time() * 1000)
    param_chunks = list(_batched([Param(k, v) for k, v in (params or {}).items()], 100))
    tag_chunks = list(_batched([RunTag(k, v) for k, v in (tags or {}).items()], 100))
    metric_chunks = list(_batched([Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()], 800))
    for i in range(max(len(param_chunks), len(tag_chunks), len(metric_chunks))):
        batch = {
            "params": param_chunks[i] if i < len(param_chunks) else [],
            "tags": tag_chunks[i] if i < len(tag_chunks) else [],
            "metrics": metric_chunks[i] if i < len(metric_chunks) else [],
        }
        with_retry(lambda: c.log_batch(run_id, **batch))


def log_files(uri: str, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
    """The files and folders in ``folder``, in one call."""
    with_retry(lambda: client(uri).log_artifacts(run_id, str(folder), artifact_path))


def start(
    trial: Trial,
    *,
    uri: str,
    experiment_id: str,
    parent_run_id: str | None,
    extra_tags: dict[str, str] | None = None,
    sources: Iterable[Path] = (),
) -> str:
    """Open the trial's child run: tags, params, ``config.json`` and the plugins' ``sources`` (under
    ``source/``). Earlier runs of the same trial left RUNNING (their process died) are closed by the
    launch beforehand (``abandon_running``, once for all its trials)."""
    tags = trial_tags(trial)
    tags.update(environment_tags())
    tags.update(extra_tags or {})
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run_id = with_retry(lambda: client(uri).create_run(experiment_id, tags=tags)).info.run_id
    config = trial.to_dict()
    params = flatten({k: config[k] for k in ("dataset", "backbone", "method", "seed", "evaluation")})
    log_dict(uri, run_id, params=params)
    with tempfile.TemporaryDirectory(prefix="skimbench-run-") as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True))
        for path in sorted(set(sources)):
            (Path(tmp) / "source").mkdir(exist_ok=True)
            shutil.copy2(path, Path(tmp) / "source" / Path(path).name)
        log_files(uri, run_id, Path(tmp))
    return run_id


def record(
    uri: str, run_id: str, outcome: str, *, result: TrialResult | None = None, error: str = "", details: str = ""
) -> None:
    """Close the trial's run. FINISHED: metrics, tags, artifacts and the dataset as a run input.
    Otherwise ``outcome`` (ERROR, OOM, KILLED, TIMEOUT, CRASHED), ``error`` (one line) and
    ``details`` (the traceback, as ``traceback.txt``)."""
    c = client(uri)
    with tempfile.TemporaryDirectory(prefix="skimbench-run-") as tmp:
        out = Path(tmp)
        if result is None:
            (out / "traceback.txt").write_text(details or error)
            log_files(uri, run_id, out)
            log_dict(uri, run_id, tags={f"{TAG}outcome": outcome, f"{TAG}error": error[:5000]})
            end_run(uri, run_id, RUN_STATUS[outcome])
            return
        result.predictions.to_csv(out / "predictions.csv", index=False)
        with open(out / "skipped_videos.csv", "w") as f:
            f.write("video_id,reason\n" + "".join(f"{v},{json.dumps(r)}\n" for v, r in result.skipped))
        (out / "flops_components.json").write_text(json.dumps(result.flops_components, indent=1, default=str))
        (out / "stages.json").write_text(json.dumps(result.stages_used, indent=1, sort_keys=True))
        log_files(uri, run_id, out)
    facts = result.facts
    log_dict(
        uri,
        run_id,
        metrics=result.metrics,
        tags={
            f"{TAG}dataset_manifest": facts["dataset_manifest"],
            f"{TAG}device": facts["device"],
            f"{TAG}threads": facts["threads"],
            f"{TAG}latency_from_trace": facts["latency_from_trace"],
            f"{TAG}latency_measured_on": facts["latency_measured_on"],
            f"{TAG}latency_timing": facts.get("latency_timing", "not recorded"),
            f"{TAG}latency_lock_wait_s": facts.get("latency_lock_wait_s", ""),
            f"{TAG}stages": json.dumps(result.stages_used, sort_keys=True),
            f"{TAG}outcome": outcome,
            f"{TAG}pid": str(os.getpid()),
            **{f"{TAG}{k}": facts[k] for k in ("views", "gflops_x_views", "view_rule") if k in facts},
        },
    )
    dataset = Dataset(
        name=facts["dataset"],
        digest=facts["dataset_manifest"][:36],
        source_type="local",
        source=json.dumps({"root": facts.get("dataset_root", "")}),
    )
    test_input = DatasetInput(dataset, [InputTag("mlflow.data.context", "test")])
    # Concurrent trials insert the same dataset row: MLflow checks, then inserts, so one of them may hit
    # the unique constraint; on the retry it finds the row and links to it.
    with_retry(lambda: c.log_inputs(run_id, datasets=[test_input]), also=("unique constraint",))
    end_run(uri, run_id, RUN_STATUS[outcome])


def abandon_running(uri: str, experiment_id: str, trial_hashes: Iterable[str], outcome: str) -> int:
    """Mark the runs of these trials still RUNNING as KILLED: their process died (killed worker or
    driver). One search per call: a launch calls it once for the trials it is about to run."""
    wanted = set(trial_hashes)
    if not wanted:
        return 0
    c = client(uri)
    stale, token = [], None
    while True:
        page = with_retry(
            lambda: c.search_runs(
                [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000, page_token=token
            )
        )
        stale += [run for run in page if run.data.tags.get(f"{TAG}trial_hash") in wanted]
        token = page.token
        if not token:
            break
    for run in stale:
        with_retry(lambda: c.set_tag(run.info.run_id, f"{TAG}outcome", outcome))
        end_run(uri, run.info.run_id, "KILLED")
    return len(stale)


def trial_runs(uri: str, experiment: str) -> list:
    """Every trial run of an experiment (all pages), newest first."""
    c = client(uri)
    found = with_retry(lambda: c.get_experiment_by_name(experiment))
    if found is None:
        return []
    runs, token = [], None
    while True:
        page = with_retry(
            lambda: c.search_runs(
                [found.experiment_id], filter_string=f"tags.`{TAG}role` = 'trial'", max_results=1000, page_token=token
            )
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


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
