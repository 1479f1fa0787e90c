"""The claims check: each seed paper's central claims, restated in one sentence with the paper's
table and numbers, next to what this harness measured and a verdict.

Verdicts are mechanical and their thresholds are written in each claim's check, never tuned to a
result: ``holds``, ``does not hold``, or ``not comparable here`` with the reason (missing trials
or predictions). The papers' absolute numbers come from other datasets, backbones and training
budgets, so only the relative statement of a claim is tested; the paper's numbers are shown for
reference, not as a target. Comparisons between methods are made at matched compute
(log-GFLOPs interpolation on each curve, never extrapolated) unless the claim is about equal
budgets of the same unit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from harness.report.pareto import compute_to_reach, interpolate_metric
from harness.report.tables import COST

HOLDS, FAILS, NOT_COMPARABLE = "holds", "does not hold", "not comparable here"
SAME_ACCURACY_PTS = 1.0  # "similar accuracy" = no more than 1 percentage point below
HALF_COMPUTE = 0.6  # "about half the compute" = at most 60% of the baseline's GFLOPs


# A method's own "mode" parameter may run its baseline inside the same plugin (SGS's plain
# backbone, clustering's TSM on all frames or on g sampled frames). Such curves are baselines,
# never the method's own curves.
BASELINE_MODES = {"base": "the plain backbone (mode=base)", "all_frames": "TSM on all frames (mode=all_frames)",
                  "sampled": "TSM on g sampled frames (mode=sampled)"}


@dataclass
class Context:
    """What a check may read: one dataset's seed means, the metric, per-video facts."""

    points: pd.DataFrame
    metric: str
    bins: Mapping[tuple[str, float], np.ndarray]  # (label, budget) -> per-video SGS B'
    extras: Mapping[tuple[str, float], Mapping[str, float]] = field(default_factory=dict)  # numeric extras means

    def method_points(self, method: str, mode: str | None = None) -> pd.DataFrame:
        """``method``'s points with a metric; its own curves (``mode=None``) or one baseline mode's."""
        pts = self.points[self.points["method"] == method].dropna(subset=[self.m])
        modes = pts["params"].map(lambda p: p.get("mode") if isinstance(p, dict) else None)
        return pts[~modes.isin(list(BASELINE_MODES))] if mode is None else pts[modes == mode]

    def curves(self, method: str, mode: str | None = None) -> dict[str, pd.DataFrame]:
        pts = self.method_points(method, mode)
        return {label: c.sort_values(["budget", COST]) for label, c in pts.groupby("label", sort=True)}

    @property
    def m(self) -> str:
        return f"{self.metric}_mean"


def reference(ctx: Context, method: str, base_mode: str | None) -> tuple[pd.Series, str] | None:
    """The costliest point of the method's own baseline mode if it was run, else of ``dense``."""
    if base_mode and ctx.curves(method, base_mode):
        curve = next(iter(ctx.curves(method, base_mode).values()))
        return curve.sort_values(COST).iloc[-1], BASELINE_MODES[base_mode]
    if ctx.curves("dense"):
        return next(iter(ctx.curves("dense").values())).sort_values(COST).iloc[-1], "the dense baseline"
    return None


@dataclass
class Claim:
    id: str
    paper: str
    table: str
    statement: str
    paper_numbers: str
    check: Callable[[Context], list[tuple[str, str, str]]]  # -> [(measured, verdict, reason)]


def missing(*what: str) -> list[tuple[str, str, str]]:
    return [("—", NOT_COMPARABLE, "no finished trials of " + " and ".join(what))]


def pt(row: pd.Series, ctx: Context) -> str:
    budget = "" if pd.isna(row["budget"]) else f" {row['budget_param']}={row['budget']:g}"
    return f"{row['label']}{budget}: {row[ctx.m]:.1f}% @ {row[COST]:.3g} GFLOPs"


def reaches_at_fraction(ctx: Context, method: str, baseline: str) -> list[tuple[str, str, str]]:
    """Does ``method`` reach the baseline's accuracy at its largest budget (minus 1 pt) with at most
    60% of that point's GFLOPs?"""
    base = ctx.curves(baseline)
    if not base or not ctx.curves(method):
        return missing(method, baseline)
    ref = next(iter(base.values())).sort_values(COST).iloc[-1]
    out = []
    for label, curve in ctx.curves(method).items():
        need = compute_to_reach(curve[COST], curve[ctx.m], ref[ctx.m] - SAME_ACCURACY_PTS)
        measured = (f"reference {pt(ref, ctx)}; {label} needs "
                    + ("more than its largest budget (never reaches it)" if np.isnan(need)
                       else f"{need:.3g} GFLOPs ({need / ref[COST]:.0%} of the reference)")
                    + f"; its best: {curve[ctx.m].max():.1f}%")
        ok = not np.isnan(need) and need <= HALF_COMPUTE * ref[COST]
        out.append((measured, HOLDS if ok else FAILS,
                    f"criterion: within {SAME_ACCURACY_PTS:g} pt of the reference at <= {HALF_COMPUTE:.0%} of its GFLOPs"))
    return out


def beats_at_matched_compute(ctx: Context, method: str, baselines: list[str]) -> list[tuple[str, str, str]]:
    """Is ``method`` more accurate than each baseline wherever their GFLOPs ranges overlap?"""
    base = {b: ctx.curves(b) for b in baselines}
    present = [b for b in baselines if base[b]]
    if not ctx.curves(method) or not present:
        return missing(method, " / ".join(baselines))
    out = []
    for label, curve in ctx.curves(method).items():
        gaps, parts = [], []
        for b in present:
            b_curve = next(iter(base[b].values()))
            for _, row in curve.iterrows():
                other = interpolate_metric(b_curve[COST], b_curve[ctx.m], row[COST])
                if not np.isnan(other):
                    gaps.append(row[ctx.m] - other)
                    parts.append(f"{row[COST]:.3g} GFLOPs: {row[ctx.m]:.1f} vs {b} {other:.1f}")
        if not gaps:
            out.append(("GFLOPs ranges do not overlap", NOT_COMPARABLE,
                        f"{label}'s costs lie outside the measured range of {', '.join(present)}"))
            continue
        absent = [b for b in baselines if b not in present]
        spread = np.nanmax(curve[f"{ctx.metric}_std"].to_numpy(float)) if curve[f"{ctx.metric}_std"].notna().any() else np.nan
        parts.append(f"smallest margin {min(gaps):+.2f} pt (largest seed std of {label}: {spread:.2f} pt"
                     + (", within noise)" if not np.isnan(spread) and abs(min(gaps)) <= spread else ")"))
        reason = f"criterion: better at every overlapping cost ({len(gaps)} comparisons)"
        reason += f"; {', '.join(absent)} not run" if absent else ""
        out.append((f"{label}: " + "; ".join(parts), HOLDS if min(gaps) > 0 else FAILS, reason))
    return out


def cheaper_and_as_good_as_dense(ctx: Context, method: str, need_better: bool,
                                 base_mode: str | None = None) -> list[tuple[str, str, str]]:
    found = reference(ctx, method, base_mode)
    if found is None or not ctx.curves(method):
        return missing(method, "dense" + (f" (or {method} mode={base_mode})" if base_mode else ""))
    ref, what = found
    out = []
    for label, curve in ctx.curves(method).items():
        cheaper = curve[curve[COST] < ref[COST]]
        if cheaper.empty:
            out.append((f"{pt(ref, ctx)}; no {label} point is cheaper", FAILS, f"every budget costs at least {what}"))
            continue
        best = cheaper.sort_values(ctx.m).iloc[-1]
        threshold = ref[ctx.m] if need_better else ref[ctx.m] - SAME_ACCURACY_PTS
        ok = best[ctx.m] > threshold if need_better else best[ctx.m] >= threshold
        out.append((f"reference {pt(ref, ctx)}; best cheaper point {pt(best, ctx)} "
                    f"({best[COST] / ref[COST]:.0%} of the reference's GFLOPs)", HOLDS if ok else FAILS,
                    f"reference: {what}; criterion: a cheaper point "
                    + ("more accurate than the reference" if need_better else f"within {SAME_ACCURACY_PTS:g} pt of it")))
    return out


def cheaper_than_all_frames(ctx: Context, method: str) -> list[tuple[str, str, str]]:
    """GFLOPs (and training memory per video, where the predictions carry ``train_memory_mb``)
    below the network on all frames at every g."""
    found = reference(ctx, method, "all_frames")
    if found is None or not ctx.curves(method):
        return missing(method, f"dense (or {method} mode=all_frames)")
    ref, what = found
    ref_memory = ctx.extras.get((ref["label"], ref["budget"]), {}).get("train_memory_mb")
    out = []
    for label, curve in ctx.curves(method).items():
        ratios = curve[COST] / ref[COST]
        parts = "; ".join(f"{b:g}: {r:.0%}" for b, r in zip(curve["budget"], ratios))
        ok = ratios.max() < 1
        measured = f"reference {pt(ref, ctx)}; {label} GFLOPs as a share of it by budget: {parts}"
        memory = [ctx.extras.get((label, b), {}).get("train_memory_mb") for b in curve["budget"]]
        criterion = "criterion: fewer GFLOPs at every budget"
        if ref_memory and all(memory):
            measured += "; training memory per video: " + "; ".join(
                f"{b:g}: {m:.0f} vs {ref_memory:.0f} MB" for b, m in zip(curve["budget"], memory))
            ok = ok and max(memory) < ref_memory
            criterion += " and less training memory"
        out.append((measured, HOLDS if ok else FAILS, f"reference: {what}; {criterion}"))
    return out


def monotone_in_budget(ctx: Context, method: str, column: str, what: str) -> list[tuple[str, str, str]]:
    if not ctx.curves(method):
        return missing(method)
    out = []
    for label, curve in ctx.curves(method).items():
        curve = curve.dropna(subset=["budget"]).sort_values("budget")
        if len(curve) < 2:
            out.append(("one budget only", NOT_COMPARABLE, "needs at least two budgets"))
            continue
        values = curve[column].to_numpy(float)
        steps = ", ".join(f"{b:g}: {v:.3g}" for b, v in zip(curve["budget"], values))
        ok = bool(np.all(np.diff(values) > 0))
        out.append((f"{label} {what} by {curve['budget_param'].iloc[0]}: {steps}", HOLDS if ok else FAILS,
                    "criterion: strictly increasing with the budget knob"))
    return out


def rule_ordering(ctx: Context, method: str, param: str, order: list[str]) -> list[tuple[str, str, str]]:
    pts = ctx.method_points(method)
    if pts.empty:
        return missing(method)
    value = pts["params"].map(lambda p: str(p.get(param)) if isinstance(p, dict) else None)
    present = [r for r in order if (value == r).any()]
    if len(present) < 2:
        return [(f"{param} values run: {', '.join(sorted(set(value.dropna()))) or 'none'}", NOT_COMPARABLE,
                 f"needs at least two of {', '.join(order)}")]
    table = pts.assign(rule=value).pivot_table(index="budget", columns="rule", values=ctx.m)[present].dropna()
    if table.empty:
        return [("no budget shared by the rules", NOT_COMPARABLE, "rules were run at different budgets")]
    ok = all(all(row[a] > row[b] for a, b in zip(present, present[1:])) for _, row in table.iterrows())
    lines = "; ".join(f"{pts['budget_param'].iloc[0]}={b:g}: " + " / ".join(f"{r} {row[r]:.1f}" for r in present)
                      for b, row in table.iterrows())
    skipped = [r for r in order if r not in present]
    return [(lines, HOLDS if ok else FAILS, f"criterion: {' > '.join(present)} at every shared budget"
             + (f"; {', '.join(skipped)} not run" if skipped else ""))]


def equal_budget_comparison(ctx: Context, method: str, baseline: str, base_mode: str | None = None,
                            method_filter: Callable[[str], bool] = lambda label: True) -> list[tuple[str, str, str]]:
    """``method`` vs a baseline at equal values of their budget knobs (same unit, e.g. g vs K frames):
    the method's own ``base_mode`` curve when it was run, else ``baseline``'s first curve."""
    base = ctx.curves(method, base_mode) if base_mode and ctx.curves(method, base_mode) else ctx.curves(baseline)
    curves = {k: v for k, v in ctx.curves(method).items() if method_filter(k)}
    if not base or not curves:
        return missing(method, baseline)
    b_label, b_curve = next(iter(base.items()))
    b_curve = b_curve.set_index("budget")
    out = []
    for label, curve in curves.items():
        shared = [b for b in curve["budget"] if b in b_curve.index]
        if not shared:
            out.append(("no shared budget values", NOT_COMPARABLE, f"{label} and {b_label} were run at different budgets"))
            continue
        c = curve.set_index("budget")
        gaps = [c.loc[b, ctx.m] - b_curve.loc[b, ctx.m] for b in shared]
        parts = "; ".join(f"{b:g}: {c.loc[b, ctx.m]:.1f} vs {b_curve.loc[b, ctx.m]:.1f}" for b in shared)
        out.append((f"{label} vs {b_label} at equal budget: {parts}", HOLDS if all(g > 0 for g in gaps) else FAILS,
                    "criterion: higher at every shared budget value"))
    return out


def selection_overhead(ctx: Context, method: str, limit: float) -> list[tuple[str, str, str]]:
    if not ctx.curves(method):
        return missing(method)
    out = []
    for label, curve in ctx.curves(method).items():
        share = curve["gflops_selection_mean_mean"] / curve[COST]
        if share.isna().all():
            out.append(("no gflops_selection_mean logged", NOT_COMPARABLE, "selection cost not reported"))
            continue
        parts = "; ".join(f"{b:g}: {s:.1%}" for b, s in zip(curve["budget"], share))
        out.append((f"{label} selection share of GFLOPs by budget: {parts}", HOLDS if share.max() <= limit else FAILS,
                    f"criterion: at most {limit:.0%} of the total at every budget"))
    return out


def per_video_variation(ctx: Context, method: str, min_cv: float) -> list[tuple[str, str, str]]:
    if not ctx.curves(method):
        return missing(method)
    out = []
    for label, curve in ctx.curves(method).items():
        cv = curve["gflops_per_video_std_mean"] / curve[COST]
        parts = "; ".join(f"{b:g}: {m:.3g} ± {s:.3g}" for b, m, s in
                          zip(curve["budget"], curve[COST], curve["gflops_per_video_std_mean"]))
        out.append((f"{label} GFLOPs per video (mean ± std over videos) by budget: {parts}",
                    HOLDS if cv.min() >= min_cv else FAILS,
                    f"criterion: std/mean >= {min_cv:.0%} at every budget"))
    return out


def bins_vary(ctx: Context) -> list[tuple[str, str, str]]:
    found = {k: v for k, v in ctx.bins.items() if k[0] in ctx.curves("sgs")}
    if not ctx.curves("sgs"):
        return missing("sgs")
    if not found:
        return [("—", NOT_COMPARABLE, "no per-video B' in the sgs predictions (extras 'bins')")]
    parts, ok = [], True
    for (label, budget), values in sorted(found.items()):
        distinct = len(np.unique(values))
        ok &= distinct >= 2
        parts.append(f"{label} B={budget:g}: B' {values.min()}–{values.max()} ({distinct} distinct values, mean {values.mean():.1f})")
    return [("; ".join(parts), HOLDS if ok else FAILS, "criterion: at least two distinct B' values at every B")]


def more_clusters_better(ctx: Context) -> list[tuple[str, str, str]]:
    return monotone_in_budget(ctx, "temporal_clustering", ctx.m, ctx.metric)


CLAIMS: list[Claim] = [
    Claim("VE-1", "VideoEpitoma (000)", "Table 1",
          "Selecting half of the timesteps keeps the HeavyNet's accuracy at about half the GFLOPs.",
          "Breakfast, I3D: 16 uniform timesteps 76.91% @ 207.7 GFLOPs vs VideoEpitoma 8 timesteps 78.11% @ 104.8",
          lambda c: reaches_at_fraction(c, "videoepitoma", "uniform")),
    Claim("VE-2", "VideoEpitoma (000)", "Table 2 (appendix)",
          "The selector beats uniform and random timestep sampling for the same HeavyNet at every budget.",
          "Breakfast, I3D, 8 timesteps: selector 79.69% vs uniform 74.05%, random 69.22% (wins at all of 1–128)",
          lambda c: beats_at_matched_compute(c, "videoepitoma", ["uniform", "random"])),
    Claim("VE-3", "VideoEpitoma (000)", "Table 1",
          "The LightNet and gating cost is marginal next to the HeavyNet.",
          "0.13 of 104.8 GFLOPs (0.12%) with I3D",
          lambda c: selection_overhead(c, "videoepitoma", 0.10)),
    Claim("LE-1", "LiteEval (001)", "Table 1",
          "LiteEval matches or beats the UNIFORM baseline's accuracy with about half its GFLOPs.",
          "FCVID 80.0% mAP @ 94.3 vs UNIFORM 80.0% @ 195.5; ActivityNet 72.7% @ 95.1 vs 70.0% @ 195.5",
          lambda c: reaches_at_fraction(c, "liteeval", "uniform")),
    Claim("LE-2", "LiteEval (001)", "Fig. 4, Tables 4–5",
          "The computation LiteEval spends varies from video to video.",
          "Kinetics 275.91 ± 144.10 GFLOPs (fine features 4.16 ± 2.20); Breakfast 497.80 ± 390.10",
          lambda c: per_video_variation(c, "liteeval", 0.05)),
    Claim("LE-3", "LiteEval (001)", "Table 7",
          "The budget target γ trades compute for accuracy: a larger γ uses more GFLOPs.",
          "FCVID γ 0.01/0.03/0.05/0.10: 75.4/82.1/94.3/139.0 GFLOPs, 78.8/79.7/80.0/80.1% mAP",
          lambda c: monotone_in_budget(c, "liteeval", COST, "GFLOPs")),
    Claim("SGS-1", "SGS / ATFR (002)", "Table 7",
          "Adding SGS to a 3D CNN cuts its GFLOPs substantially while accuracy stays about the same.",
          "Mini-Kinetics 3DResNet-50: 40.8 → 23.4 GFLOPs, 79.2 → 79.3% top-1; X3D-S 1.9 → 1.1, 77.9 → 78.0%",
          lambda c: cheaper_and_as_good_as_dense(c, "sgs", need_better=False, base_mode="base")),
    Claim("SGS-2", "SGS / ATFR (002)", "Fig. 3",
          "The temporal resolution after SGS (active bins B') differs from video to video.",
          "histogram of B' over Mini-Kinetics validation clips, spread over roughly 5–32 bins",
          lambda c: bins_vary(c)),
    Claim("SGS-3", "SGS / ATFR (002)", "Table A.3",
          "Fewer bins B lower both GFLOPs and accuracy.",
          "3DResNet-18, B 4/8/16/32: 3.5/4.2/5.5/14.0 GFLOPs, 61.4/64.7/64.7/69.6% top-1",
          lambda c: monotone_in_budget(c, "sgs", COST, "GFLOPs")),
    Claim("SC-1", "SCSampler (003)", "Tables 1–2",
          "The sampler's top-K clips beat K random or uniformly spaced clips.",
          "Sports1M MC3-18: 72.80% vs random 64.54 / uniform 64.76; Kinetics: 67.00 vs 63.08 / 62.31",
          lambda c: beats_at_matched_compute(c, "scsampler", ["uniform", "random"])),
    Claim("SC-2", "SCSampler (003)", "Tables 1–2",
          "SCSampler on K clips is more accurate than dense evaluation of all clips, at a fraction of the cost.",
          "Sports1M MC3-18: 72.80% (0.8 days) vs dense 66.57% (12.9 days); Kinetics 67.00 vs 65.06%",
          lambda c: cheaper_and_as_good_as_dense(c, "scsampler", need_better=True)),
    Claim("SC-3", "SCSampler (003)", "Table 4",
          "For the visual sampler the AC objective works best, then SAL-RANK, then SAL-CL.",
          "miniSports, K=10: SAL-RANK 64.77%, SAL-CL 63.17%; AC stated best (its cell is lost in our copy)",
          lambda c: rule_ordering(c, "scsampler", "objective", ["ac", "sal_rank", "sal_cl"])),
    Claim("SC-4", "SCSampler (003)", "Table 1",
          "The oracle (top-K clips by the true class's score) is an upper bound well above the sampler.",
          "Sports1M MC3-18: oracle 85.10% vs SCSampler 72.80%",
          lambda c: equal_budget_comparison(c, "oracle", "scsampler")),
    Claim("TC-1", "Full-video clustering (004)", "Tables 1–2",
          "Cumulative clustering beats slope clustering, which beats uniform grouping, at equal g.",
          "Breakfast g=8: 62.0 / 60.7 / 58.3%; g=16: 64.4 / 63.7 / 60.2%",
          lambda c: rule_ordering(c, "temporal_clustering", "rule", ["cumulative", "slope", "uniform"])),
    Claim("TC-2", "Full-video clustering (004)", "Table 2",
          "g clusters over all frames beat the same network on g uniformly sampled frames.",
          "Breakfast: cumulative g=8 62.0% vs TSM 8 frames 59.1%; g=16 64.4% vs 61.4%",
          lambda c: equal_budget_comparison(c, "temporal_clustering", "uniform", base_mode="sampled",
                                            method_filter=lambda label: "rule=uniform" not in label)),
    Claim("TC-3", "Full-video clustering (004)", "Table 1",
          "Clustering costs far fewer GFLOPs and less training memory per video than the network on all frames.",
          "Move4MNIST: 28.61 GFLOPs and 1.56 GB (g=8) vs 58.24 GFLOPs and 3.15 GB on all 32 frames",
          lambda c: cheaper_than_all_frames(c, "temporal_clustering")),
    Claim("TC-4", "Full-video clustering (004)", "Table 2",
          "More clusters give higher accuracy.",
          "Breakfast g=8 → 16: cumulative 62.0 → 64.4%, slope 60.7 → 63.7%, uniform 58.3 → 60.2%",
          more_clusters_better),
]


CLAIM_METHOD = {"VE": "videoepitoma", "LE": "liteeval", "SGS": "sgs", "SC": "scsampler", "TC": "temporal_clustering"}


def check_claims(points: pd.DataFrame, metric: str, bins: Mapping[tuple[str, float], np.ndarray] | None = None,
                 extras: Mapping[tuple[str, float], Mapping[str, float]] | None = None,
                 claims: list[Claim] = CLAIMS) -> pd.DataFrame:
    """One row per claim (per curve where a method has several), per dataset, backbone and experiment:
    methods are only compared with baselines run on the same data, backbone and launch."""
    rows = []
    reported: set[tuple[str, str, str]] = set()  # (dataset, experiment, claim id) already given a row
    ran_on = points.groupby(["dataset", "experiment"])["method"].agg(set) if len(points) else {}
    for (dataset, backbone, experiment), group in points.groupby(["dataset", "backbone", "experiment"], sort=True):
        ctx = Context(group, metric, bins or {}, extras or {})
        here = set(group["method"])
        for claim in claims:
            method = CLAIM_METHOD[claim.id.split("-")[0]]
            # a claim is checked on the backbones its method ran on; one "not comparable" row if none
            if method not in here and (method in ran_on[(dataset, experiment)] or (dataset, experiment, claim.id) in reported):
                continue
            reported.add((dataset, experiment, claim.id))
            for measured, verdict, reason in claim.check(ctx):
                rows.append({"dataset": dataset, "backbone": backbone, "experiment": experiment, "id": claim.id, "paper": claim.paper, "table": claim.table,
                             "claim": claim.statement, "paper's numbers": claim.paper_numbers,
                             "measured here": measured, "verdict": verdict, "why": reason})
    return pd.DataFrame(rows)
