"""From per-video predictions to intervals: each point's outcomes over its seeds' test videos, one
shared set of bootstrap draws per (dataset, backbone, experiment) so that comparisons are paired,
the 95% interval of every point, and the claims' ``Context``. Procedure: ``harness.report.stats``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from harness.report.claims import Context, key
from harness.report.collect import load_predictions
from harness.report.stats import (
    MAP_BOOT,
    N_BOOT,
    Outcomes,
    Resampler,
    cost_replicates,
    estimate,
    interval,
    replicates,
)

GROUP = ["dataset", "backbone", "experiment"]


class Evidence:
    """Bootstrap replicates of every point (with predictions) of a seed summary, per group."""

    def __init__(
        self, points: pd.DataFrame, trials: pd.DataFrame, predictions: Mapping[str, pd.DataFrame], metric: str
    ):
        self.metric = metric
        self.estimates: dict[tuple, dict] = {}
        self.replicates: dict[tuple, dict] = {}
        self.usage: dict[tuple, dict] = {}
        self.costs: dict[tuple, dict] = {}
        self.n_videos: dict[tuple, int] = {}
        seed_of = dict(zip(trials["run_id"], trials["seed"]))
        for group_key, group in points.groupby(GROUP, sort=True):
            tables = {r: predictions[r] for ids in group["run_ids"] for r in ids if r in predictions}
            if not tables:
                continue
            videos = sorted({str(v) for t in tables.values() for v in t["video_id"]})
            num_classes = max(max((len(s) for s in t["scores"] if s is not None), default=1) for t in tables.values())
            n_boot = MAP_BOOT if metric == "map_pct" else N_BOOT
            resampler = Resampler(len(videos), int(group["n_seeds"].max()), n_boot)
            est, reps, usage, costs = {}, {}, {}, {}
            for _, row in group.iterrows():
                per_seed = {int(seed_of[r]): tables[r] for r in row["run_ids"] if r in tables}
                if not per_seed or any(("scores" not in t or "labels" not in t) for t in per_seed.values()):
                    continue
                outcomes = Outcomes.from_predictions(videos, per_seed, num_classes)
                k = key(row["label"], row["budget"])
                est[k] = estimate(outcomes, metric)
                reps[k] = replicates(resampler, outcomes, metric)
                costs[k] = cost_replicates(resampler, outcomes)
                usage[k] = [u for t in per_seed.values() if "usage" in t for u in t["usage"]]
            self.estimates[group_key], self.replicates[group_key] = est, reps
            self.usage[group_key], self.n_videos[group_key] = usage, len(videos)
            self.costs[group_key] = costs

    def with_intervals(self, points: pd.DataFrame) -> pd.DataFrame:
        """``points`` plus ``<metric>_lo`` / ``<metric>_hi`` (NaN where a point has no predictions)."""
        lo, hi = [], []
        for _, row in points.iterrows():
            reps = self.replicates.get(tuple(row[c] for c in GROUP), {}).get(key(row["label"], row["budget"]))
            bounds = interval(reps) if reps is not None else (np.nan, np.nan)
            lo.append(bounds[0])
            hi.append(bounds[1])
        return points.assign(**{f"{self.metric}_lo": lo, f"{self.metric}_hi": hi})

    def interval_at(self, curve: pd.DataFrame, cost: float) -> tuple[float, float]:
        """The 95% interval of one curve (one group's points of one label) at ``cost``."""
        g = tuple(curve.iloc[0][c] for c in GROUP)
        ctx = Context(curve, self.metric, self.estimates.get(g, {}), self.replicates.get(g, {}))
        value = ctx.at_cost(curve, cost)
        return interval(value[1]) if value is not None else (np.nan, np.nan)

    def context(
        self, facts: Mapping[tuple, Mapping], extras: Mapping[tuple, Mapping]
    ) -> Callable[[pd.DataFrame], Context]:
        """A factory for ``claims.check_claims``: the Context of one (dataset, backbone, experiment)."""

        def make(group: pd.DataFrame) -> Context:
            g = tuple(group.iloc[0][c] for c in GROUP)
            dataset = g[0]
            return Context(
                group,
                self.metric,
                self.estimates.get(g, {}),
                self.replicates.get(g, {}),
                {k[1:]: v for k, v in facts.items() if k[0] == dataset},
                {k[1:]: v for k, v in extras.items() if k[0] == dataset},
                self.usage.get(g, {}),
                self.n_videos.get(g, 0),
                self.costs.get(g, {}),
            )

        return make


def fact_value(value: Any) -> float | None:
    """A per-video fact as a number: a number as is, a list as the count of its distinct values."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list) and value:
        return float(len({json_key(v) for v in value}))
    return None


def json_key(value: Any) -> Any:
    return value if isinstance(value, (int, float, str)) else str(value)


def per_video_facts(
    trials: pd.DataFrame, predictions: Mapping[str, pd.DataFrame], declared: Mapping[str, Mapping[str, str]]
) -> dict[tuple, dict[str, np.ndarray]]:
    """(dataset, label, budget) -> declared fact -> values over all seeds' test videos.
    ``declared``: method -> its ``video_facts``."""
    pooled: dict[tuple, dict[str, list[float]]] = {}
    for trial in trials.itertuples():
        table = predictions.get(trial.run_id)
        facts = declared.get(trial.method, {})
        if table is None or "extras" not in table or not facts:
            continue
        bucket = pooled.setdefault((trial.dataset,) + key(trial.label, trial.budget), {})
        for extras in table["extras"]:
            for fact in facts:
                value = fact_value((extras or {}).get(fact))
                if value is not None:
                    bucket.setdefault(fact, []).append(value)
    return {k: {f: np.asarray(v) for f, v in d.items()} for k, d in pooled.items() if d}


def numeric_extras_means(
    trials: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]
) -> dict[tuple[str, str, float | None], dict[str, float]]:
    """(dataset, label, budget) -> mean over all seeds' test videos of every numeric scalar in
    ``extras`` (e.g. a training memory per video)."""
    pooled: dict[tuple, dict[str, list[float]]] = {}
    for trial in trials.itertuples():
        table = predictions.get(trial.run_id)
        if table is None or "extras" not in table:
            continue
        bucket = pooled.setdefault((trial.dataset,) + key(trial.label, trial.budget), {})
        for extras in table["extras"]:
            for name, value in (extras or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    bucket.setdefault(name, []).append(float(value))
    return {k: {name: float(np.mean(v)) for name, v in d.items()} for k, d in pooled.items() if d}


def trial_intervals(
    tracking_uri: str, run_ids: list[str], metrics: tuple[str, ...] = ("top1_pct", "map_pct")
) -> pd.DataFrame:
    """One row per trial (one seed: its test videos resampled): ``run_id``, ``<metric>_lo``,
    ``<metric>_hi`` (NaN without predictions), for ``skimbench results``' interval columns."""
    rows = []
    for run_id in run_ids:
        row: dict[str, Any] = {"run_id": run_id}
        table = load_predictions(tracking_uri, run_id)
        if table is not None and {"scores", "labels"} <= set(table):
            videos = [str(v) for v in table["video_id"]]
            classes = max((len(s) for s in table["scores"] if s is not None), default=1)
            outcomes = Outcomes.from_predictions(videos, {0: table}, classes)
            for metric in metrics:
                resampler = Resampler(len(videos), 1, MAP_BOOT if metric == "map_pct" else N_BOOT)
                row[f"{metric}_lo"], row[f"{metric}_hi"] = interval(replicates(resampler, outcomes, metric))
        rows.append(row)
    return pd.DataFrame(rows, columns=["run_id"] + [f"{m}_{b}" for m in metrics for b in ("lo", "hi")])


def chance_level(trials: pd.DataFrame, predictions: Mapping[str, pd.DataFrame], metric: str) -> dict[str, float]:
    """dataset -> the metric (%) of a predictor that ignores the video: for top-1, always answering
    the test split's most common class; for mAP, scoring every video alike (each class's AP is its
    share of positive videos). From the test labels of the first trial with predictions."""
    out: dict[str, float] = {}
    for dataset, group in trials.groupby("dataset", sort=True):
        table = next(
            (
                predictions[r]
                for r in group["run_id"]
                if r in predictions and {"labels", "scores"} <= set(predictions[r])
            ),
            None,
        )
        if table is None or not len(table):
            continue
        classes = max((len(s) for s in table["scores"] if s is not None), default=1)
        positives = np.zeros(classes)
        for labels in table["labels"]:
            positives[[int(c) for c in labels or [] if int(c) < classes]] += 1
        share = positives / len(table)
        out[dataset] = float(100 * (share.max() if metric != "map_pct" else share[share > 0].mean()))
    return out
