"""Static figures of a report (matplotlib, Agg backend: no display needed). Each figure is written as
PNG and SVG and its PNG path returned. Colours, markers and line styles come from
``harness.report.styles``, so a method looks the same in every figure and every report."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402

from harness.report.pareto import pareto_front  # noqa: E402
from harness.report.styles import Styles  # noqa: E402

GFLOPS_LABEL = "GFLOPs per video (multiply-adds)"
LATENCY_LABEL = "Measured latency per video (ms)"
METRIC_LABELS = {"top1_pct": "Top-1 accuracy (%)", "top5_pct": "Top-5 accuracy (%)", "map_pct": "mAP (%)"}


def save(fig: plt.Figure, stem: Path) -> Path:
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".png"), dpi=130, bbox_inches="tight")
    fig.savefig(stem.with_suffix(".svg"), bbox_inches="tight")
    plt.close(fig)
    return stem.with_suffix(".png")


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def front_members_text(front: pd.DataFrame, cost: str, metric: str, cost_unit: str) -> str:
    items = [
        f"{row.label}{'' if pd.isna(row.budget) else f' @{row.budget_param}={_fmt(row.budget)}'}"
        f" ({_fmt(getattr(row, cost))} {cost_unit}, {getattr(row, metric):.1f}%)"
        for row in front.sort_values(cost).itertuples()
    ]
    return "Pareto front (deployable points, seed means): " + "; ".join(items)


def plot_tradeoff(
    points: pd.DataFrame,
    trials: pd.DataFrame,
    metric: str,
    cost: str,
    stem: Path,
    title: str,
    styles: Styles,
    chance: float | None = None,
) -> Path | None:
    """One accuracy-vs-cost figure: trials as faint dots, seed means with error bars joined along
    each method's budget knob, and the front of the deployable points as a black staircase. With
    ``chance``, a grey line at chance level and a red cross on every point at or below it."""
    mean, cost_mean, cost_std = f"{metric}_mean", f"{cost}_mean", f"{cost}_std"
    pts = points.dropna(subset=[mean, cost_mean])
    pts = pts[pts[cost_mean] > 0]
    if pts.empty:
        return None
    fig, ax = plt.subplots(figsize=(9.5, 5.8))
    for label, curve in pts.groupby("label", sort=True):
        method = curve["method"].iloc[0]
        style = styles.kwargs(method, label)
        curve = curve.sort_values(["budget", cost_mean])
        runs = trials[
            (trials["label"] == label)
            & (trials["status"] == "FINISHED")
            & (trials["dataset"] == curve["dataset"].iloc[0])
        ]
        ax.scatter(runs[cost], runs[metric], s=12, color=style["color"], alpha=0.3, linewidths=0)
        ax.errorbar(
            curve[cost_mean],
            curve[mean],
            yerr=metric_error(curve, metric),
            xerr=curve[cost_std].fillna(0),
            capsize=3,
            markersize=7,
            linewidth=1.5,
            **style,
        )
    deployable = pts[pts["deployable"].astype(bool)]
    on_front = deployable[pareto_front(deployable, cost_mean, mean)]
    if not on_front.empty:
        f = on_front.sort_values(cost_mean)
        ax.step(
            f[cost_mean],
            f[mean],
            where="post",
            color="black",
            linewidth=1,
            linestyle="--",
            zorder=1,
            label="Pareto front (deployable)",
        )
        ax.scatter(f[cost_mean], f[mean], s=160, facecolors="none", edgecolors="black", linewidths=1.2, zorder=5)
    if chance is not None and not pd.isna(chance):
        ax.axhline(chance, color="0.5", linewidth=1, linestyle=":", zorder=0, label=f"chance level ({chance:.1f}%)")
        below = pts[pts[mean] <= chance]
        if not below.empty:
            ax.scatter(
                below[cost_mean],
                below[mean],
                s=90,
                marker="x",
                color="red",
                linewidths=1.6,
                zorder=6,
                label="at or below chance",
            )
    log_x(ax)
    ax.set_xlabel(GFLOPS_LABEL if cost.startswith("gflops") else LATENCY_LABEL)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    note = (
        "Points: seed means; vertical bars: 95% interval (bootstrap over seeds and test videos; std over "
        "seeds where a point has no predictions); faint dots: single trials; circled: on the front."
    )
    if not on_front.empty:
        unit = "GFLOPs" if cost.startswith("gflops") else "ms"
        note += " " + front_members_text(on_front.rename(columns={cost_mean: cost, mean: metric}), cost, metric, unit)
    fig.text(0.01, -0.01, textwrap.fill(note, 160), fontsize=7, va="top", ha="left")
    return save(fig, stem)


def metric_error(curve: pd.DataFrame, metric: str) -> np.ndarray:
    """Asymmetric error bars [2, n]: the 95% interval (``<metric>_lo/_hi``) where known, else ± std."""
    mean, std = curve[f"{metric}_mean"].to_numpy(float), curve[f"{metric}_std"].fillna(0).to_numpy(float)
    lo = curve[f"{metric}_lo"].to_numpy(float) if f"{metric}_lo" in curve else np.full(len(curve), np.nan)
    hi = curve[f"{metric}_hi"].to_numpy(float) if f"{metric}_hi" in curve else np.full(len(curve), np.nan)
    below = np.where(np.isnan(lo), std, np.maximum(mean - lo, 0))
    above = np.where(np.isnan(hi), std, np.maximum(hi - mean, 0))
    return np.vstack([below, above])


def plain(value: float, _=None) -> str:
    """A tick label as a plain number: 0.01, 1, 1000 (never 10^3 or 1e+03)."""
    return f"{value:.10f}".rstrip("0").rstrip(".") if value < 1 else f"{value:.0f}"


def log_x(ax: plt.Axes, axis_name: str = "x") -> None:
    """Log scale with plain-number labels at the decades (0.1, 1, 10); when the data span less than
    about a decade, also at 2 and 5, so that at least two ticks are labelled."""
    getattr(ax, f"set_{axis_name}scale")("log")
    axis = ax.xaxis if axis_name == "x" else ax.yaxis
    low, high = sorted(ax.get_xlim() if axis_name == "x" else ax.get_ylim())
    decades = np.floor(np.log10(high)) - np.ceil(np.log10(low)) + 1 if low > 0 else 2
    axis.set_major_locator(
        ticker.LogLocator(
            base=10, subs=(1.0,) if decades >= 2 else (1.0, 2.0, 5.0) if decades == 1 else (1.0, 2.0, 3.0, 5.0, 7.0)
        )
    )
    axis.set_major_formatter(ticker.FuncFormatter(plain))
    axis.set_minor_locator(ticker.LogLocator(base=10, subs=np.arange(2, 10)))
    axis.set_minor_formatter(ticker.NullFormatter())


def plot_cost_distributions(
    per_video: Mapping[tuple[str, float], np.ndarray],
    stem: Path,
    title: str,
    knobs: Mapping[str, str] | None = None,
    styles: Styles | None = None,
    methods: Mapping[str, str] | None = None,
) -> Path | None:
    """Horizontal box plots of per-video GFLOPs, one row per (curve, budget) of the dynamic methods,
    grouped by curve and coloured by method (``methods``: label -> method); the height grows with
    the rows so that every label stays readable."""
    groups = [
        (k, np.asarray(v, float)) for k, v in sorted(per_video.items(), key=lambda kv: (kv[0][0], kv[0][1])) if len(v)
    ]
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(9.0, 1.2 + 0.32 * len(groups)))
    data = [v for _, v in groups]
    positions = np.arange(len(groups), 0, -1)  # first curve on top
    boxes = ax.boxplot(
        data,
        positions=positions,
        orientation="horizontal",
        widths=0.6,
        showmeans=True,
        patch_artist=True,
        medianprops={"color": "black"},
        meanprops={"marker": "^", "markerfacecolor": "white", "markeredgecolor": "k", "markersize": 5},
        flierprops={"markersize": 3},
    )
    for box, ((label, _), _) in zip(boxes["boxes"], groups):
        colour = styles.kwargs((methods or {}).get(label, label), label)["color"] if styles else "tab:blue"
        box.set_facecolor(colour)
        box.set_alpha(0.75)
    ax.set_yticks(positions)
    ax.set_yticklabels(
        [f"{label}  {budget_text(budget, (knobs or {}).get(label))}" for (label, budget), _ in groups], fontsize=8
    )
    ax.set_ylim(0.4, len(groups) + 0.6)
    ax.set_xlabel(GFLOPS_LABEL)
    lo, hi = min(v.min() for v in data), max(v.max() for v in data)
    if lo > 0 and hi / lo > 20:
        log_x(ax)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", which="both", alpha=0.25)
    return save(fig, stem)


def budget_text(budget: float, knob: str | None = None) -> str:
    return "" if budget is None or pd.isna(budget) else f"{knob or 'budget'}={_fmt(budget)}"


def plot_count_histograms(
    counts: Mapping[tuple[str, float], np.ndarray],
    stem: Path,
    xlabel: str,
    title: str,
    knobs: Mapping[str, str] | None = None,
    colour: str = "tab:blue",
) -> Path | None:
    """One histogram per (curve, budget) of a per-video count (a declared per-video fact), in the
    method's colour."""
    groups = [(k, np.asarray(v, int)) for k, v in sorted(counts.items()) if len(v)]
    if not groups:
        return None
    cols = min(3, len(groups))
    rows = int(np.ceil(len(groups) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, ((label, budget), values) in zip(axes.flat, groups):
        edges = np.arange(values.min() - 0.5, values.max() + 1.5)
        ax.hist(values, bins=edges, color=colour, edgecolor="white")
        ax.set_title(f"{label} {budget_text(budget, (knobs or {}).get(label))}", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("videos", fontsize=8)
        low, high = int(values.min()), int(values.max())
        ax.set_xlim(low - 1.5, high + 1.5)
        ax.xaxis.set_major_locator(
            ticker.FixedLocator(range(low - 1, high + 2)) if high - low <= 12 else ticker.MaxNLocator(integer=True)
        )
        ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, stem)


def plot_selection_quality(quality: pd.DataFrame, stem: Path, title: str, styles: Styles) -> Path | None:
    """Precision and recall of selected frames/clips against compute, one line per curve, with chance."""
    if quality.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharex=True)
    for label, curve in quality.groupby("label", sort=True):
        curve = curve.sort_values(["budget", "gflops_per_video_mean"])
        style = styles.kwargs(curve["method"].iloc[0], label)
        style["label"] = f"{style['label']} [{curve['unit'].iloc[0]}s]"
        for ax, what in zip(axes, ("precision", "recall")):
            ax.errorbar(
                curve["gflops_per_video_mean"],
                100 * curve[f"{what}_mean"],
                yerr=100 * curve[f"{what}_std"].fillna(0),
                capsize=3,
                **style,
            )
    chance = 100 * quality["chance"].mean()
    axes[0].axhline(chance, color="0.4", linewidth=1, linestyle="--", label=f"chance ({chance:.0f}% relevant)")
    for ax, what in zip(axes, ("Precision", "Recall")):
        log_x(ax)
        ax.set_xlabel(GFLOPS_LABEL)
        ax.set_ylabel(f"{what} of selected units (%)")
        ax.set_ylim(-2, 102)
        ax.grid(True, which="both", alpha=0.25)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].legend(
        [h for h, name in zip(handles, labels) if name.startswith("chance")],
        [name for name in labels if name.startswith("chance")],
        loc="lower right",
        fontsize=8,
    )
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, stem)


def plot_filmstrip(
    video_ids: Sequence[str],
    get_frames: Callable[[str], np.ndarray],
    selections: Mapping[str, Mapping[str, np.ndarray]],
    relevance: Mapping[str, Sequence[int]] | None,
    stem: Path,
    title: str,
    thumbs: int = 10,
) -> Path | None:
    """For each video: a strip of evenly spaced thumbnails, then one timeline row per method whose
    selected frames are filled, and the ground-truth relevant frames as the first row.

    ``selections[video_id][label]`` is a boolean per-frame mask (clips already expanded to frames).
    """
    video_ids = [v for v in video_ids if selections.get(v)]
    if not video_ids:
        return None
    n_methods = max(len(selections[v]) for v in video_ids)
    height = len(video_ids) * (1.9 + 0.22 * (n_methods + 1)) + 0.8
    fig = plt.figure(figsize=(13, height))
    outer = fig.add_gridspec(len(video_ids), 1, hspace=0.45, top=1 - 0.95 / height)
    for row, vid in enumerate(video_ids):
        frames = np.asarray(get_frames(vid))
        n = len(frames)
        inner = outer[row].subgridspec(2, 1, height_ratios=[1.6, 0.22 * (n_methods + 1)], hspace=0.08)
        strip_ax = fig.add_subplot(inner[0])
        picks = np.unique(np.linspace(0, n - 1, min(thumbs, n)).round().astype(int))
        strip_ax.imshow(np.concatenate([frames[i] for i in picks], axis=1))
        width = frames.shape[2]
        strip_ax.set_xticks([(j + 0.5) * width for j in range(len(picks))])
        strip_ax.set_xticklabels([f"frame {i}" for i in picks], fontsize=7)
        strip_ax.xaxis.tick_top()
        strip_ax.set_yticks([])
        strip_ax.set_title(f"video {vid} ({n} frames)", fontsize=9, loc="left", pad=14)
        rows_data = []
        names = []
        if relevance is not None and vid in relevance:
            rows_data.append(np.asarray(relevance[vid], float)[:n] * 2)
            names.append("ground truth: relevant")
        for label, mask in sorted(selections[vid].items()):
            rows_data.append(np.asarray(mask, float)[:n])
            names.append(label)
        time_ax = fig.add_subplot(inner[1])
        cmap = matplotlib.colors.ListedColormap(["#f2f2f2", "#1f77b4", "#d62728"])
        time_ax.imshow(
            np.vstack(rows_data),
            aspect="auto",
            cmap=cmap,
            vmin=0,
            vmax=2,
            interpolation="nearest",
            extent=(-0.5, n - 0.5, len(rows_data) - 0.5, -0.5),
        )
        time_ax.set_yticks(range(len(names)))
        time_ax.set_yticklabels(names, fontsize=7)
        time_ax.set_xlabel("frame index (red: relevant ground truth, blue: frames the method looked at)", fontsize=7)
        time_ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(title, y=1 - 0.1 / height, va="top")
    return save(fig, stem)
