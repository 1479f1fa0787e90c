"""95% confidence intervals by a stratified bootstrap over seeds and test videos.

A point (one curve at one budget) has per-video outcomes for each seed it was trained with. One
bootstrap replicate draws the seeds with replacement and, within each drawn seed, the test videos
with replacement (rliable's stratified bootstrap, with seeds as the outer stratum), recomputes the
metric on every drawn seed and averages over the drawn seeds. The 95% interval is the 2.5 and 97.5
percentiles of ``N_BOOT`` replicates. With one seed only the test videos are resampled: the
interval then says nothing about training variance, and reports say so.

Comparisons are paired: a ``Resampler`` holds one set of draws for a whole test set, so every point
evaluated with it sees the same resampled videos and, where two points share their seed list, the
same resampled seeds. A difference (or any linear combination, e.g. log-GFLOPs interpolation
between two budgets) is computed replicate by replicate, and its interval taken from those. The
draws come from a fixed RNG seed, so a report is reproducible.

Costs get intervals the same way. An adaptive method's GFLOPs per video depend on the video and on
the seed that trained its policy, so a claim about cost (a share of GFLOPs, a cost ratio) is judged
on replicates of the mean per-video GFLOPs under the same draws (``cost_replicates``); a fixed-cost
method's replicates are all equal, and its interval is a point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

N_BOOT = 2000
MAP_BOOT = 1000  # mAP replicates cost ~ classes x videos x replicates: fewer of them
LEVEL = 0.95
RNG_SEED = 20260101
COST_COLUMNS = ("gflops", "gflops_selection")  # per-video columns of a trial's predictions table


@dataclass
class Outcomes:
    """One point's per-video results, aligned on a test set's video list.

    ``correct``: [S, N] 1.0 / 0.0 top-1 hits, NaN where seed s has no prediction for video n.
    ``scores``/``targets``: [S, N, C] class scores and multi-hot labels (for mAP), NaN / False where
    missing. ``costs``: per-video numeric columns of the predictions (``COST_COLUMNS``: counted GFLOPs
    and the selection's share of them), [S, N] each, NaN where missing; absent when not logged.
    """

    seeds: list[int]
    correct: np.ndarray
    scores: np.ndarray
    targets: np.ndarray
    costs: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_predictions(cls, videos: Sequence[str], per_seed: dict[int, "object"], num_classes: int) -> "Outcomes":
        """``per_seed``: seed -> a predictions table (``video_id``, ``labels``, ``scores`` decoded)."""
        index = {v: i for i, v in enumerate(videos)}
        seeds = sorted(per_seed)
        correct = np.full((len(seeds), len(videos)), np.nan)
        scores = np.full((len(seeds), len(videos), num_classes), np.nan)
        targets = np.zeros((len(seeds), len(videos), num_classes), dtype=bool)
        present = [c for c in COST_COLUMNS if all(c in per_seed[seed] for seed in seeds)]
        costs = {c: np.full((len(seeds), len(videos)), np.nan) for c in present}
        for s, seed in enumerate(seeds):
            rows = [index[str(v)] for v in per_seed[seed]["video_id"]]
            for c in present:
                costs[c][s, rows] = pd.to_numeric(per_seed[seed][c], errors="coerce").to_numpy(float)
            for vid, labels, score in zip(
                per_seed[seed]["video_id"], per_seed[seed]["labels"], per_seed[seed]["scores"]
            ):
                if score is None or labels is None:
                    continue
                n = index[str(vid)]
                score = np.asarray(score, float)
                scores[s, n, : len(score)] = score
                targets[s, n, list(labels)] = True
                correct[s, n] = float(int(np.argmax(score)) == int(labels[0])) if labels else np.nan
        return cls(seeds, correct, scores, targets, costs)


class Resampler:
    """One set of bootstrap draws for a test set of ``n_videos`` and up to ``max_seeds`` seeds.

    Slot j of replicate b takes seed ``floor(u[b, j] * S)`` of a point's own S seeds, and draws the
    videos ``counts[j, b]`` (how many times each video was drawn); points with the same seed list
    therefore get the same seeds, and every point the same videos.
    """

    def __init__(self, n_videos: int, max_seeds: int, n_boot: int = N_BOOT, seed: int = RNG_SEED):
        rng = np.random.default_rng(seed)
        self.n_boot = n_boot
        self.u = rng.random((n_boot, max(1, max_seeds)))
        slots = max(1, max_seeds)
        draws = rng.integers(0, n_videos, (slots * n_boot, n_videos))
        flat = (draws + n_videos * np.arange(slots * n_boot)[:, None]).ravel()
        self.counts = (
            np.bincount(flat, minlength=slots * n_boot * n_videos).astype(np.float32).reshape(slots, n_boot, n_videos)
        )  # [slots, B, N]: how many times replicate b of slot j drew each video

    def _seed_index(self, n_seeds: int) -> np.ndarray:
        return np.minimum((self.u[:, :n_seeds] * n_seeds).astype(int), n_seeds - 1)  # [B, S]

    def _per_slot(self, statistic: Callable[[int, np.ndarray], np.ndarray], n_seeds: int) -> np.ndarray:
        """Average over slots of ``statistic(seed, weights)`` ([rows] from [rows, N] video weights),
        each replicate reading the seed its slot drew under the slot's video draws."""
        seeds = self._seed_index(n_seeds)
        out = np.zeros(self.n_boot)
        for j in range(n_seeds):
            for s in range(n_seeds):
                rows = np.flatnonzero(seeds[:, j] == s)
                if len(rows):
                    out[rows] += statistic(s, self.counts[j, rows])
        return out / n_seeds

    def mean(self, values: np.ndarray) -> np.ndarray:
        """[B] replicates of the per-video mean of a [S, N] matrix (NaN: no value), averaged over
        the drawn seeds: top-1 from hits, or the mean GFLOPs per video of an adaptive method."""
        valid = (~np.isnan(values)).astype(np.float32)
        filled = np.nan_to_num(values).astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._per_slot(lambda s, w: (w @ filled[s]) / (w @ valid[s]), len(values))

    def accuracy(self, correct: np.ndarray) -> np.ndarray:
        """[B] replicates of top-1 accuracy (%) from a [S, N] hit matrix (NaN: no prediction)."""
        return 100.0 * self.mean(correct)

    def mean_ap(self, scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """[B] replicates of mAP (%) from [S, N, C] scores and targets: a drawn video counts as many
        times as it was drawn (AP with sample weights), classes with no drawn positive left out."""
        return 100.0 * self._per_slot(lambda s, w: weighted_map(scores[s], targets[s], w), len(scores))


def weighted_map(scores: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """mAP (fraction) of one seed's [N, C] scores under each row of [B, N] video weights. Videos are
    ranked by score (ties by order, as ``harness.metrics``); a video drawn w times adds w to the
    counts at its rank. Videos without a score get weight 0."""
    present = ~np.isnan(scores).any(axis=1)
    weights = weights * present[None, :]
    aps = []
    for c in range(scores.shape[1]):
        order = np.argsort(-np.nan_to_num(scores[:, c], nan=-np.inf), kind="stable")
        positive = np.flatnonzero(targets[order, c])  # ranks of the positives
        if not len(positive):
            aps.append(np.full(len(weights), np.nan))
            continue
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        above = (rank[:, None] <= positive[None, :]).astype(np.float32)  # [N, P]: video ranked at or above
        seen = weights @ above  # drawn videos up to each positive (a matrix product: fast)
        w = weights[:, order[positive]]
        tp = np.cumsum(w, axis=1)  # drawn positives up to each positive
        with np.errstate(invalid="ignore", divide="ignore"):
            ap = (w * np.where(seen > 0, tp / seen, 0.0)).sum(axis=1) / tp[:, -1]
        ap[tp[:, -1] == 0] = np.nan
        aps.append(ap)
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.stack(aps, axis=1), axis=1) if aps else np.full(len(weights), np.nan)


def replicates(resampler: Resampler, outcomes: Outcomes, metric: str) -> np.ndarray:
    """[B] bootstrap replicates of ``metric`` ("top1_pct" or "map_pct") for one point."""
    if metric == "top1_pct":
        return resampler.accuracy(outcomes.correct)
    if metric == "map_pct":
        return resampler.mean_ap(outcomes.scores, outcomes.targets)
    raise ValueError(f"no bootstrap for metric '{metric}' (known: top1_pct, map_pct)")


def cost_replicates(resampler: Resampler, outcomes: Outcomes) -> dict[str, tuple[float, np.ndarray]]:
    """Each logged per-video cost column -> (its mean over videos averaged over seeds, [B]
    replicates under the same draws as the accuracy's, so ratios and differences are paired)."""
    return {
        name: (float(np.mean(np.nanmean(values, axis=1))), resampler.mean(values))
        for name, values in outcomes.costs.items()
        if not np.isnan(values).all(axis=1).any()
    }


def estimate(outcomes: Outcomes, metric: str) -> float:
    """The point estimate: the metric on all videos, averaged over seeds."""
    if metric == "top1_pct":
        return float(100.0 * np.mean(np.nanmean(outcomes.correct, axis=1)))
    ones = np.ones((1, outcomes.scores.shape[1]), np.float32)
    return float(100.0 * np.mean([weighted_map(s, t, ones)[0] for s, t in zip(outcomes.scores, outcomes.targets)]))


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (NaN replicates ignored)."""
    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


def more_data_factor(estimate_: float, lo: float, hi: float, threshold: float) -> float:
    """About how many times the current test videos and seeds an interval needs to exclude
    ``threshold``: its half-width shrinks as 1/sqrt(n), so n must grow by (half-width / gap)^2."""
    gap = abs(estimate_ - threshold)
    half = (hi - lo) / 2.0
    return float("inf") if gap <= 1e-9 * max(1.0, half) else max(1.0, (half / gap) ** 2)  # float noise = on it


def mean_ci(mean: float, lo: float, hi: float, digits: int = 1) -> str:
    """``mean [lo, hi]``; just the mean when no interval is known, '—' when the mean is not."""
    if mean is None or np.isnan(mean):
        return "—"
    if lo is None or np.isnan(lo) or np.isnan(hi):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
