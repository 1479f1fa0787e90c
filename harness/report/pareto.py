"""Accuracy-compute trade-off arithmetic: seed means, the Pareto front, matched-compute comparisons.

Rules (also stated in docs/reports.md and every report):

* Only FINISHED trials count; a point is one (dataset, curve label, budget) averaged over seeds,
  with the standard deviation over seeds kept next to every mean.
* Dominance is decided on seed means: A dominates B when A costs no more and scores no less, and
  is strictly better in at least one of the two. Points with equal cost and equal metric do not
  dominate each other, so exact ties and duplicates are all kept on the front. Points with a
  missing cost or metric (NaN) are never on the front.
* Curves are interpolated linearly in log10(cost) between a method's measured points, sorted by
  cost; never extrapolated beyond its cheapest or dearest point (NaN there). Where several points
  of one curve share a cost, the best metric among them stands for that cost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.collect import METRICS

POINT_KEYS = ["dataset", "label", "budget"]
CARRIED = ["experiment", "method", "backbone", "budget_param", "deployable", "dynamic"]


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials that completed; failed, killed or running ones never enter a mean. A trial run more
    than once (``--force``) counts once: its latest finished run."""
    done = trials[trials["status"] == "FINISHED"]
    if "start_time" in done and "trial_hash" in done:
        # keyed with the experiment: the same spec launched on two machines repeats its hashes
        done = done.sort_values("start_time").drop_duplicates(["experiment", "trial_hash"], keep="last").sort_index()
    return done


def unfinished(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials (by hash) with no finished run: what a report must list as missing."""
    key = trials["experiment"] + "/" + trials["trial_hash"]
    ok = set(key[trials["status"] == "FINISHED"])
    return trials[~key.isin(ok)].drop_duplicates(["experiment", "trial_hash"], keep="last")


def seed_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, label, budget): ``<metric>_mean`` and ``<metric>_std`` over seeds, for
    every metric a report reads (``collect.METRICS``).

    ``trials`` needs a ``label`` column (``collect.label_series``). ``n_seeds`` and ``run_ids``
    tell what each mean rests on; std is NaN for a single seed.
    """
    done = finished(trials)
    rows = []
    for key, group in done.groupby(POINT_KEYS, dropna=False, sort=True):
        row = dict(zip(POINT_KEYS, key))
        first = group.iloc[0]
        row.update({name: first[name] for name in CARRIED})
        row["params"] = first["params"]
        row["n_seeds"] = len(group)
        row["seeds"] = sorted(int(s) for s in group["seed"].dropna())
        row["run_ids"] = list(group["run_id"])
        for metric in METRICS:
            values = group[metric].astype(float) if metric in group else pd.Series([np.nan])
            row[f"{metric}_mean"] = values.mean()
            row[f"{metric}_std"] = values.std(ddof=1) if values.notna().sum() > 1 else np.nan
        rows.append(row)
    columns = POINT_KEYS + CARRIED + ["params", "n_seeds", "seeds", "run_ids"]
    return pd.DataFrame(rows, columns=columns + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")])


def pareto_front(points: pd.DataFrame, cost: str, metric: str) -> pd.Series:
    """Boolean mask (aligned with ``points``): the non-dominated points, minimising ``cost`` and
    maximising ``metric``. Ties and duplicates are all kept; NaN points are excluded."""
    c = points[cost].to_numpy(dtype=float)
    m = points[metric].to_numpy(dtype=float)
    valid = ~(np.isnan(c) | np.isnan(m))
    on_front = valid.copy()
    for i in np.flatnonzero(valid):
        others = valid & (c <= c[i]) & (m >= m[i]) & ((c < c[i]) | (m > m[i]))
        on_front[i] = not others.any()
    return pd.Series(on_front, index=points.index, name="on_front")


def front_share(points: pd.DataFrame, on_front: pd.Series, by: str = "label") -> pd.DataFrame:
    """Per curve: its points, how many are on the front, and its share of all front members."""
    total = int(on_front.sum())
    table = (
        points.assign(on_front=on_front).groupby(by)["on_front"].agg(n_points="size", n_on_front="sum").reset_index()
    )
    table["n_on_front"] = table["n_on_front"].astype(int)
    table["share_of_front"] = table["n_on_front"] / total if total else np.nan
    return table.sort_values(["share_of_front", by], ascending=[False, True]).reset_index(drop=True)


def _curve(costs, metrics) -> tuple[np.ndarray, np.ndarray]:
    """A curve's points sorted by cost, NaNs dropped, equal costs merged to their best metric."""
    frame = pd.DataFrame({"c": np.asarray(costs, float), "m": np.asarray(metrics, float)}).dropna()
    frame = frame[frame["c"] > 0].groupby("c", sort=True)["m"].max()
    return frame.index.to_numpy(float), frame.to_numpy(float)


def interpolate_metric(costs, metrics, at_cost: float) -> float:
    """The curve's metric at ``at_cost`` (log-cost linear interpolation), NaN outside its range."""
    c, m = _curve(costs, metrics)
    if len(c) == 0 or not (c[0] <= at_cost <= c[-1]):
        return float("nan")
    return float(np.interp(np.log10(at_cost), np.log10(c), m))


def compute_to_reach(costs, metrics, target: float) -> float:
    """The least cost at which the curve, walked from its cheapest point, first reaches ``target``
    (interpolated in log-cost between the two points that bracket it); NaN if it never does."""
    c, m = _curve(costs, metrics)
    if len(c) == 0 or np.isnan(target):
        return float("nan")
    if m[0] >= target:
        return float(c[0])
    for i in range(1, len(c)):
        if m[i] >= target:
            frac = (target - m[i - 1]) / (m[i] - m[i - 1])
            return float(10 ** (np.log10(c[i - 1]) + frac * (np.log10(c[i]) - np.log10(c[i - 1]))))
    return float("nan")


def accuracy_at_matched_compute(
    points: pd.DataFrame, at_costs: list[float], cost: str, metric: str, by: str = "label"
) -> pd.DataFrame:
    """Each curve's metric interpolated at each of ``at_costs``: rows = curves, columns = costs."""
    rows = {}
    for label, curve in points.groupby(by, sort=True):
        rows[label] = [interpolate_metric(curve[cost], curve[metric], x) for x in at_costs]
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(at_costs))


def matched_cost_grid(points: pd.DataFrame, cost: str, n: int = 4, by: str = "label") -> list[float]:
    """``n`` log-spaced costs where most curves can be compared: from the median of the curves'
    cheapest points to the median of their dearest (the whole range if that is empty), rounded to
    3 significant digits but kept inside the range."""
    values = points[[by, cost]].dropna()
    values = values[values[cost] > 0]
    if values.empty:
        return []
    spans = values.groupby(by)[cost].agg(["min", "max"])
    low, high = spans["min"].median(), spans["max"].median()
    if not low < high:
        low, high = values[cost].min(), values[cost].max()
    if np.isclose(low, high):
        return [float(low)]
    return sorted({min(high, max(low, float(f"{x:.3g}"))) for x in np.geomspace(low, high, n)})
