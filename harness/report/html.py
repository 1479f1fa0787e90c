"""The interactive report page: one plotly chart per dataset and metric, hover showing each point's
parameters, run ids and per-video GFLOPs spread. plotly.js is embedded in the page, so it opens
from disk with no network."""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative

from harness.report.plots import GFLOPS_LABEL, METRIC_LABELS, metric_error
from harness.report.stats import mean_ci
from harness.report.tables import COST, front_mask

SYMBOLS = ["circle", "square", "triangle-up", "diamond", "triangle-down", "cross", "x", "triangle-left",
           "triangle-right", "hexagon", "star", "pentagon"]


def hover_text(row: pd.Series, metric: str) -> str:
    params = json.dumps(row["params"], sort_keys=True) if isinstance(row["params"], dict) else str(row["params"])
    budget = "" if pd.isna(row["budget"]) else f"{row['budget_param']} = {row['budget']:g}<br>"
    std = "" if pd.isna(row[f"{metric}_std"]) else f", std over seeds {row[f'{metric}_std']:.2f}"
    ci = mean_ci(row[f"{metric}_mean"], row.get(f"{metric}_lo", np.nan), row.get(f"{metric}_hi", np.nan), 2)
    return (f"<b>{html.escape(row['label'])}</b><br>{budget}"
            f"{metric}: {ci} %{std}, {row['n_seeds']} seed(s) {row['seeds']}<br>"
            f"GFLOPs/video: {row[COST]:.4g} (per-video std {row['gflops_per_video_std_mean']:.3g}, "
            f"min {row['gflops_per_video_min_mean']:.4g}, max {row['gflops_per_video_max_mean']:.4g})<br>"
            f"latency: {row['latency_ms_per_video_mean']:.3g} ms/video<br>"
            f"params: {html.escape(params, quote=False)}<br>runs: {', '.join(row['run_ids'])}")


def tradeoff_figure(points: pd.DataFrame, metric: str, title: str) -> go.Figure:
    pts = points.dropna(subset=[f"{metric}_mean", COST])
    fig = go.Figure()
    methods = sorted(pts["method"].unique())
    colours = {m: qualitative.D3[i % len(qualitative.D3)] for i, m in enumerate(methods)}
    symbols = {m: SYMBOLS[i % len(SYMBOLS)] for i, m in enumerate(methods)}
    for label, curve in pts.groupby("label", sort=True):
        curve = curve.sort_values(["budget", COST])
        method = curve["method"].iloc[0]
        deployable = bool(curve["deployable"].iloc[0])
        bars = metric_error(curve, metric)  # the 95% interval where known
        fig.add_trace(go.Scatter(
            x=curve[COST], y=curve[f"{metric}_mean"], mode="lines+markers",
            name=label if deployable else f"{label} (non-deployable)",
            error_y={"type": "data", "symmetric": False, "array": bars[1], "arrayminus": bars[0], "visible": True},
            line={"color": colours[method], "dash": "solid" if deployable else "dot"},
            marker={"symbol": symbols[method] + ("" if deployable else "-open"), "size": 9},
            hovertext=[hover_text(r, metric) for _, r in curve.iterrows()], hoverinfo="text"))
    front = pts[front_mask(pts, metric).loc[pts.index]].sort_values(COST)
    if not front.empty:
        fig.add_trace(go.Scatter(x=front[COST], y=front[f"{metric}_mean"], mode="lines",
                                 name="Pareto front (deployable)",
                                 line={"color": "black", "dash": "dash", "shape": "hv", "width": 1}, hoverinfo="skip"))
    fig.update_layout(title=title, template="plotly_white", height=560, hoverlabel={"align": "left"},
                      xaxis={"type": "log", "title": GFLOPS_LABEL},
                      yaxis={"title": METRIC_LABELS.get(metric, metric)})
    return fig


def write_html(points: pd.DataFrame, metrics: list[str], path: Path, title: str, notes: str = "") -> Path:
    """One self-contained page with a chart per (dataset, metric) that has data."""
    parts = []
    first = True
    for dataset, group in points.groupby("dataset", sort=True):
        for metric in metrics:
            if group[f"{metric}_mean"].notna().any():
                name = METRIC_LABELS.get(metric, metric)
                fig = tradeoff_figure(group, metric, f"{dataset}: {name} vs GFLOPs per video")
                parts.append(pio.to_html(fig, include_plotlyjs=first, full_html=False))
                first = False
    body = "\n".join(parts) or "<p>No finished trials with both a metric and GFLOPs.</p>"
    page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family: sans-serif; max-width: 1200px; margin: auto'>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(notes)}</p>\n{body}\n</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
