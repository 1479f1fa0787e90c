"""Dense: the heavy clip classifier on every non-overlapping timestep, scores averaged (the usual protocol)."""

from __future__ import annotations

import numpy as np

from harness.registry import register_method
from harness.toolkit.heavy_on_timesteps import HeavyOnTimesteps
from harness.toolkit.selection import AGGREGATE_PARAM


@register_method("dense")
class Dense(HeavyOnTimesteps):
    summary = "heavy clip classifier on all timesteps, scores averaged"
    cost = 4.0  # rough seconds of a trial (Method.cost): the scheduler starts costly trials first
    params = {"aggregate": AGGREGATE_PARAM}
    budget_param = None  # cost is the video's length, nothing to sweep

    def choose(self, row: int, length: int) -> np.ndarray:
        return np.arange(length, dtype=np.int64)
