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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

N_BOOT = 2000
LEVEL = 0.95
RNG_SEED = 20260101
MAP_CHUNK = 100  # mAP replicates computed this many at a time (memory: chunk x videos x classes)


@dataclass
class Outcomes:
    """One point's per-video results, aligned on a test set's video list.

    ``correct``: [S, N] 1.0 / 0.0 top-1 hits, NaN where seed s has no prediction for video n.
    ``scores``/``targets``: [S, N, C] class scores and multi-hot labels (for mAP), NaN / False where
    missing.
    """

    seeds: list[int]
    correct: np.ndarray
    scores: np.ndarray
    targets: np.ndarray

    @classmethod
    def from_predictions(cls, videos: Sequence[str], per_seed: dict[int, "object"], num_classes: int) -> "Outcomes":
        """``per_seed``: seed -> a predictions table (``video_id``, ``labels``, ``scores`` decoded)."""
        index = {v: i for i, v in enumerate(videos)}
        seeds = sorted(per_seed)
        correct = np.full((len(seeds), len(videos)), np.nan)
        scores = np.full((len(seeds), len(videos), num_classes), np.nan)
        targets = np.zeros((len(seeds), len(videos), num_classes), dtype=bool)
        for s, seed in enumerate(seeds):
            for vid, labels, score in zip(per_seed[seed]["video_id"], per_seed[seed]["labels"],
                                          per_seed[seed]["scores"]):
                if score is None or labels is None:
                    continue
                n = index[str(vid)]
                score = np.asarray(score, float)
                scores[s, n, :len(score)] = score
                targets[s, n, list(labels)] = True
                correct[s, n] = float(int(np.argmax(score)) == int(labels[0])) if labels else np.nan
        return cls(seeds, correct, scores, targets)


class Resampler:
    """One set of bootstrap draws for a test set of ``n_videos`` and up to ``max_seeds`` seeds.

    Slot j of replicate b takes seed ``floor(u[b, j] * S)`` of a point's own S seeds and the videos
    ``videos[b, j]``; points with the same seed list therefore get the same seeds.
    """

    def __init__(self, n_videos: int, max_seeds: int, n_boot: int = N_BOOT, seed: int = RNG_SEED):
        rng = np.random.default_rng(seed)
        self.n_boot = n_boot
        self.u = rng.random((n_boot, max(1, max_seeds)))
        self.videos = rng.integers(0, n_videos, (n_boot, max(1, max_seeds), n_videos), dtype=np.int32)

    def _seed_index(self, n_seeds: int) -> np.ndarray:
        return np.minimum((self.u[:, :n_seeds] * n_seeds).astype(int), n_seeds - 1)  # [B, S]

    def accuracy(self, correct: np.ndarray) -> np.ndarray:
        """[B] replicates of top-1 accuracy (%) from a [S, N] hit matrix."""
        n_seeds = len(correct)
        seeds = self._seed_index(n_seeds)
        per_slot = [np.nanmean(correct[seeds[:, j, None], self.videos[:, j, :]], axis=1) for j in range(n_seeds)]
        return 100.0 * np.mean(per_slot, axis=0)

    def mean_ap(self, scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """[B] replicates of mAP (%) from [S, N, C] scores and targets (classes with no positive
        among the drawn videos are left out, as in ``harness.metrics``)."""
        n_seeds = len(scores)
        seeds = self._seed_index(n_seeds)
        out = np.zeros(self.n_boot)
        for j in range(n_seeds):
            for start in range(0, self.n_boot, MAP_CHUNK):
                rows = slice(start, start + MAP_CHUNK)
                s_idx, v_idx = seeds[rows, j, None], self.videos[rows, j, :]
                out[rows] += mean_ap_batch(scores[s_idx, v_idx], targets[s_idx, v_idx])
        return 100.0 * out / n_seeds


def mean_ap_batch(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """mAP (fraction) of each of a batch of [N, C] score/target pairs: [B, N, C] -> [B]. Videos with
    no score (NaN) are ranked last and are never positives."""
    present = ~np.isnan(scores).any(axis=2, keepdims=True)
    targets = targets & present
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), axis=1, kind="stable")
    hits = np.take_along_axis(targets, order, axis=1).astype(float)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)[None, :, None]
    positives = hits.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (precision * hits).sum(axis=1) / positives
    ap[positives == 0] = np.nan
    return np.nanmean(ap, axis=1)


def replicates(resampler: Resampler, outcomes: Outcomes, metric: str) -> np.ndarray:
    """[B] bootstrap replicates of ``metric`` ("top1" or "map") for one point."""
    if metric == "top1":
        return resampler.accuracy(outcomes.correct)
    if metric == "map":
        return resampler.mean_ap(outcomes.scores, outcomes.targets)
    raise ValueError(f"no bootstrap for metric '{metric}' (known: top1, map)")


def estimate(outcomes: Outcomes, metric: str) -> float:
    """The point estimate: the metric on all videos, averaged over seeds."""
    if metric == "top1":
        return float(100.0 * np.mean(np.nanmean(outcomes.correct, axis=1)))
    return float(100.0 * np.mean(mean_ap_batch(outcomes.scores, outcomes.targets)))


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
    return float("inf") if gap == 0 else max(1.0, (half / gap) ** 2)


def mean_ci(mean: float, lo: float, hi: float, digits: int = 1) -> str:
    """``mean [lo, hi]``; just the mean when no interval is known, '—' when the mean is not."""
    if mean is None or np.isnan(mean):
        return "—"
    if lo is None or np.isnan(lo) or np.isnan(hi):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
