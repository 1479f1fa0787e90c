"""The bootstrap intervals: coverage on simulated Bernoulli outcomes, pairing, mAP, seeds."""

import numpy as np
import pytest

from harness.metrics import mean_average_precision
from harness.report.stats import Outcomes, Resampler, estimate, interval, more_data_factor, replicates, weighted_map


def outcomes(correct: np.ndarray) -> Outcomes:
    correct = np.atleast_2d(np.asarray(correct, float))
    empty = np.zeros(correct.shape + (1,))
    return Outcomes(list(range(len(correct))), correct, empty, empty.astype(bool))


def test_95_percent_interval_covers_the_true_accuracy_in_93_to_97_percent_of_simulations():
    rng = np.random.default_rng(7)
    true, videos, sims = 0.7, 200, 1000
    hits = rng.random((sims, videos)) < true
    covered = 0
    for i in range(sims):  # a fresh resampler per simulation, as a report makes one per test set
        lo, hi = interval(Resampler(videos, 1, n_boot=500, seed=i).accuracy(hits[i][None].astype(float)))
        covered += lo <= 100 * true <= hi
    assert 930 <= covered <= 970, covered


def test_paired_difference_is_narrower_than_unpaired_on_correlated_outcomes():
    rng = np.random.default_rng(3)
    easy = rng.random(300) < 0.6  # both methods get the easy videos right, and a few others
    a = (easy | (rng.random(300) < 0.15)).astype(float)
    b = (easy | (rng.random(300) < 0.02)).astype(float)
    shared = Resampler(300, 1)
    paired = shared.accuracy(a[None]) - shared.accuracy(b[None])
    unpaired = Resampler(300, 1, seed=1).accuracy(a[None]) - Resampler(300, 1, seed=2).accuracy(b[None])
    lo_p, hi_p = interval(paired)
    lo_u, hi_u = interval(unpaired)
    assert hi_p - lo_p < 0.5 * (hi_u - lo_u)
    assert lo_p > 0 > lo_u  # the pairing resolves a difference that unpaired intervals cannot


def test_seeds_are_resampled_so_training_variance_widens_the_interval():
    rng = np.random.default_rng(0)
    same = np.tile(rng.random(400) < 0.7, (3, 1)).astype(float)  # three seeds, identical outcomes
    spread = np.stack([rng.random(400) < p for p in (0.55, 0.7, 0.85)]).astype(float)  # seed-to-seed spread
    resampler = Resampler(400, 3)
    width = [np.subtract(*interval(resampler.accuracy(c))[::-1]) for c in (same, spread)]
    assert width[1] > 2 * width[0]


def test_missing_videos_are_ignored_and_estimate_is_the_seed_mean():
    correct = np.array([[1, 0, np.nan, 1], [1, 1, 1, 0]], float)
    assert estimate(outcomes(correct), "top1_pct") == pytest.approx(100 * (2 / 3 + 3 / 4) / 2)
    reps = replicates(Resampler(4, 2, n_boot=200), outcomes(correct), "top1_pct")
    assert reps.shape == (200,) and np.nanmin(reps) >= 0 and np.nanmax(reps) <= 100


def test_weighted_map_matches_the_metric_module_and_zero_weight_drops_a_video():
    rng = np.random.default_rng(1)
    scores = rng.random((40, 5))
    targets = rng.random((40, 5)) < 0.3
    weights = np.ones((2, 40), np.float32)
    weights[1, :10] = 0
    got = weighted_map(scores, targets, weights)
    assert 100 * got[0] == pytest.approx(mean_average_precision(scores, targets))
    assert 100 * got[1] == pytest.approx(mean_average_precision(scores[10:], targets[10:]))


def test_map_replicates_vary_around_the_estimate():
    rng = np.random.default_rng(2)
    scores = rng.random((2, 60, 4))
    targets = scores + rng.random((2, 60, 4)) > 1.0
    out = Outcomes([0, 1], np.zeros((2, 60)), scores, targets)
    lo, hi = interval(replicates(Resampler(60, 2, n_boot=300), out, "map_pct"))
    assert lo < estimate(out, "map_pct") < hi


def test_more_data_factor_follows_one_over_sqrt_n():
    assert more_data_factor(2.0, -1.0, 5.0, 0.0) == pytest.approx(2.25)  # half-width 3, gap 2
    assert more_data_factor(0.0, -1.0, 1.0, 0.0) == float("inf")
