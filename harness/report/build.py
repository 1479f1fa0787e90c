"""``build_report``: everything a report holds, from MLflow to ``results/<experiment>/report.md``.

Each section is built from what exists; a missing piece (no dynamic method, no predictions, no
ground truth, failed trials) becomes a sentence in report.md saying what is missing and why,
never an exception.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.paths import safe_join
from harness.registry import METHODS
from harness.report import claims as claims_mod
from harness.report import html, plots, tables
from harness.report.collect import label_series, load_flops_components, load_predictions, load_trials
from harness.report.evidence import Evidence, chance_level, numeric_extras_means, per_video_facts
from harness.report.pareto import finished, seed_summary, unfinished
from harness.report.schedule import schedule_section
from harness.report.selection import selection_quality
from harness.report.styles import Styles
from harness.timing_lock import EXCLUSIVE

FLOP_CONVENTION = (
    "GFLOPs are fvcore counts in which one fused multiply-add counts as one FLOP (what the papers "
    "call GFLOPs; strictly GMACs), per video: every view, clip and component a method ran on that "
    "video, the selection machinery included (shown separately as 'of which selection')."
)
RULES = (
    "Points are means over seeds of FINISHED trials with a 95% interval from a stratified bootstrap over seeds "
    "and test videos (docs/reports.md); failed trials never enter a mean. "
    "The Pareto front is computed on seed means over deployable methods only (non-deployable upper bounds "
    "are drawn hollow and dotted): a point is on it when no other point costs no more and scores no less "
    "while being strictly better in one of the two; exact ties are all kept. 'At matched compute' and "
    "'GFLOPs to reach' interpolate each method's curve linearly in log-GFLOPs between its measured "
    "budgets and never extrapolate."
)
PRIMARY_METRICS = ("top1_pct", "map_pct")


def report_dir(results_root: str | Path, experiments: Sequence[str]) -> Path:
    """``results/<experiment>`` for one experiment, ``results/compare-A-vs-B`` for several."""
    safe = [re.sub(r"[^A-Za-z0-9_.-]+", "_", e) for e in experiments]
    return safe_join(results_root, safe[0] if len(safe) == 1 else "compare-" + "-vs-".join(safe))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_")


def per_video_values(
    trials: pd.DataFrame, predictions: Mapping[str, pd.DataFrame], value: Callable[[pd.Series], float | None]
) -> dict[tuple[str, str, float], np.ndarray]:
    """(dataset, label, budget) -> values pooled over the seeds' test videos."""
    pooled: dict[tuple[str, str, float], list] = {}
    for trial in trials.itertuples():
        table = predictions.get(trial.run_id)
        if table is None:
            continue
        values = [v for v in (value(row) for _, row in table.iterrows()) if v is not None and not pd.isna(v)]
        if values:
            pooled.setdefault((trial.dataset, trial.label, trial.budget), []).extend(values)
    return {k: np.asarray(v) for k, v in pooled.items()}


def selection_masks(
    trials: pd.DataFrame,
    predictions: Mapping[str, pd.DataFrame],
    video_ids: Sequence[str],
    num_frames: Mapping[str, int],
) -> dict[str, dict[str, np.ndarray]]:
    """video -> curve label -> per-frame mask of what the curve's middle budget (lowest seed) looked at."""
    masks: dict[str, dict[str, np.ndarray]] = {v: {} for v in video_ids}
    for label, group in trials.groupby("label", sort=True):
        budgets = sorted(group["budget"].dropna().unique())
        chosen = group[group["budget"] == budgets[len(budgets) // 2]] if budgets else group
        trial = chosen.sort_values("seed").iloc[0]
        table = predictions.get(trial["run_id"])
        if table is None:
            continue
        unit = trial["selection_unit"] if isinstance(trial["selection_unit"], str) else "frame"
        span = int(trial["clip_len"]) if unit == "clip" and not pd.isna(trial["clip_len"]) else 1
        name = label + ("" if pd.isna(trial["budget"]) else f" ({trial['budget_param']}={trial['budget']:g})")
        for row in table.itertuples():
            vid = str(row.video_id)
            if vid in masks and row.selected is not None:
                mask = np.zeros(num_frames[vid], dtype=bool)
                for index in row.selected:
                    mask[int(index) * span : (int(index) + 1) * span] = True
                masks[vid][name] = mask
    return masks


def latency_caveat(done: pd.DataFrame) -> list[str]:
    """A paragraph naming the finished trials whose latency was measured without the timing lock."""
    shared = done[done["latency_timing"] != EXCLUSIVE] if "latency_timing" in done else done.iloc[:0]
    if shared.empty:
        return []
    by_reason = {
        reason: "all"
        if len(group) == len(done)
        else ", ".join(f"{r['label']} {tables.budget_cell(r)} seed {r['seed']}" for _, r in group.iterrows())
        for reason, group in shared.groupby("latency_timing", sort=True)
    }
    return [
        f"**Latency caveat.** {len(shared)} of {len(done)} finished trials measured latency without the "
        "machine-wide timing lock (`harness/timing_lock.py`), so other trials may have been timed on the same "
        "cores meanwhile: " + "; ".join(f"{reason}: {names}" for reason, names in by_reason.items()) + ".",
        "",
    ]


def build_report(
    tracking_uri: str,
    experiments: Sequence[str],
    out_dir: str | Path,
    get_frames: Callable[[str], np.ndarray] | None = None,
    relevance: Mapping[str, Sequence[int]] | None = None,
    filmstrip_videos: int = 3,
) -> Path:
    """Write the report of ``experiments`` into ``out_dir`` (see ``report_dir``); return report.md's path.

    ``relevance`` maps video_id -> per-frame ground truth (built-in benchmark) for selection quality;
    ``get_frames`` returns a video's uint8 [T, H, W, 3] frames for the filmstrip.
    """
    trials = label_series(load_trials(tracking_uri, list(experiments)))  # fails before anything is written
    out = Path(out_dir)
    figures, table_dir = out / "figures", out / "tables"
    figures.mkdir(parents=True, exist_ok=True)
    table_dir.mkdir(parents=True, exist_ok=True)
    done = finished(trials)
    points = seed_summary(trials)
    metrics = [m for m in PRIMARY_METRICS if points[f"{m}_mean"].notna().any()]
    predictions = {run_id: p for run_id in done["run_id"] if (p := load_predictions(tracking_uri, run_id)) is not None}
    evidence = {m: Evidence(points, done, predictions, m) for m in metrics}
    for m in metrics:
        points = evidence[m].with_intervals(points)
    styles = Styles(points) if not points.empty else None
    chance = {m: chance_level(done, predictions, m) for m in metrics}
    charts = {}  # PNG file name -> its interactive version in report.html
    title = " vs ".join(experiments)
    md: list[str] = [f"# skimbench report: {title}", ""]
    md += [
        f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} from MLflow `{tracking_uri}`, "
        f"experiment(s) {', '.join(f'`{e}`' for e in experiments)}: {trials['trial_hash'].nunique()} trials, "
        f"{len(done)} finished, {len(unfinished(trials))} without a finished run. "
        f"Datasets: {', '.join(sorted(trials['dataset'].unique()))}; backbones: "
        f"{', '.join(sorted(trials['backbone'].unique()))}.",
        "",
        f"**FLOP convention.** {FLOP_CONVENTION}",
        "",
        f"**Rules.** {RULES}",
        "",
    ]
    if not points.empty and points["n_seeds"].max() < 2:
        md += [
            "**One seed per point: training variance is not measured.** The intervals below resample the test "
            "videos only; a second training run can move a point by more than its interval.",
            "",
        ]
    if points.empty or not metrics:
        md += ["**No finished trial has an accuracy or mAP metric: nothing to plot or tabulate.**", ""]

    # -- trade-off plots ----------------------------------------------------------------------
    md += ["## Accuracy against compute", ""]
    for dataset, group in points.groupby("dataset", sort=True):
        for metric in metrics:
            if group[f"{metric}_mean"].isna().all():
                continue
            name = plots.METRIC_LABELS[metric]
            for cost, kind in (("gflops_per_video_mean", "pareto"), ("latency_ms_per_video", "latency")):
                stem = figures / f"{kind}_{slug(dataset)}_{metric}"
                against = "GFLOPs per video" if kind == "pareto" else "measured latency"
                figure_title = f"{dataset}: {name} vs {against}"
                path = plots.plot_tradeoff(
                    group, trials, metric, cost, stem, figure_title, styles, chance[metric].get(dataset)
                )
                if path:
                    charts[path.name] = html.tradeoff_figure(
                        group, metric, cost + "_mean", figure_title, styles, chance[metric].get(dataset)
                    )
                    md += [f"![{dataset} {metric} vs {against}](figures/{path.name})", ""]
                else:
                    md += [f"_No {against} logged for {dataset}: figure omitted._", ""]
            front = group[tables.front_mask(group, metric)].sort_values(tables.COST)
            md += [
                f"**{dataset}, {metric}: Pareto front** (deployable, seed means; SVG next to each PNG): "
                + (
                    "; ".join(
                        f"{r.label}{'' if pd.isna(r.budget) else f' {r.budget_param}={r.budget:g}'} "
                        f"({getattr(r, 'gflops_per_video_mean_mean'):.3g} GFLOPs, "
                        f"{getattr(r, f'{metric}_mean'):.1f}%)"
                        for r in front.itertuples()
                    )
                    or "empty"
                ),
                "",
            ]
    md += latency_caveat(done)
    md += [
        "Interactive version of this whole report (hover for parameters, run ids and per-video GFLOPs spread; "
        "works offline): [report.html](report.html)",
        "",
    ]
    if any(chance[m] for m in metrics):
        md += [
            "Chance level (dotted grey line; red crosses mark points at or below it): "
            + "; ".join(f"{d}, {m}: {v:.1f}%" for m in metrics for d, v in sorted(chance[m].items()))
            + " (top-1: always the test split's most common class; mAP: every video scored alike).",
            "",
        ]

    md += schedule_section(tracking_uri, list(experiments), trials, figures)

    # -- tables ---------------------------------------------------------------------------------
    md += ["## Tables", "", "CSV (full precision), Markdown and LaTeX versions are in `tables/`.", ""]
    for metric in metrics:
        numeric, text = tables.method_table(points, metric)
        md += [
            f"### Per method and budget ({metric})",
            "",
            tables.write_table(
                numeric,
                text,
                table_dir / f"methods_{metric}",
                f"Per method and budget: {metric} (seed mean [95% interval], std over seeds), "
                "GFLOPs per video "
                "(mean ± std over videos)",
            ),
        ]
        numeric, text = tables.matched_compute_table(points, metric, interval_at=evidence[metric].interval_at)
        md += [
            f"### {metric} at matched compute",
            "",
            "Each method's curve interpolated at shared GFLOPs values ('—': outside its measured range).",
            "",
            tables.write_table(numeric, text, table_dir / f"matched_compute_{metric}", f"{metric} at matched compute"),
        ]
        numeric, text = tables.reach_reference_table(points, metric)
        md += [
            f"### GFLOPs to reach the full-evaluation baseline ({metric})",
            "",
            "The reference is the costliest deployable point of a method without a budget knob.",
            "",
        ]
        md += (
            [
                tables.write_table(
                    numeric,
                    text,
                    table_dir / f"reach_reference_{metric}",
                    f"GFLOPs per video needed to reach the full-evaluation baseline's {metric}",
                )
            ]
            if not numeric.empty
            else ["_No finished trial of a method without a budget knob: nothing to reach._", ""]
        )
        numeric, text = tables.front_share_table(points, metric)
        md += [
            f"### Share of the Pareto front ({metric})",
            "",
            tables.write_table(numeric, text, table_dir / f"front_share_{metric}", f"Share of the {metric} front"),
        ]

    # -- per-video cost -----------------------------------------------------------------------------
    md += ["## Per-video cost of dynamic methods", ""]
    knobs = dict(zip(done["label"], done["budget_param"].fillna("budget")))
    dynamic = done[done["dynamic"].astype(bool)]
    if dynamic.empty:
        md += ["_No dynamic method (per-video cost that varies) in these trials._", ""]
    else:
        gflops = per_video_values(dynamic, predictions, lambda row: row.get("gflops"))
        if not gflops:
            md += ["_The dynamic methods' trials have no predictions.csv: per-video distributions unavailable._", ""]
        for dataset in sorted({k[0] for k in gflops}):
            data = {(k[1], k[2]): v for k, v in gflops.items() if k[0] == dataset}
            path = plots.plot_cost_distributions(
                data,
                figures / f"cost_per_video_{slug(dataset)}",
                f"{dataset}: GFLOPs per video of dynamic methods (all seeds' test videos)",
                knobs,
                styles,
                dict(zip(done["label"], done["method"])),
            )
            md += [f"![per-video GFLOPs]({'figures/' + path.name})", ""] if path else []
    counts_md: list[str] = []
    declared = {m: dict(METHODS.get(m).video_facts) for m in done["method"].unique() if m in METHODS}
    facts = per_video_facts(done, predictions, declared)
    for method, described in sorted(declared.items()):
        for fact, description in described.items():
            values = {
                k: v[fact]
                for k, v in facts.items()
                if fact in v and k[1] in set(done.loc[done["method"] == method, "label"])
            }
            for dataset in sorted({k[0] for k in values}):
                data = {(k[1], np.nan if k[2] is None else k[2]): v for k, v in values.items() if k[0] == dataset}
                if all(np.unique(v).size == 1 for v in data.values()):  # a histogram of one bar says nothing
                    counts_md += [
                        f"{dataset}: {method}'s {description} is the same for every test video: "
                        + ", ".join(
                            f"{label} {plots.budget_text(b, knobs.get(label))}".rstrip() + f": {v[0]:g}"
                            for (label, b), v in sorted(data.items())
                        )
                        + ".",
                        "",
                    ]
                    continue
                path = plots.plot_count_histograms(
                    data,
                    figures / f"{slug(method)}_{slug(fact)}_{slug(dataset)}",
                    description,
                    f"{dataset}: {method} {description}",
                    knobs,
                    styles.colour.get(method, "tab:blue"),
                )
                counts_md += [f"![{method} {description}](figures/{path.name})", ""] if path else []
    md += counts_md or ["_No per-video facts declared by these methods (`video_facts`) in the predictions._", ""]

    # -- cost regime ----------------------------------------------------------------------------------
    md += [
        "## Cost regime",
        "",
        "GFLOPs per call of every component (fvcore; one trial per curve: its costliest budget, lowest seed; the "
        "calls-weighted mean over its realised shapes), its ratio to the curve's costliest recognition component, "
        "and the paper's cheap-to-heavy ratio where the method's claims declare one. The papers work at 1:18 and "
        "beyond: a cheaper ratio here makes selection relatively dearer than in the paper.",
        "",
    ]
    components = {}
    for (dataset, label), group in done.groupby(["dataset", "label"], sort=True):
        first = group[group["seed"] == group["seed"].min()].sort_values("gflops_per_video_mean").iloc[-1]
        found = load_flops_components(tracking_uri, first["run_id"])
        if found:
            components[(dataset, label, first["method"])] = found
    numeric, text = tables.cost_regime_table(components, claims_mod.paper_costs())
    md += (
        [tables.write_table(numeric, text, table_dir / "cost_regime", "Cost regime: GFLOPs per component call")]
        if not numeric.empty
        else ["_No trial logged flops_components.json: cost regime unavailable._", ""]
    )

    # -- selection quality ------------------------------------------------------------------------
    md += ["## Selection quality", ""]
    if relevance is None:
        md += ["_No per-frame ground truth given (only the built-in benchmark has it): selection quality skipped._", ""]
    else:
        quality = selection_quality(done, predictions, relevance)
        if quality.empty:
            md += ["_No trial recorded selected frames or clips for videos with ground truth._", ""]
        else:
            md += [
                "Precision = share of the selected units (frames, or clips of `clip_len` frames) that are relevant; "
                "recall = share of the relevant units that were selected; a clip is relevant if any of its frames is. "
                "Mean over videos, then mean ± std over seeds. 'chance' is the share of units that are relevant.",
                "",
            ]
            text = pd.DataFrame(
                {
                    "dataset": quality["dataset"],
                    "method": quality["label"],
                    "budget": ["—" if pd.isna(b) else f"{b:g}" for b in quality["budget"]],
                    "unit": quality["unit"],
                    "precision (%)": [
                        tables.pm(100 * m, 100 * s) for m, s in zip(quality["precision_mean"], quality["precision_std"])
                    ],
                    "recall (%)": [
                        tables.pm(100 * m, 100 * s) for m, s in zip(quality["recall_mean"], quality["recall_std"])
                    ],
                    "chance (%)": [tables.pm(100 * c, None) for c in quality["chance"]],
                    "selected/video": [tables.num(v) for v in quality["selected_per_video"]],
                }
            )
            md += [tables.write_table(quality, text, table_dir / "selection_quality", "Selection quality")]
            for dataset, group in quality.groupby("dataset"):
                path = plots.plot_selection_quality(
                    group, figures / f"selection_{slug(dataset)}", f"{dataset}: selection quality vs GFLOPs", styles
                )
                md += [f"![selection quality](figures/{path.name})", ""] if path else []
        if get_frames is not None and predictions:
            first = next(iter(predictions.values()))
            videos = [str(v) for v in first["video_id"] if str(v) in relevance][:filmstrip_videos]
            lengths = {v: len(get_frames(v)) for v in videos}
            masks = selection_masks(done, predictions, videos, lengths)
            path = plots.plot_filmstrip(
                videos,
                get_frames,
                masks,
                relevance,
                figures / "filmstrip",
                "What each method looked at (middle budget, lowest seed)",
            )
            md += (
                [f"![filmstrip](figures/{path.name})", ""] if path else ["_No selections to show in a filmstrip._", ""]
            )

    # -- claims ----------------------------------------------------------------------------------
    md += [
        "## Claims check",
        "",
        "Each seed paper's central claims, the paper's own numbers (other datasets, backbones and training "
        "budgets: for reference only), what this harness measured, and a verdict by the criterion given. "
        "Only the relative statement of each claim is tested. Verdicts are decided on 95% intervals (paired "
        "bootstrap over seeds and test videos) against a fixed reference chosen as in the paper: 'holds' and "
        "'does not hold' when the interval excludes the threshold, 'inconclusive' (with the data that would "
        "settle it) when it does not, 'not comparable here' when trials or predictions are missing.",
        "",
    ]
    if metrics:
        contexts = evidence[metrics[0]].context(facts, numeric_extras_means(done, predictions))
        claim_rows = claims_mod.check_claims(points, metrics[0], contexts)
        verdicts = claim_rows["verdict"].value_counts().to_dict()
        md += [f"Metric: {metrics[0]}. Verdicts: " + ", ".join(f"{k}: {v}" for k, v in sorted(verdicts.items())), ""]
        text = claim_rows.assign(
            claim=[f"{p} {t}: {c}" for p, t, c in zip(claim_rows["paper"], claim_rows["table"], claim_rows["claim"])]
        )
        groups = [c for c in ("dataset", "backbone", "experiment") if claim_rows[c].nunique() > 1]
        text = text[groups + ["id", "claim", "paper's numbers", "measured here", "verdict", "why"]]
        md += [tables.write_table(claim_rows, text, table_dir / "claims", "Claims check")]
    else:
        md += ["_No metric to check claims against._", ""]

    # -- what is missing --------------------------------------------------------------------------
    md += ["## Missing or failed trials", ""]
    failed = unfinished(trials)
    if failed.empty:
        md += ["Every trial has a finished run.", ""]
    else:
        text = pd.DataFrame(
            {
                "method": failed["label"],
                "budget": [tables.budget_cell(r) for _, r in failed.iterrows()],
                "seed": failed["seed"],
                "status": failed["status"],
                "outcome": failed["outcome"],
                "run": failed["run_id"],
            }
        )
        md += [
            f"{len(failed)} trial(s) have no finished run and are left out of every mean:",
            "",
            tables.to_markdown(text),
        ]
    no_predictions = done[~done["run_id"].isin(predictions)]
    if not no_predictions.empty:
        md += [
            f"{len(no_predictions)} finished trial(s) have no predictions.csv (per-video figures and selection "
            "quality leave them out): " + ", ".join(f"{r.label} ({r.run_id[:8]})" for r in no_predictions.itertuples()),
            "",
        ]
    report = out / "report.md"
    report.write_text("\n".join(md))
    html.write_html("\n".join(md), out / "report.html", f"skimbench report: {title}", charts)
    return report
