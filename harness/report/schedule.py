"""The report's "schedule" section: where a grid's time went, per worker.

From MLflow: each trial's schedule metrics (``sched_start``, ``sched_end``, ``sched_pid``,
``sched_queue_wait_s``, ``sched_stage_wait_s``; ``harness.launchers.execute``) and each launch's
``schedule_stages.json`` on its parent run (the stages computed, by which process, when;
``harness.runner.log_stage_spans``). A worker is a process: one lane of the Gantt chart.

Efficiency figures of the latest launch (the span from its first start to its last end):
``busy`` = worker time spent on trials and stages / (workers x span); ``stage_wait`` = share of
worker time that trials spent computing or waiting on a stage themselves (a file lock);
``queue_wait_mean_s`` = mean time a trial waited for a free worker once its stages were done.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import pandas as pd  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from harness.tracking import TAG  # noqa: E402

COLUMNS = ["lane", "kind", "label", "start", "end"]


def stage_spans(tracking_uri: str, experiments: list[str]) -> list[dict]:
    """The stage spans each launch of these experiments logged on its parent run."""
    client = MlflowClient(tracking_uri=tracking_uri)
    spans: list[dict] = []
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            continue
        for run in client.search_runs(
            [exp.experiment_id], filter_string=f"tags.`{TAG}role` = 'launch'", max_results=1000
        ):
            try:
                path = client.download_artifacts(run.info.run_id, "schedule_stages.json")
            except Exception:  # noqa: BLE001 - a launch from before schedules were logged
                continue
            spans += json.loads(Path(path).read_text())
    return spans


def intervals(trials: pd.DataFrame, spans: list[dict]) -> pd.DataFrame:
    """One row per trial and stage computation: lane (worker process), kind, label, start, end."""
    rows = []
    if "sched_start" in trials:
        for row in trials.dropna(subset=["sched_start", "sched_end"]).itertuples():
            lane = f"pid {int(row.sched_pid)}" if pd.notna(getattr(row, "sched_pid", None)) else "?"
            knob = getattr(row, "budget_param", None)
            budget = getattr(row, "budget", None)
            budget = f" {knob}={budget:g}" if isinstance(knob, str) and pd.notna(budget) else ""
            rows.append((lane, "trial", f"{getattr(row, 'label', row.method)}{budget}", row.sched_start, row.sched_end))
    for span in spans:
        if span.get("end") is not None:
            rows.append((f"pid {span['pid']}", "stage", span["stage"], span["start"], span["end"]))
    return pd.DataFrame(rows, columns=COLUMNS)


def latest_launch(table: pd.DataFrame, gap_s: float = 60.0) -> pd.DataFrame:
    """The intervals of the last launch: those after the last gap of more than ``gap_s`` with no work."""
    if table.empty:
        return table
    table = table.sort_values("start").reset_index(drop=True)
    reach, first = table["end"].iloc[0], 0
    for i in range(1, len(table)):
        if table["start"].iloc[i] > reach + gap_s:
            first = i
        reach = max(reach, table["end"].iloc[i])
    return table.iloc[first:]


def efficiency(table: pd.DataFrame, trials: pd.DataFrame) -> dict[str, float]:
    """Workers, span, busy share, share of worker time waiting on stages, mean queue wait (see the module)."""
    if table.empty:
        return {}
    span = float(table["end"].max() - table["start"].min())
    workers = table["lane"].nunique()
    busy = float((table["end"] - table["start"]).sum())
    ran = (
        trials[trials["sched_start"].between(table["start"].min(), table["end"].max())]
        if "sched_start" in trials
        else trials.iloc[0:0]
    )
    waited = float(ran["sched_stage_wait_s"].fillna(0).sum()) if "sched_stage_wait_s" in ran else float("nan")
    queue = float(ran["sched_queue_wait_s"].mean()) if "sched_queue_wait_s" in ran else float("nan")
    return {
        "workers": float(workers),
        "span_s": span,
        "busy": busy / (workers * span) if span > 0 else float("nan"),
        "stage_wait": waited / busy if busy > 0 else float("nan"),
        "queue_wait_mean_s": queue,
        "trials": float(len(ran)),
        "stages": float((table["kind"] == "stage").sum()),
    }


def plot_gantt(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Workers' timeline: one lane per process, trials in blue, stages in orange, seconds from the start."""
    lanes = sorted(table["lane"].unique())
    t0 = table["start"].min()
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.5 * len(lanes)))
    for kind, color in (("trial", "tab:blue"), ("stage", "tab:orange")):
        part = table[table["kind"] == kind]
        for row in part.itertuples():
            y = lanes.index(row.lane)
            ax.barh(
                y,
                row.end - row.start,
                left=row.start - t0,
                height=0.6,
                color=color,
                edgecolor="white",
                linewidth=0.5,
                label=kind if row.Index == part.index[0] else None,
            )
            # a label only as long as its bar holds (about 200 characters of 6 pt text span the axis)
            fits = int(200 * (row.end - row.start) / max(1e-9, table["end"].max() - t0)) - 1
            if fits >= 6:
                text = row.label if len(row.label) <= fits else row.label[: fits - 1] + "…"
                ax.text(row.start - t0 + 0.3, y, text, va="center", fontsize=6, color="white", clip_on=True)
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_xlabel("seconds since the first task started")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def schedule_section(tracking_uri: str, experiments: list[str], trials: pd.DataFrame, figures: Path) -> list[str]:
    """The report's Markdown lines for the schedule (a sentence when no trial recorded its schedule)."""
    md = ["## Schedule", ""]
    table = latest_launch(intervals(trials, stage_spans(tracking_uri, experiments)))
    if table.empty:
        return md + ["_No trial recorded its schedule (runs from before schedules were logged)._", ""]
    figures_ = efficiency(table, trials)
    path = plot_gantt(table, figures / "schedule_gantt.png", f"{', '.join(experiments)}: workers' timeline")
    md += [
        f"![workers' timeline](figures/{path.name})",
        "",
        f"Latest launch: {figures_['trials']:.0f} trials and {figures_['stages']:.0f} stage computations on "
        f"{figures_['workers']:.0f} workers over {figures_['span_s']:.0f} s. Workers busy "
        f"{100 * figures_['busy']:.0f}% of the span; trials waited on stages themselves "
        f"{100 * figures_['stage_wait']:.1f}% of worker time; mean queue wait once a trial's stages were done "
        f"{figures_['queue_wait_mean_s']:.1f} s.",
        "",
    ]
    return md
