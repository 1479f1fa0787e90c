"""Does a method look at the frames that matter? Precision and recall of its selection against the
built-in benchmark's per-frame relevance ground truth.

Rules (stated in every report):

* ``Prediction.selected`` holds frame indices, or clip indices for methods whose
  ``selection_unit`` is "clip"; clip c covers frames [c * clip_len, (c + 1) * clip_len).
* Scoring happens in the method's own unit. A clip is relevant if ANY of its frames is relevant.
* Per video: precision = relevant selected units / selected units; recall = relevant selected
  units / relevant units. A method's figure is the mean over videos (videos with nothing
  selected are left out of precision, videos with nothing relevant out of recall).
* ``chance`` = the fraction of units that are relevant: the precision of a selection blind to
  content, to read precision against.
* Methods that select nothing per video (in-network methods) get no row.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd


def unit_relevance(frame_relevance: Sequence[int], unit: str, clip_len: int | None) -> np.ndarray:
    """Per-unit relevance: the frames' own, or per clip "any frame of the clip is relevant"."""
    rel = np.asarray(frame_relevance, dtype=bool)
    if unit != "clip":
        return rel
    if not clip_len or clip_len < 1:
        raise ValueError("clip selections need the trial's clip_len (evaluation.clip_len)")
    n_clips = int(np.ceil(len(rel) / clip_len))
    return np.array([rel[c * clip_len : (c + 1) * clip_len].any() for c in range(n_clips)], dtype=bool)


def video_selection_scores(
    selected: Sequence[int], frame_relevance: Sequence[int], unit: str = "frame", clip_len: int | None = None
) -> dict[str, float]:
    """precision, recall, chance and counts for one video; indices outside the video are ignored."""
    rel = unit_relevance(frame_relevance, unit, clip_len)
    chosen = np.unique([i for i in selected if 0 <= int(i) < len(rel)]).astype(int)
    hits = int(rel[chosen].sum()) if len(chosen) else 0
    n_relevant = int(rel.sum())
    return {
        "precision": hits / len(chosen) if len(chosen) else np.nan,
        "recall": hits / n_relevant if n_relevant else np.nan,
        "chance": n_relevant / len(rel) if len(rel) else np.nan,
        "n_selected": len(chosen),
        "n_relevant": n_relevant,
        "n_units": len(rel),
    }


def trial_selection_scores(
    predictions: pd.DataFrame, relevance: Mapping[str, Sequence[int]], unit: str, clip_len: int | None
) -> dict[str, float] | None:
    """Mean per-video scores of one trial; None when the trial selected nothing or no video has ground truth."""
    per_video = [
        video_selection_scores(row.selected, relevance[str(row.video_id)], unit, clip_len)
        for row in predictions.itertuples()
        if row.selected is not None and str(row.video_id) in relevance
    ]
    if not per_video:
        return None
    table = pd.DataFrame(per_video)
    return {
        "precision": table["precision"].mean(),
        "recall": table["recall"].mean(),
        "chance": table["chance"].mean(),
        "selected_per_video": table["n_selected"].mean(),
        "videos_scored": len(table),
    }


def selection_quality(
    trials: pd.DataFrame, predictions: Mapping[str, pd.DataFrame], relevance: Mapping[str, Sequence[int]]
) -> pd.DataFrame:
    """Per (dataset, label, budget): precision/recall means (and std over seeds) from finished trials.

    ``trials`` needs ``label`` (``collect.label_series``); ``predictions`` maps run_id -> table.
    """
    rows = []
    for trial in trials.itertuples():
        table = predictions.get(trial.run_id)
        if table is None or trial.status != "FINISHED":
            continue
        unit = trial.selection_unit if isinstance(trial.selection_unit, str) else "frame"
        clip_len = None if pd.isna(trial.clip_len) else int(trial.clip_len)
        if unit == "clip" and not clip_len:
            continue  # clips without a known length cannot be mapped to frames
        scores = trial_selection_scores(table, relevance, unit, clip_len)
        if scores:
            rows.append(
                {
                    "dataset": trial.dataset,
                    "label": trial.label,
                    "method": trial.method,
                    "budget": trial.budget,
                    "seed": trial.seed,
                    "unit": unit,
                    "gflops_per_video_mean": trial.gflops_per_video_mean,
                    **scores,
                }
            )
    if not rows:
        return pd.DataFrame(
            columns=[
                "dataset",
                "label",
                "method",
                "budget",
                "unit",
                "n_seeds",
                "precision_mean",
                "precision_std",
                "recall_mean",
                "recall_std",
                "chance",
                "selected_per_video",
                "gflops_per_video_mean",
            ]
        )
    per_trial = pd.DataFrame(rows)
    grouped = per_trial.groupby(["dataset", "label", "budget"], dropna=False, sort=True)
    summary = grouped.agg(
        method=("method", "first"),
        unit=("unit", "first"),
        n_seeds=("seed", "size"),
        precision_mean=("precision", "mean"),
        precision_std=("precision", "std"),
        recall_mean=("recall", "mean"),
        recall_std=("recall", "std"),
        chance=("chance", "mean"),
        selected_per_video=("selected_per_video", "mean"),
        gflops_per_video_mean=("gflops_per_video_mean", "mean"),
    )
    return summary.reset_index()
