"""The claims check: the generic machinery. The claims themselves are declared beside their method
(``methods/<name>_claims.py``, or any module of the entry-point group ``skimbench.claims``) with
``register_claim``; this module names no method.

A claim is three-valued, decided on the 95% interval of the quantity it is about (``stats``: a
stratified bootstrap over seeds and test videos, paired between the points compared):

* ``holds``: the whole interval is on the claim's side of its threshold;
* ``does not hold``: the whole interval is on the other side (or a counted cost rules it out);
* ``inconclusive``: the interval straddles the threshold; the row says about how many times the
  test videos and seeds would settle it (the interval's half-width shrinks as 1/sqrt(n));
* ``not comparable here``: trials or predictions are missing (the row says which).

No verdict rests on a point estimate: a comparison without per-video predictions is "not
comparable here". GFLOPs are counted by fvcore per video, not sampled, so cost conditions ("at most
60% of the reference's GFLOPs") are read from the seed means directly. Each claim names a fixed
reference chosen the paper's way (``point_where``), never "the costliest point in the grid".
Comparisons at matched compute interpolate each curve linearly in log-GFLOPs between measured
budgets, replicate by replicate, and never extrapolate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from harness.registry import METHODS, RegistryError
from harness.report.stats import interval, more_data_factor
from harness.report.tables import COST

HOLDS, FAILS, INCONCLUSIVE, NOT_COMPARABLE = "holds", "does not hold", "inconclusive", "not comparable here"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_COMPARABLE)
SAME_ACCURACY_PTS = 1.0  # "similar accuracy" = no more than 1 percentage point below
HALF_COMPUTE = 0.6  # "about half the compute" = at most 60% of the reference's GFLOPs

Row = tuple[str, str, str]  # (measured here, verdict, why)


# -- declarations and their registry --------------------------------------------------------------


@dataclass
class Claim:
    """One central claim of a paper about ``method``; ``check(ctx)`` returns one row per curve."""

    id: str
    paper: str
    table: str
    statement: str
    paper_numbers: str
    method: str
    check: Callable[["Context"], list[Row]]


@dataclass(frozen=True)
class PaperCost:
    """A paper's cheap-to-heavy cost per timestep, shown beside the measured one (cost regime)."""

    method: str
    ratio: str  # e.g. "1:98"
    source: str  # which networks, which table


_CLAIMS: dict[str, Claim] = {}
_COSTS: dict[str, PaperCost] = {}
_ORIGINS: dict[str, str] = {}
_loaded = False


def register_claim(claim: Claim, origin: str | None = None) -> Claim:
    """Add a claim; an id registered twice from two places is an error, never an override."""
    origin = origin or getattr(claim.check, "__module__", "?")
    if claim.id in _CLAIMS and _ORIGINS[claim.id] != origin:
        raise RegistryError(f"duplicate claim id '{claim.id}': registered by {_ORIGINS[claim.id]} and by {origin}")
    _CLAIMS[claim.id], _ORIGINS[claim.id] = claim, origin
    return claim


def register_paper_cost(cost: PaperCost) -> PaperCost:
    _COSTS[cost.method] = cost
    return cost


def load_claims() -> None:
    """Import the built-in methods (their package imports the ``*_claims`` modules beside them) and
    the modules of the entry-point group ``skimbench.claims``, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    METHODS.load()
    for ep in entry_points(group="skimbench.claims"):
        try:
            ep.load()
        except Exception as exc:  # a broken third-party plugin must name itself
            raise RegistryError(f"claims entry point '{ep.name}' ({ep.value}) failed to load: {exc}") from exc


def registered_claims() -> list[Claim]:
    load_claims()
    return list(_CLAIMS.values())


def paper_costs() -> dict[str, PaperCost]:
    load_claims()
    return dict(_COSTS)


def baseline_modes(method: str) -> dict[str, str]:
    """The method's own baseline modes (``Method.baseline_modes``); none for unknown methods."""
    return dict(getattr(METHODS.get(method), "baseline_modes", {}) or {}) if method in METHODS else {}


# -- what a check reads -----------------------------------------------------------------------------


def key(label: str, budget: Any) -> tuple[str, float | None]:
    """A point's key; a missing budget (no budget knob) is None, so that keys compare equal."""
    return label, (None if budget is None or pd.isna(budget) else float(budget))


@dataclass
class Context:
    """One dataset, backbone and experiment: seed means, per-point bootstrap replicates (shared
    draws, so differences are paired), per-video facts and usage."""

    points: pd.DataFrame
    metric: str
    estimates: Mapping[tuple[str, float | None], float] = field(default_factory=dict)
    replicates: Mapping[tuple[str, float | None], np.ndarray] = field(default_factory=dict)
    facts: Mapping[tuple[str, float | None], Mapping[str, np.ndarray]] = field(default_factory=dict)
    extras: Mapping[tuple[str, float | None], Mapping[str, float]] = field(default_factory=dict)
    usage: Mapping[tuple[str, float | None], list] = field(default_factory=dict)  # per-video usage lists
    n_videos: int = 0
    costs: Mapping[tuple[str, float | None], Mapping[str, tuple[float, np.ndarray]]] = field(default_factory=dict)

    @property
    def m(self) -> str:
        return f"{self.metric}_mean"

    def method_points(self, method: str, mode: str | None = None) -> pd.DataFrame:
        """``method``'s points with a metric: its own curves (``mode=None``) or one baseline mode's."""
        pts = self.points[self.points["method"] == method].dropna(subset=[self.m])
        modes = pts["params"].map(lambda p: p.get("mode") if isinstance(p, dict) else None)
        return pts[~modes.isin(list(baseline_modes(method)))] if mode is None else pts[modes == mode]

    def curves(self, method: str, mode: str | None = None) -> dict[str, pd.DataFrame]:
        pts = self.method_points(method, mode)
        return {label: c.sort_values(["budget", COST]) for label, c in pts.groupby("label", sort=True)}

    def value(self, row: pd.Series) -> tuple[float, np.ndarray] | None:
        """A point's estimate and bootstrap replicates; None without predictions."""
        k = key(row["label"], row["budget"])
        return (self.estimates[k], self.replicates[k]) if k in self.replicates else None

    def cost(self, row: pd.Series, column: str = "gflops") -> tuple[float, np.ndarray] | None:
        """A point's mean per-video ``column`` (``gflops``, ``gflops_selection``) and its bootstrap
        replicates under the accuracy's draws; None when its predictions do not log it."""
        return self.costs.get(key(row["label"], row["budget"]), {}).get(column)

    def at_cost(self, curve: pd.DataFrame, cost: float) -> tuple[float, np.ndarray] | None:
        """The curve at ``cost`` (log-GFLOPs interpolation, replicate by replicate); None outside
        its measured range or without predictions."""
        curve = curve.dropna(subset=[COST])
        curve = curve[curve[COST] > 0].sort_values(COST)
        if curve.empty or not curve[COST].iloc[0] <= cost <= curve[COST].iloc[-1]:
            return None
        # where two budgets cost the same, the better one stands
        curve = curve.loc[curve.groupby(COST)[self.m].idxmax()].sort_values(COST)
        costs = curve[COST].to_numpy(float)
        i = min(int(np.searchsorted(costs, cost, side="left")), len(costs) - 1)
        if costs[i] == cost or i == 0:
            return self.value(curve.iloc[i])
        low, high = self.value(curve.iloc[i - 1]), self.value(curve.iloc[i])
        if low is None or high is None:
            return None
        w = (math.log10(cost) - math.log10(costs[i - 1])) / (math.log10(costs[i]) - math.log10(costs[i - 1]))
        return (1 - w) * low[0] + w * high[0], (1 - w) * low[1] + w * high[1]

    def settle(self, factor: float) -> str:
        """What would settle an inconclusive comparison: ``factor`` times the data (see
        ``stats.more_data_factor``), in test videos and seeds."""
        if math.isnan(factor):
            return "; no interval could be computed: run a second seed and more test videos"
        if not math.isfinite(factor) or factor > 1000:
            return (
                "; the estimate sits (almost) exactly on the threshold: more test videos and seeds narrow the "
                "interval (4x the data halves it) but settle it only if the estimate moves"
            )
        seeds = int(self.points["n_seeds"].max()) if len(self.points) else 1
        n = self.n_videos
        videos = f" (~{math.ceil(factor * n)} test videos instead of {n}," if n else " ("
        return (
            f"; would be settled at about {factor:.1f}x the data{videos} "
            f"~{math.ceil(factor * seeds)} seeds instead of {seeds}, if both sources shrink alike: the interval's "
            "half-width goes as 1/sqrt(n))"
        )

    def seeds_note(self, *rows: pd.Series) -> str:
        if any(int(r["n_seeds"]) < 2 for r in rows):
            return "; one seed: training variance is not measured"
        return ""


# -- helpers for declaring claims -------------------------------------------------------------------


def missing(*what: str) -> list[Row]:
    return [("—", NOT_COMPARABLE, "no finished trials of " + " and ".join(what))]


def no_predictions(*rows: pd.Series) -> Row:
    names = ", ".join(budget_name(r) for r in rows)
    return (
        "—",
        NOT_COMPARABLE,
        f"no per-video predictions for {names}: no interval, and no verdict rests on a point estimate",
    )


def budget_name(row: pd.Series) -> str:
    return row["label"] + ("" if pd.isna(row["budget"]) else f" {row['budget_param']}={row['budget']:g}")


def pt(row: pd.Series, ctx: Context) -> str:
    value = ctx.value(row)
    if value is None:
        return f"{budget_name(row)}: {row[ctx.m]:.1f}% @ {row[COST]:.3g} GFLOPs"
    lo, hi = interval(value[1])
    return f"{budget_name(row)}: {value[0]:.1f} [{lo:.1f}, {hi:.1f}]% @ {row[COST]:.3g} GFLOPs"


def point_where(ctx: Context, method: str, mode: str | None = None, **params: Any) -> pd.Series | None:
    """The point of ``method`` (or of one of its baseline modes) whose parameters equal ``params``
    (the budget knob included); the costliest if several match; None if none was run."""
    pts = ctx.method_points(method, mode)
    for name, wanted in params.items():
        pts = pts[pts["params"].map(lambda p: isinstance(p, dict) and _same(p.get(name), wanted))]
    return None if pts.empty else pts.sort_values(COST).iloc[-1]


def point_or_run(ctx: Context, method: str, what: str, mode: str | None = None, **params: Any) -> pd.Series | str:
    """``point_where``'s point, or the sentence saying what to run to get it (for a reference)."""
    ref = point_where(ctx, method, mode, **params)
    if ref is not None:
        return ref
    given = ([f"mode={mode}"] if mode else []) + [f"{k}={v}" for k, v in params.items()]
    return f"run {method}" + (f" with {', '.join(given)}" if given else "") + f" ({what})"


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return a == b


def usage_median(ctx: Context, row: pd.Series, component: str, shape_key: str | None = None) -> float | None:
    """Median over a point's test videos of a component's calls (or of one of its shape values)."""
    values = []
    for video in ctx.usage.get(key(row["label"], row["budget"]), []):
        entries = [u for u in video or [] if u.get("component") == component]
        if shape_key is None:
            values.append(sum(u.get("count", 0) for u in entries))
        else:
            values += [u["shape"][shape_key] for u in entries if shape_key in u.get("shape", {})]
    return float(np.median(values)) if values else None


def judge(estimate: float, reps: np.ndarray, threshold: float) -> tuple[str, str, float]:
    """The verdict of "the quantity is above ``threshold``" on its 95% interval: (verdict, text,
    factor of more test videos and seeds that would settle it, 1 when settled)."""
    lo, hi = interval(reps)
    if np.isnan(lo) or np.isnan(hi):  # too few seeds or videos to resample
        return INCONCLUSIVE, f"{estimate:+.1f} pt, interval n/a (1 seed, too few videos)", float("nan")
    text = f"{estimate:+.1f} [{lo:+.1f}, {hi:+.1f}] pt"
    if lo > threshold:
        return HOLDS, text, 1.0
    if hi < threshold:
        return FAILS, text, 1.0
    return INCONCLUSIVE, text, more_data_factor(estimate, lo, hi, threshold)


def judge_at_most(estimate: float, reps: np.ndarray, limit: float) -> tuple[str, str, float]:
    """The verdict of "the quantity (a ratio) is at most ``limit``" on its 95% interval, as
    ``judge``: holds when the whole interval is at or below ``limit``, fails when it is above."""
    lo, hi = interval(reps)
    if np.isnan(lo) or np.isnan(hi):
        return INCONCLUSIVE, f"{estimate:.1%}, interval n/a", float("nan")
    text = f"{estimate:.1%} [{lo:.1%}, {hi:.1%}]"
    if hi <= limit:
        return HOLDS, text, 1.0
    if lo > limit:
        return FAILS, text, 1.0
    return INCONCLUSIVE, text, more_data_factor(estimate, lo, hi, limit)


def cost_ratio(ctx: Context, row: pd.Series, numerator: str, ref: pd.Series | None = None, denominator: str = "gflops"):
    """(estimate, replicates) of ``row``'s mean ``numerator`` over the mean ``denominator`` of ``ref``
    (``row`` itself by default), paired replicate by replicate; None without per-video costs."""
    top, bottom = ctx.cost(row, numerator), ctx.cost(row if ref is None else ref, denominator)
    if top is None or bottom is None or bottom[0] <= 0:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        return top[0] / bottom[0], top[1] / bottom[1]


def overall(ctx: Context, verdicts: list[str], factors: list[float]) -> tuple[str, str]:
    """Several comparisons that must all hold: any failure fails, all holding holds, else
    inconclusive, with what would settle the least settled comparison."""
    if FAILS in verdicts:
        return FAILS, ""
    if all(v == HOLDS for v in verdicts):
        return HOLDS, ""
    return INCONCLUSIVE, ctx.settle(max(factors))


def difference(ctx: Context, a: tuple[float, np.ndarray], b: tuple[float, np.ndarray], threshold: float):
    return judge(a[0] - b[0], a[1] - b[1], threshold)


# -- generic checks ---------------------------------------------------------------------------------


def reaches_reference(
    ctx: Context,
    method: str,
    reference: Callable[[Context, pd.DataFrame], Any],
    fraction: float = HALF_COMPUTE,
    margin: float = SAME_ACCURACY_PTS,
) -> list[Row]:
    """Does ``method`` come within ``margin`` pt of a fixed reference point with at most ``fraction``
    of its GFLOPs? ``reference(ctx, curve)`` returns the reference row, or a string saying what to
    run. The method is judged at its best point (estimate) costing at most ``fraction`` of the
    reference, its curve interpolated at exactly that cost included; the paired difference decides."""
    if not ctx.curves(method):
        return missing(method)
    out = []
    for label, curve in ctx.curves(method).items():
        ref = reference(ctx, curve)
        if ref is None or isinstance(ref, str):
            out.append(("—", NOT_COMPARABLE, ref or "the reference was not run"))
            continue
        cap = fraction * ref[COST]
        if ctx.value(ref) is None:
            out.append(no_predictions(ref))
            continue
        candidates = [(budget_name(r), ctx.value(r)) for _, r in curve[curve[COST] <= cap].iterrows()]
        candidates.append((f"{label} interpolated at {cap:.3g} GFLOPs", ctx.at_cost(curve, cap)))
        candidates = [c for c in candidates if c[1] is not None]
        cheapest = curve[COST].min()
        if not candidates:
            if cheapest > cap:
                ratio = cost_ratio(ctx, curve.loc[curve[COST].idxmin()], "gflops", ref)
                lo, hi = interval(ratio[1]) if ratio is not None else (cheapest / ref[COST],) * 2
                settled = lo > fraction  # the cheapest budget's cost interval lies above the fraction
                out.append(
                    (
                        f"reference {pt(ref, ctx)}; {label}'s cheapest budget costs {cheapest:.3g} GFLOPs "
                        f"({cheapest / ref[COST]:.0%} [{lo:.0%}, {hi:.0%}])",
                        FAILS if settled else INCONCLUSIVE,
                        f"criterion: within {margin:g} pt at <= {fraction:.0%} of the reference's GFLOPs; "
                        + (
                            "every budget costs more (95% interval of the cost ratio)"
                            if settled
                            else "the cheapest budget's cost interval reaches the fraction: run a cheaper budget"
                        ),
                    )
                )
            else:
                out.append(no_predictions(*[r for _, r in curve.iterrows()]))
            continue
        name, best = max(candidates, key=lambda c: c[1][0])
        verdict, text, factor = difference(ctx, best, ctx.value(ref), -margin)
        out.append(
            (
                f"reference {pt(ref, ctx)}; best at <= {fraction:.0%} of its GFLOPs: {name} {best[0]:.1f}%; "
                f"difference {text}",
                verdict,
                f"criterion: the difference's 95% interval above -{margin:g} pt at <= {fraction:.0%} of the "
                f"reference's GFLOPs"
                + (ctx.settle(factor) if verdict == INCONCLUSIVE else "")
                + ctx.seeds_note(ref, *[r for _, r in curve.iterrows()]),
            )
        )
    return out


def beats_at_matched_compute(ctx: Context, method: str, baselines: list[str]) -> list[Row]:
    """Is ``method`` more accurate than each baseline wherever their GFLOPs ranges overlap? One
    paired difference per method point and baseline (the baseline interpolated at its cost)."""
    base = {b: ctx.curves(b) for b in baselines}
    present = [b for b in baselines if base[b]]
    if not ctx.curves(method) or not present:
        return missing(method, " / ".join(baselines))
    out = []
    for label, curve in ctx.curves(method).items():
        verdicts, factors, parts = [], [], []
        for b in present:
            b_curve = next(iter(base[b].values()))
            for _, row in curve.iterrows():
                mine, other = ctx.value(row), ctx.at_cost(b_curve, row[COST])
                if mine is None or other is None:
                    continue
                verdict, text, factor = difference(ctx, mine, other, 0.0)
                verdicts.append(verdict)
                factors.append(factor)
                parts.append(f"{row[COST]:.3g} GFLOPs vs {b}: {text}")
        if not verdicts:
            out.append(
                (
                    "no comparable cost",
                    NOT_COMPARABLE,
                    f"{label}'s costs lie outside the measured range of "
                    f"{', '.join(present)}, or predictions are missing",
                )
            )
            continue
        verdict, advice = overall(ctx, verdicts, factors)
        absent = [b for b in baselines if b not in present]
        out.append(
            (
                f"{label}, difference in {ctx.metric}: " + "; ".join(parts),
                verdict,
                f"criterion: 95% interval of the paired difference above 0 at every overlapping cost "
                f"({len(verdicts)} comparisons)"
                + (f"; {', '.join(absent)} not run" if absent else "")
                + advice
                + ctx.seeds_note(*[r for _, r in curve.iterrows()]),
            )
        )
    return out


def beats_at_equal_budget(
    ctx: Context, method: str, baseline: str, mode: str | None = None, keep: Callable[[str], bool] = lambda label: True
) -> list[Row]:
    """``method`` vs a baseline at equal values of their budget knobs (same unit: K clips vs K
    clips, g clusters vs g frames); ``mode`` names one of ``baseline``'s own baseline modes."""
    base = ctx.curves(baseline, mode)
    curves = {k: v for k, v in ctx.curves(method).items() if keep(k)}
    what = baseline + (f" (mode={mode})" if mode else "")
    if not base or not curves:
        return missing(method if not curves else what)
    b_label, b_curve = next(iter(base.items()))
    by_budget = {float(r["budget"]): r for _, r in b_curve.iterrows() if not pd.isna(r["budget"])}
    out = []
    for label, curve in curves.items():
        verdicts, factors, parts, used = [], [], [], []
        for _, row in curve.iterrows():
            other = by_budget.get(float(row["budget"])) if not pd.isna(row["budget"]) else None
            if other is None:
                continue
            mine, theirs = ctx.value(row), ctx.value(other)
            if mine is None or theirs is None:
                return [no_predictions(row, other)]
            verdict, text, factor = difference(ctx, mine, theirs, 0.0)
            verdicts.append(verdict)
            factors.append(factor)
            used += [row, other]
            parts.append(f"{row['budget']:g}: {mine[0]:.1f} vs {theirs[0]:.1f}, difference {text}")
        if not verdicts:
            out.append(
                ("no shared budget values", NOT_COMPARABLE, f"{label} and {b_label} were run at different budgets")
            )
            continue
        verdict, advice = overall(ctx, verdicts, factors)
        out.append(
            (
                f"{label} vs {b_label} at equal budget: " + "; ".join(parts),
                verdict,
                f"reference: {what}; criterion: 95% interval of the paired difference above 0 at every shared "
                "budget value" + advice + ctx.seeds_note(*used),
            )
        )
    return out


def cheaper_and_as_accurate(
    ctx: Context, method: str, reference: Callable[[Context], Any], need_better: bool, margin: float = SAME_ACCURACY_PTS
) -> list[Row]:
    """A point of ``method`` cheaper than a fixed reference that is as accurate (within ``margin``)
    or, with ``need_better``, more accurate: judged at the cheaper point with the best estimate."""
    ref = reference(ctx)
    if not ctx.curves(method):
        return missing(method)
    if ref is None or isinstance(ref, str):
        return [("—", NOT_COMPARABLE, ref or "the reference was not run")]
    out = []
    threshold = 0.0 if need_better else -margin
    for label, curve in ctx.curves(method).items():
        cheaper = curve[curve[COST] < ref[COST]]
        if cheaper.empty:
            out.append(
                (
                    f"reference {pt(ref, ctx)}; no {label} point is cheaper",
                    FAILS,
                    "every budget costs at least the reference (counted GFLOPs)",
                )
            )
            continue
        valued = [(r, ctx.value(r)) for _, r in cheaper.iterrows()]
        valued = [(r, v) for r, v in valued if v is not None]
        if not valued or ctx.value(ref) is None:
            out.append(no_predictions(ref, *[r for _, r in cheaper.iterrows()]))
            continue
        row, best = max(valued, key=lambda rv: rv[1][0])
        verdict, text, factor = difference(ctx, best, ctx.value(ref), threshold)
        out.append(
            (
                f"reference {pt(ref, ctx)}; best cheaper point {pt(row, ctx)} ({row[COST] / ref[COST]:.0%} of "
                f"the reference's GFLOPs); difference {text}",
                verdict,
                "criterion: 95% interval of the paired difference above "
                + ("0" if need_better else f"-{margin:g} pt")
                + (ctx.settle(factor) if verdict == INCONCLUSIVE else "")
                + ctx.seeds_note(ref, row),
            )
        )
    return out


def cheaper_than(
    ctx: Context, method: str, reference: Callable[[Context], Any], memory_key: str | None = None
) -> list[Row]:
    """Fewer counted GFLOPs than a fixed reference at every budget, judged on the 95% interval of
    the paired cost ratio (an adaptive method's cost moves with seeds and videos); and less of a
    per-video extras quantity, e.g. training memory, where both log it (a mean, no interval)."""
    ref = reference(ctx)
    if not ctx.curves(method):
        return missing(method)
    if ref is None or isinstance(ref, str):
        return [("—", NOT_COMPARABLE, ref or "the reference was not run")]
    ref_extra = ctx.extras.get(key(ref["label"], ref["budget"]), {}).get(memory_key) if memory_key else None
    out = []
    for label, curve in ctx.curves(method).items():
        verdicts, factors, parts = [], [], []
        for _, row in curve.iterrows():
            ratio = cost_ratio(ctx, row, "gflops", ref)
            if ratio is None:  # no per-video costs logged: the counted means, a point
                point = row[COST] / ref[COST]
                verdicts.append(HOLDS if point < 1 else FAILS)
                factors.append(1.0)
                parts.append(f"{row['budget']:g}: {point:.0%} (no interval)")
                continue
            lo, hi = interval(ratio[1])
            verdict = HOLDS if hi < 1 else FAILS if lo >= 1 else INCONCLUSIVE
            verdicts.append(verdict)
            factors.append(1.0 if verdict != INCONCLUSIVE else more_data_factor(ratio[0], lo, hi, 1.0))
            parts.append(f"{row['budget']:g}: {ratio[0]:.0%} [{lo:.0%}, {hi:.0%}]")
        verdict, advice = overall(ctx, verdicts, factors)
        measured = f"reference {pt(ref, ctx)}; {label} GFLOPs as a share of it by budget: " + "; ".join(parts)
        criterion = "criterion: the 95% interval of the cost ratio below 100% at every budget"
        mine = [ctx.extras.get(key(label, b), {}).get(memory_key) for b in curve["budget"]] if memory_key else []
        if ref_extra and mine and all(mine):
            measured += f"; {memory_key}: " + "; ".join(
                f"{b:g}: {m:.4g} vs {ref_extra:.4g}" for b, m in zip(curve["budget"], mine)
            )
            if max(mine) >= ref_extra:
                verdict, advice = FAILS, ""
            criterion += f" and less {memory_key}"
        out.append((measured, verdict, criterion + advice))
    return out


def increases_with_budget(ctx: Context, method: str) -> list[Row]:
    """The metric rises from each budget to the next: paired differences between consecutive budgets."""
    if not ctx.curves(method):
        return missing(method)
    out = []
    for label, curve in ctx.curves(method).items():
        curve = curve.dropna(subset=["budget"]).sort_values("budget")
        if len(curve) < 2:
            out.append(("one budget only", NOT_COMPARABLE, "needs at least two budgets"))
            continue
        rows = [r for _, r in curve.iterrows()]
        if any(ctx.value(r) is None for r in rows):
            out.append(no_predictions(*rows))
            continue
        verdicts, factors, parts = [], [], []
        for low, high in zip(rows, rows[1:]):
            verdict, text, factor = difference(ctx, ctx.value(high), ctx.value(low), 0.0)
            verdicts.append(verdict)
            factors.append(factor)
            parts.append(f"{low['budget']:g} -> {high['budget']:g}: {text}")
        verdict, advice = overall(ctx, verdicts, factors)
        out.append(
            (
                f"{label} {ctx.metric} gain by {curve['budget_param'].iloc[0]}: " + "; ".join(parts),
                verdict,
                "criterion: 95% interval of each paired gain above 0" + advice + ctx.seeds_note(*rows),
            )
        )
    return out


def ordered(ctx: Context, method: str, param: str, order: list[str]) -> list[Row]:
    """Variants of ``method`` (values of ``param``) rank in ``order`` at every shared budget."""
    pts = ctx.method_points(method)
    if pts.empty:
        return missing(method)
    value = pts["params"].map(lambda p: str(p.get(param)) if isinstance(p, dict) else None)
    present = [r for r in order if (value == r).any()]
    if len(present) < 2:
        return [
            (
                f"{param} values run: {', '.join(sorted(set(value.dropna()))) or 'none'}",
                NOT_COMPARABLE,
                f"needs at least two of {', '.join(order)}",
            )
        ]
    pts = pts.assign(variant=value)
    verdicts, factors, parts, used = [], [], [], []
    for budget, group in pts.groupby("budget"):
        rows = {r["variant"]: r for _, r in group.iterrows()}
        for a, b in zip(present, present[1:]):
            if a in rows and b in rows:
                if ctx.value(rows[a]) is None or ctx.value(rows[b]) is None:
                    return [no_predictions(rows[a], rows[b])]
                verdict, text, factor = difference(ctx, ctx.value(rows[a]), ctx.value(rows[b]), 0.0)
                verdicts.append(verdict)
                factors.append(factor)
                used += [rows[a], rows[b]]
                parts.append(f"{pts['budget_param'].iloc[0]}={budget:g}: {a} - {b} {text}")
    if not verdicts:
        return [("no budget shared by the variants", NOT_COMPARABLE, "variants were run at different budgets")]
    verdict, advice = overall(ctx, verdicts, factors)
    skipped = [r for r in order if r not in present]
    return [
        (
            "; ".join(parts),
            verdict,
            f"criterion: {' > '.join(present)} (95% interval of each paired difference "
            "above 0) at every shared budget"
            + (f"; {', '.join(skipped)} not run" if skipped else "")
            + advice
            + ctx.seeds_note(*used),
        )
    ]


def cost_increases_with_budget(ctx: Context, method: str) -> list[Row]:
    """Counted GFLOPs per video (mean over videos and seeds) strictly rise with the budget knob."""
    if not ctx.curves(method):
        return missing(method)
    out = []
    for label, curve in ctx.curves(method).items():
        curve = curve.dropna(subset=["budget"]).sort_values("budget")
        if len(curve) < 2:
            out.append(("one budget only", NOT_COMPARABLE, "needs at least two budgets"))
            continue
        values = curve[COST].to_numpy(float)
        steps = ", ".join(f"{b:g}: {v:.3g}" for b, v in zip(curve["budget"], values))
        out.append(
            (
                f"{label} GFLOPs by {curve['budget_param'].iloc[0]}: {steps}",
                HOLDS if bool(np.all(np.diff(values) > 0)) else FAILS,
                "criterion: counted GFLOPs per video strictly increasing with the budget knob",
            )
        )
    return out


def selection_share_at_most(ctx: Context, method: str, limit: float) -> list[Row]:
    """The selection's share of the counted GFLOPs is at most ``limit`` at every budget, judged on
    the 95% interval of the share (mean selection GFLOPs over mean total, bootstrapped over seeds
    and test videos: an adaptive policy's cost moves with both)."""
    if not ctx.curves(method):
        return missing(method)
    out = []
    for label, curve in ctx.curves(method).items():
        if curve["gflops_selection_mean_mean"].isna().all():
            out.append(("no gflops_selection_mean logged", NOT_COMPARABLE, "selection cost not reported"))
            continue
        verdicts, factors, parts = [], [], []
        for _, row in curve.iterrows():
            share = cost_ratio(ctx, row, "gflops_selection")
            if share is None:
                verdicts.append(INCONCLUSIVE)
                factors.append(float("nan"))
                parts.append(f"{budget_name(row)}: {row['gflops_selection_mean_mean'] / row[COST]:.1%} (no interval)")
                continue
            verdict, text, factor = judge_at_most(share[0], share[1], limit)
            verdicts.append(verdict)
            factors.append(factor)
            parts.append(f"{row['budget']:g}: {text}")
        verdict, advice = overall(ctx, verdicts, factors)
        out.append(
            (
                f"{label} selection share of GFLOPs by budget: " + "; ".join(parts),
                verdict,
                f"criterion: the share's 95% interval at most {limit:.0%} of the counted total at every budget"
                + advice
                + ctx.seeds_note(*[r for _, r in curve.iterrows()]),
            )
        )
    return out


def cost_varies_per_video(ctx: Context, method: str, min_cv: float) -> list[Row]:
    if not ctx.curves(method):
        return missing(method)
    out = []
    for label, curve in ctx.curves(method).items():
        cv = curve["gflops_per_video_std_mean"] / curve[COST]
        parts = "; ".join(
            f"{b:g}: {m:.3g} ± {s:.3g}"
            for b, m, s in zip(curve["budget"], curve[COST], curve["gflops_per_video_std_mean"])
        )
        out.append(
            (
                f"{label} GFLOPs per video (mean ± std over videos) by budget: {parts}",
                HOLDS if cv.min() >= min_cv else FAILS,
                f"criterion: std/mean >= {min_cv:.0%} at every budget",
            )
        )
    return out


def fact_varies(ctx: Context, method: str, fact: str, what: str) -> list[Row]:
    """A declared per-video fact takes at least two distinct values at every budget."""
    if not ctx.curves(method):
        return missing(method)
    found = {k: v[fact] for k, v in ctx.facts.items() if k[0] in ctx.curves(method) and fact in v}
    if not found:
        return [("—", NOT_COMPARABLE, f"no per-video {what} in the predictions (extras '{fact}')")]
    parts, ok = [], True
    for (label, budget), values in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        distinct = len(np.unique(values))
        ok &= distinct >= 2
        parts.append(
            f"{label}{'' if budget is None else f' {budget:g}'}: {what} {values.min():g}–{values.max():g} "
            f"({distinct} distinct values, mean {values.mean():.1f})"
        )
    return [("; ".join(parts), HOLDS if ok else FAILS, f"criterion: at least two distinct {what} at every budget")]


# -- the check over a result set ------------------------------------------------------------------


def check_claims(
    points: pd.DataFrame,
    metric: str,
    contexts: Callable[[pd.DataFrame], Context] | None = None,
    claims: list[Claim] | None = None,
) -> pd.DataFrame:
    """One row per claim (per curve where a method has several), per dataset, backbone and experiment:
    methods are only compared with baselines run on the same data, backbone and launch.
    ``contexts(group)`` builds each group's Context (bootstrap replicates, facts); without it the
    checks see seed means only, and every comparison is "not comparable here"."""
    claims = registered_claims() if claims is None else claims
    rows = []
    reported: set[tuple[str, str, str]] = set()  # (dataset, experiment, claim id) already given a row
    ran_on = points.groupby(["dataset", "experiment"])["method"].agg(set) if len(points) else {}
    for (dataset, backbone, experiment), group in points.groupby(["dataset", "backbone", "experiment"], sort=True):
        ctx = contexts(group) if contexts else Context(group, metric)
        here = set(group["method"])
        for claim in claims:
            # a claim is checked on the backbones its method ran on; one "not comparable" row if none
            if claim.method not in here and (
                claim.method in ran_on[(dataset, experiment)] or (dataset, experiment, claim.id) in reported
            ):
                continue
            reported.add((dataset, experiment, claim.id))
            for measured, verdict, reason in claim.check(ctx):
                rows.append(
                    {
                        "dataset": dataset,
                        "backbone": backbone,
                        "experiment": experiment,
                        "id": claim.id,
                        "paper": claim.paper,
                        "table": claim.table,
                        "claim": claim.statement,
                        "paper's numbers": claim.paper_numbers,
                        "measured here": measured,
                        "verdict": verdict,
                        "why": reason,
                    }
                )
    return pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "backbone",
            "experiment",
            "id",
            "paper",
            "table",
            "claim",
            "paper's numbers",
            "measured here",
            "verdict",
            "why",
        ],
    )
