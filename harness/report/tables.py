"""Report tables as DataFrames, written as CSV (full precision), Markdown and LaTeX (formatted).

Every table is computed from seed means (``pareto.seed_summary``). GFLOPs per video are shown as
mean ± std over the test videos (as LiteEval reports them), averaged over seeds; accuracy as
``mean [lo, hi]``, the 95% interval of ``harness.report.stats`` (seeds and test videos
resampled), with the std over seeds beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from harness.report.pareto import (
    accuracy_at_matched_compute,
    compute_to_reach,
    front_share,
    matched_cost_grid,
    pareto_front,
)
from harness.report.stats import mean_ci

COST = "gflops_per_video_mean_mean"


def pm(mean: float, std: float, digits: int = 1) -> str:
    """``mean ± std``; the std is omitted when unknown (one seed), '—' when the mean is."""
    if mean is None or pd.isna(mean):
        return "—"
    return f"{mean:.{digits}f}" if std is None or pd.isna(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def num(value: float, digits: int = 3) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.{digits}g}"


def budget_cell(row) -> str:
    return "—" if pd.isna(row["budget"]) else f"{row['budget_param']}={row['budget']:g}"


def front_mask(points: pd.DataFrame, metric: str, cost: str = COST) -> pd.Series:
    """Front membership over the deployable points; non-deployable points are never members."""
    mask = pd.Series(False, index=points.index)
    deployable = points[points["deployable"].astype(bool)]
    mask.loc[deployable.index] = pareto_front(deployable, cost, f"{metric}_mean")
    return mask


def method_table(points: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per curve and budget: metric, GFLOPs per video, params, latency, throughput, memory, front.
    Returns (numeric table for CSV, formatted table for Markdown/LaTeX)."""
    on_front = front_mask(points, metric)
    numeric = pd.DataFrame(
        {
            "dataset": points["dataset"],
            "method": points["label"],
            "budget_param": points["budget_param"],
            "budget": points["budget"],
            "seeds": points["n_seeds"],
            f"{metric}_mean": points[f"{metric}_mean"],
            f"{metric}_std_over_seeds": points[f"{metric}_std"],
            f"{metric}_ci95_lo": points.get(f"{metric}_lo", np.nan),
            f"{metric}_ci95_hi": points.get(f"{metric}_hi", np.nan),
            "gflops_per_video_mean": points[COST],
            "gflops_per_video_std_over_videos": points["gflops_per_video_std_mean"],
            "gflops_selection_mean": points["gflops_selection_mean_mean"],
            "decoded_frames_per_video": points["decoded_frames_per_video_mean"],
            "decode_ms_per_video": points["decode_ms_per_video_mean"],
            "params_m": points["params_m_mean"],
            "latency_ms_per_video": points["latency_ms_per_video_mean"],
            "throughput_videos_per_s": points["throughput_videos_per_s_mean"],
            "peak_memory_mb": points["peak_memory_mb_mean"],
            "deployable": points["deployable"].astype(bool),
            "on_front": on_front,
        }
    )
    text = pd.DataFrame(
        {
            "dataset": numeric["dataset"],
            "method": numeric["method"],
            "budget": [budget_cell(r) for _, r in points.iterrows()],
            "seeds": numeric["seeds"],
            f"{metric} [95% CI]": [
                mean_ci(m, lo, hi)
                for m, lo, hi in zip(
                    numeric[f"{metric}_mean"], numeric[f"{metric}_ci95_lo"], numeric[f"{metric}_ci95_hi"]
                )
            ],
            "std over seeds": [num(s, 2) for s in numeric[f"{metric}_std_over_seeds"]],
            "GFLOPs/video": [
                pm(m, s, 3)
                for m, s in zip(numeric["gflops_per_video_mean"], numeric["gflops_per_video_std_over_videos"])
            ],
            "of which selection": [num(v) for v in numeric["gflops_selection_mean"]],
            "decoded frames/video": [num(v) for v in numeric["decoded_frames_per_video"]],
            "decode (ms/video)": [num(v) for v in numeric["decode_ms_per_video"]],
            "params (M)": [num(v) for v in numeric["params_m"]],
            "latency (ms/video)": [num(v) for v in numeric["latency_ms_per_video"]],
            "throughput (videos/s)": [num(v) for v in numeric["throughput_videos_per_s"]],
            "peak memory (MB)": [num(v, 4) for v in numeric["peak_memory_mb"]],
            "front": [
                "yes" if f else ("n/a (non-deployable)" if not d else "")
                for f, d in zip(numeric["on_front"], numeric["deployable"])
            ],
        }
    )
    return numeric.reset_index(drop=True), text.reset_index(drop=True)


def matched_compute_table(
    points: pd.DataFrame,
    metric: str,
    n: int = 4,
    interval_at: Callable[[pd.DataFrame, float], tuple[float, float]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each curve's metric interpolated at a few shared GFLOPs values (per dataset), with its 95%
    interval where ``interval_at(curve, cost)`` gives one (CSV columns ``... lo`` / ``... hi``)."""
    frames = []
    for dataset, group in points.groupby("dataset", sort=True):
        grid = matched_cost_grid(group, COST, n)
        table = accuracy_at_matched_compute(group, grid, COST, f"{metric}_mean")
        columns = [f"{metric} @ {c:.3g} GFLOPs" for c in grid]
        table.columns = columns
        for column, cost in zip(columns, grid):
            bounds = [
                interval_at(group[group["label"] == label], cost)
                if interval_at and not pd.isna(v)
                else (np.nan, np.nan)
                for label, v in table[column].items()
            ]
            table[f"{column} lo"], table[f"{column} hi"] = [b[0] for b in bounds], [b[1] for b in bounds]
        frames.append(table.rename_axis("method").reset_index().assign(dataset=dataset))
    if not frames:
        return pd.DataFrame(), pd.DataFrame()
    numeric = pd.concat(frames, ignore_index=True)
    numeric = numeric[["dataset", "method"] + [c for c in numeric.columns if c not in ("dataset", "method")]]
    values = [c for c in numeric.columns[2:] if not c.endswith((" lo", " hi"))]
    text = numeric[["dataset", "method"]].copy()
    for column in values:
        text[column] = [
            mean_ci(v, lo, hi) for v, lo, hi in zip(numeric[column], numeric[f"{column} lo"], numeric[f"{column} hi"])
        ]
    return numeric, text


def reach_reference_table(points: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GFLOPs each curve needs to reach the full-evaluation baseline's metric: the costliest deployable
    point of a method without a budget knob (same dataset, backbone and experiment), interpolated on
    each curve; NaN when a curve never reaches it within its measured budgets."""
    rows = []
    for (dataset, backbone, experiment), group in points.groupby(["dataset", "backbone", "experiment"], sort=True):
        full = group[group["budget_param"].isna() & group["deployable"].astype(bool)].dropna(subset=[f"{metric}_mean"])
        if full.empty:
            continue
        reference = full.sort_values(COST).iloc[-1]
        for label, curve in group.groupby("label", sort=True):
            need = compute_to_reach(curve[COST], curve[f"{metric}_mean"], reference[f"{metric}_mean"])
            rows.append(
                {
                    "dataset": dataset,
                    "method": label,
                    "reference": reference["label"],
                    "reference_metric": reference[f"{metric}_mean"],
                    "reference_gflops": reference[COST],
                    "gflops_to_reach_reference": need,
                    "fraction_of_reference_gflops": need / reference[COST] if reference[COST] else np.nan,
                    "best_metric": curve[f"{metric}_mean"].max(),
                }
            )
    numeric = pd.DataFrame(rows)
    if numeric.empty:
        return numeric, numeric
    text = pd.DataFrame(
        {
            "dataset": numeric["dataset"],
            "method": numeric["method"],
            "reference": numeric["reference"],
            f"reference {metric}": [pm(v, None) for v in numeric["reference_metric"]],
            "reference GFLOPs": [num(v) for v in numeric["reference_gflops"]],
            "GFLOPs to reach it": [
                num(v) if not pd.isna(v) else "not reached" for v in numeric["gflops_to_reach_reference"]
            ],
            "× reference GFLOPs": [num(v, 2) for v in numeric["fraction_of_reference_gflops"]],
            f"best {metric}": [pm(v, None) for v in numeric["best_metric"]],
        }
    )
    return numeric, text


def front_share_table(points: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = []
    for dataset, group in points.groupby("dataset", sort=True):
        share = front_share(group, front_mask(group, metric).loc[group.index])
        frames.append(share.rename(columns={"label": "method"}).assign(dataset=dataset))
    numeric = pd.concat(frames, ignore_index=True)[["dataset", "method", "n_points", "n_on_front", "share_of_front"]]
    text = numeric.copy()
    text["share_of_front"] = [f"{100 * v:.0f}%" if not pd.isna(v) else "—" for v in numeric["share_of_front"]]
    return numeric, text


# -- writers ---------------------------------------------------------------------------------


def to_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "_(no rows)_\n"
    cells = [[str(c).replace("|", "\\|") for c in row] for row in table.astype(str).itertuples(index=False)]
    header = [str(c).replace("|", "\\|") for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "×": r"$\times$",
    "—": "--",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def latex_escape(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(table: pd.DataFrame, caption: str) -> str:
    """A booktabs table (needs ``\\usepackage{booktabs}``)."""
    columns = "l" * len(table.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        f"\\caption{{{latex_escape(caption)}}}",
        f"\\begin{{tabular}}{{{columns}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in table.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.astype(str).itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(numeric: pd.DataFrame, text: pd.DataFrame, stem: Path, caption: str) -> str:
    """Write ``stem``.csv/.md/.tex; return the Markdown for embedding in report.md."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    numeric.to_csv(stem.with_suffix(".csv"), index=False)
    markdown = to_markdown(text)
    stem.with_suffix(".md").write_text(f"{caption}\n\n{markdown}")
    stem.with_suffix(".tex").write_text(to_latex(text, caption))
    return markdown


def ratio_text(r: float) -> str:
    """A cost ratio as the papers write it: ``1:98`` for a cheaper component, ``3.2:1`` for a dearer one."""
    return "—" if pd.isna(r) or r <= 0 else f"{r:.3g}:1" if r >= 1 else f"1:{1 / r:.3g}"


def cost_regime_table(
    components: Mapping[tuple[str, str, str], list[dict]], paper: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per curve and component: GFLOPs per call (the calls-weighted mean over its realised shapes,
    from ``flops_components.json``), and its ratio to the curve's costliest recognition component,
    with the paper's cheap-to-heavy ratio beside it where the method's claims declare one.
    ``components``: (dataset, label, method) -> one trial's component rows."""
    rows = []
    for (dataset, label, method), table in sorted(components.items()):
        per: dict[str, dict[str, Any]] = {}
        for r in table:
            entry = per.setdefault(r["component"], {"role": r.get("role", "recognition"), "flops": 0.0, "calls": 0})
            entry["flops"] += float(r["gflops_per_call"]) * int(r.get("calls") or 0)
            entry["calls"] += int(r.get("calls") or 0)
        if not per:
            continue
        gflops = {c: (e["flops"] / e["calls"] if e["calls"] else np.nan) for c, e in per.items()}
        heavy = max(
            (g for c, g in gflops.items() if per[c]["role"] == "recognition" and not pd.isna(g)), default=np.nan
        )
        cost = paper.get(method)
        for component, g in gflops.items():
            rows.append(
                {
                    "dataset": dataset,
                    "method": label,
                    "component": component,
                    "role": per[component]["role"],
                    "gflops_per_call": g,
                    "calls_all_videos": per[component]["calls"],
                    "ratio_to_heaviest_recognition": g / heavy if heavy else np.nan,
                    "paper_ratio": cost.ratio if cost else "",
                    "paper_source": cost.source if cost else "",
                }
            )
    numeric = pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "method",
            "component",
            "role",
            "gflops_per_call",
            "calls_all_videos",
            "ratio_to_heaviest_recognition",
            "paper_ratio",
            "paper_source",
        ],
    )
    text = pd.DataFrame(
        {
            "dataset": numeric["dataset"],
            "method": numeric["method"],
            "component": numeric["component"],
            "role": numeric["role"],
            "GFLOPs per call": [num(v) for v in numeric["gflops_per_call"]],
            "vs heaviest recognition": [ratio_text(r) for r in numeric["ratio_to_heaviest_recognition"]],
            "paper (cheap:heavy)": [
                f"{p} ({s})" if p and role == "selection" else ""
                for p, s, role in zip(numeric["paper_ratio"], numeric["paper_source"], numeric["role"])
            ],
        }
    )
    return numeric, text
