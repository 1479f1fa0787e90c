"""Read a grid's trials back from MLflow into one tidy DataFrame.

One row per trial (an MLflow child run carrying a ``skimbench.trial_hash`` tag; parent runs are
skipped). Tags become typed columns, metrics keep their logged names (``top1_pct``,
``gflops_per_video_mean``, ...), and ``method.params.*`` become a ``params`` dict. Reading through
an ``MlflowClient`` bound to the given URI keeps the global MLflow state untouched.

Runs logged before the metrics carried their unit (``top1``, ``top5``, ``map``) are read under
today's names by ``logged_metrics``, the one place that knows the old names.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.naming import trial_name

if TYPE_CHECKING:  # imported where used: the method modules' claims import this module, and
    from mlflow.tracking import MlflowClient  # `skimbench plan` and `methods` must not load MLflow (seconds)

TAG = "skimbench."

# Metrics a report reads (and averages over seeds: ``pareto.seed_summary``); absent ones become NaN
# columns so that later code needs no guards. Percent values end in ``_pct``.
METRICS = [
    "top1_pct",
    "top5_pct",
    "map_pct",
    "gflops_per_video_mean",
    "gflops_per_video_std",
    "gflops_per_video_min",
    "gflops_per_video_max",
    "gflops_selection_mean",
    "gflops_recognition_mean",
    "gflops_per_view",
    "params_m",
    "latency_ms_per_video",
    "throughput_videos_per_s",
    "peak_memory_mb",
    "decoded_frames_per_video",
    "decoded_frames_fraction",
    "decode_ms_per_video",
    "train_time_s",
    "wall_time_s",
    "videos_evaluated",
    "videos_skipped",
]


# Names of the percent metrics in stores written before the unit joined the name -> today's names.
LEGACY_METRICS = {"top1": "top1_pct", "top5": "top5_pct", "map": "map_pct"}


class ReportError(Exception):
    """A report cannot be built (unknown experiment, no trials); the message says why."""


def _as_bool(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes"}


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _as_int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _parse_param(value: str) -> Any:
    """MLflow stores params as strings; recover numbers, booleans and JSON where they parse."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _budget_param(tags: dict[str, str]) -> str | None:
    """The budget knob's name, unless its value is not a number (a curve needs an ordered knob:
    such a parameter then separates curves in ``label_series`` instead)."""
    name, value = tags.get(TAG + "budget_param") or None, tags.get(TAG + "budget", "")
    if name and value not in ("", "null") and np.isnan(_as_float(value)):
        return None
    return name


def logged_metrics(run: Any) -> dict[str, float]:
    """An ``mlflow.entities.Run``'s metrics under today's names: an older store's ``top1`` is read as
    ``top1_pct`` (same values, already percent), so its runs still report."""
    metrics = dict(run.data.metrics)
    for old, new in LEGACY_METRICS.items():
        if old in metrics:
            metrics.setdefault(new, metrics.pop(old))
    return metrics


def trial_row(run: Any, experiment: str) -> dict[str, Any] | None:
    """One tidy row from an ``mlflow.entities.Run``; None for runs that are not trials."""
    tags = run.data.tags
    if not tags.get(TAG + "trial_hash"):
        return None
    row: dict[str, Any] = {
        "experiment": experiment,
        "run_id": run.info.run_id,
        "status": run.info.status,
        "outcome": tags.get(TAG + "outcome", run.info.status),  # ERROR, OOM, TIMEOUT, KILLED, ...
        "start_time": run.info.start_time,
        "spec_label": tags.get(TAG + "label") or tags.get(TAG + "method", "?"),
        "trial_hash": tags[TAG + "trial_hash"],
        "method": tags.get(TAG + "method", "?"),
        "dataset": tags.get(TAG + "dataset", "?"),
        "backbone": tags.get(TAG + "backbone", "?"),
        "seed": _as_int(tags.get(TAG + "seed")),
        "budget_param": _budget_param(tags),
        "budget": _as_float(tags.get(TAG + "budget")),
        "deployable": _as_bool(tags.get(TAG + "deployable", "true")),
        "dynamic": _as_bool(tags.get(TAG + "dynamic", "false")),
        "selection_unit": tags.get(TAG + "selection_unit"),
        "latency_timing": tags.get(TAG + "latency_timing", "not recorded"),
        "clip_len": _as_int(run.data.params.get("evaluation.clip_len")),
        "params": {
            k[len("method.params.") :]: _parse_param(v)
            for k, v in sorted(run.data.params.items())
            if k.startswith("method.params.")
        },
    }
    metrics = logged_metrics(run)
    for name in METRICS:
        row[name] = metrics.get(name, np.nan)
    for name, value in metrics.items():  # keep any extra metric a plugin logged
        row.setdefault(name, value)
    return row


def _search_all(client: MlflowClient, experiment_id: str) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def load_trials(tracking_uri: str, experiments: list[str]) -> pd.DataFrame:
    """All trials of the named MLflow experiments, one row each (failed runs included: see ``status``)."""
    from mlflow.tracking import MlflowClient  # noqa: PLC0415 - see the imports

    client = MlflowClient(tracking_uri=tracking_uri)
    rows = []
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            known = ", ".join(e.name for e in client.search_experiments()) or "none"
            raise ReportError(f"no MLflow experiment '{name}' at {tracking_uri} (experiments: {known})")
        rows += [r for r in (trial_row(run, name) for run in _search_all(client, exp.experiment_id)) if r]
    if not rows:
        raise ReportError(
            f"no trials (runs with a skimbench.trial_hash tag) in {', '.join(experiments)} at {tracking_uri}"
        )
    order = ["experiment", "method", "budget", "seed"]
    return pd.DataFrame(rows).sort_values(order, na_position="first").reset_index(drop=True)


PREDICTION_JSON_COLUMNS = ("labels", "scores", "usage", "selected", "extras")


def _artifact(tracking_uri: str, run_id: str, name: str) -> Path | None:
    """Download one artifact of a run into a fresh temporary folder; None when the run has none."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in reports
    from mlflow.tracking import MlflowClient  # noqa: PLC0415 - see the imports

    client = MlflowClient(tracking_uri=tracking_uri)
    folder = tempfile.mkdtemp(prefix="skimbench-report-")
    try:
        return Path(client.download_artifacts(run_id, name, folder))
    except Exception:  # missing artifact (failed trial, older run): the report says so
        shutil.rmtree(folder, ignore_errors=True)
        return None


def load_predictions(tracking_uri: str, run_id: str) -> pd.DataFrame | None:
    """A trial's ``predictions.csv`` with its JSON cells decoded; None when the run has none."""
    path = _artifact(tracking_uri, run_id, "predictions.csv")
    if path is None:
        return None
    table = pd.read_csv(path, dtype={"video_id": str})
    shutil.rmtree(path.parent, ignore_errors=True)
    for column in PREDICTION_JSON_COLUMNS:
        if column in table:
            table[column] = [json.loads(v) if isinstance(v, str) and v else None for v in table[column]]
    return table


def load_flops_components(tracking_uri: str, run_id: str) -> list[dict[str, Any]] | None:
    """A trial's ``flops_components.json`` (one row per component and shape: ``component``, ``role``,
    ``gflops_per_call``, ``calls``, ...); None when the run has none."""
    path = _artifact(tracking_uri, run_id, "flops_components.json")
    if path is None:
        return None
    rows = json.loads(path.read_text())
    shutil.rmtree(path.parent, ignore_errors=True)
    return rows


def label_series(trials: pd.DataFrame) -> pd.DataFrame:
    """Add ``label``: the curve a trial belongs to.

    A curve is one method entry swept over its budget knob. Its name is the spec's label for the
    entry (the method name by default) plus every other method parameter that varies among the
    trials sharing that name, written by ``harness.naming.trial_name`` (``sampler[objective=ac]``, as
    in ``plan``, ``results`` and MLflow run names), so that differently configured trials
    are never averaged together; plus the backbone when the trials span several and the experiment
    when several are compared. Seeds never enter the label: they are averaged over.
    """
    trials = trials.copy()
    if "spec_label" not in trials:
        trials["spec_label"] = trials["method"]
    base = trials["spec_label"].fillna(trials["method"])
    several_backbones = trials["backbone"].nunique() > 1
    several_experiments = trials["experiment"].nunique() > 1
    varying: dict[str, list[str]] = {}
    for name, group in trials.groupby(base):
        budgets = set(group["budget_param"].dropna())
        keys = sorted({k for p in group["params"] for k in p} - budgets)
        varying[name] = [k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in group["params"]}) > 1]
    labels = []
    for name, (_, row) in zip(base, trials.iterrows()):
        extra = {"backbone": row["backbone"]} if several_backbones else {}
        extra.update({"experiment": row["experiment"]} if several_experiments else {})
        labels.append(trial_name(name, row["params"], varying[name], extra))
    trials["label"] = labels
    return trials
