"""Oracle K: the K timesteps whose heavy score for the TRUE class(es) is highest (SCSampler's O(v, y; K)).

An upper bound on any selector for this heavy classifier, not a usable method: it reads the test
label and needs the heavy classifier on every timestep to choose, so its usage counts all L heavy
runs (what really ran) while its prediction averages only the K chosen ones. ``deployable = False``.
"""

from __future__ import annotations

import numpy as np

from harness.params import Param
from harness.registry import register_method
from harness.toolkit.heavy_on_timesteps import HeavyOnTimesteps
from harness.toolkit.selection import AGGREGATE_PARAM, top_k, true_class_scores


def oracle_timesteps(logits: np.ndarray, labels: np.ndarray, k: int, multilabel: bool) -> np.ndarray:
    """Top-k timesteps of one video's heavy logits [L, C] by the true class(es)' probability."""
    return top_k(true_class_scores(logits, labels, multilabel), k)


@register_method("oracle")
class Oracle(HeavyOnTimesteps):
    summary = "upper bound: the K timesteps the heavy classifier scores highest for the true label"
    cost = 4.0  # rough seconds of a trial (Method.cost): the scheduler starts costly trials first
    params = {
        "k": Param(4, "timesteps averaged per video (all of them when the video is shorter)", low=1),
        "aggregate": AGGREGATE_PARAM,
    }
    budget_param = "k"
    deployable = False

    def choose(self, row: int, length: int) -> np.ndarray:
        logits = np.asarray(self.table.heavy_logits[row, :length])
        return oracle_timesteps(logits, self.table.labels[row], self.p["k"], self.table.multilabel)

    def heavy_runs(self, length: int, chosen: np.ndarray) -> np.ndarray:
        return np.arange(length, dtype=np.int64)  # choosing needed the heavy score of every timestep
