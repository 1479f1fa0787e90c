"""``skimbench results``: an experiment's trials as a table, one row per trial run, under its trial name.

Rows are sorted by label, then numerically by budget, then by seed; None parameters never show
(the name leaves them out); values below ``TINY`` in magnitude print as 0 (a zero std computed in
floating point is 1e-18, not a measurement); the table fits the terminal's width.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd

from harness.report.collect import logged_metrics
from harness.tracking import TAG, trial_runs

TINY = 1e-9


def results_frame(uri: str, experiment: str) -> pd.DataFrame:
    rows = []
    for run in trial_runs(uri, experiment):
        tags, m = run.data.tags, logged_metrics(run)  # an older store's `top1` read as `top1_pct`
        label = tags.get(f"{TAG}label", tags.get(f"{TAG}method"))
        rows.append(
            {
                "trial": tags.get(f"{TAG}name") or label,
                "label": label,
                "backbone": tags.get(f"{TAG}backbone"),
                "budget": _number(tags.get(f"{TAG}budget")),
                "seed": _number(tags.get(f"{TAG}seed")),
                "status": run.info.status,
                "top1 %": m.get("top1_pct"),
                "mAP %": m.get("map_pct"),
                "GFLOPs/video": m.get("gflops_per_video_mean"),
                "GFLOPs std": m.get("gflops_per_video_std"),
                "decoded frames": m.get("decoded_frames_per_video"),
                "decode ms": m.get("decode_ms_per_video"),
                "latency ms": m.get("latency_ms_per_video"),
                "params M": m.get("params_m"),
                "skipped videos": m.get("videos_skipped"),
                "hash": tags.get(f"{TAG}trial_hash"),
                "run_id": run.info.run_id,
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame.sort_values(["label", "budget", "seed", "trial"], na_position="first", kind="stable")
    return frame.reset_index(drop=True)


def results_table(uri: str, experiment: str, width: int | None = None) -> str:
    frame = results_frame(uri, experiment)
    if frame.empty:
        return f"no trial runs in experiment '{experiment}'"
    frame = frame.drop(columns=["run_id", "label", "budget"]).dropna(axis=1, how="all")
    frame = frame.astype({"seed": "Int64"}) if "seed" in frame else frame
    for column in frame.select_dtypes("number").columns:
        frame[column] = frame[column].mask(frame[column].abs() < TINY, 0)
    width = width or shutil.get_terminal_size().columns
    with pd.option_context("display.float_format", "{:.4g}".format):
        return frame.to_string(
            index=False, line_width=width, formatters={"trial": f"{{:<{frame['trial'].str.len().max()}}}".format}
        )


def _number(text: str | None) -> float | None:
    """A tag's JSON value as a number for sorting (budgets, seeds); None when it is not one."""
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
