"""Random K: K distinct timesteps drawn at random per video (SCSampler's "Random" baseline).

The draw depends only on (trial seed, video id), so it is the same in every run and process.
"""

from __future__ import annotations

import numpy as np

from harness.params import Param
from harness.registry import register_method
from harness.toolkit.heavy_on_timesteps import HeavyOnTimesteps
from harness.toolkit.selection import AGGREGATE_PARAM, random_timesteps, video_rng


@register_method("random")
class RandomK(HeavyOnTimesteps):
    summary = "heavy clip classifier on K random timesteps, scores averaged"
    params = {
        "k": Param(4, "timesteps classified per video (all of them when the video is shorter)", low=1),
        "aggregate": AGGREGATE_PARAM,
    }
    budget_param = "k"

    def choose(self, row: int, length: int) -> np.ndarray:
        return random_timesteps(length, self.p["k"], video_rng(self.ctx.seed, self.table.video_ids[row]))
