"""Uniform K: K evenly spaced timesteps (TSN's and SCSampler's "Uniform" baseline).

``placement: centres`` (the default, so existing results stay) takes the centres of K equal
segments (TSN's test rule); ``placement: endpoints`` spaces K timesteps evenly from the first to the
last, both included, as SCSampler section 4.1.2 defines its Uniform baseline (K = 1: the centre).
"""

from __future__ import annotations

import numpy as np

from harness.params import Param
from harness.registry import register_method
from harness.toolkit.heavy_on_timesteps import HeavyOnTimesteps
from harness.toolkit.selection import AGGREGATE_PARAM, PLACEMENT_PARAM, uniform_timesteps


@register_method("uniform")
class Uniform(HeavyOnTimesteps):
    summary = "heavy clip classifier on K uniformly spaced timesteps, scores averaged"
    params = {
        "k": Param(4, "timesteps classified per video (all of them when the video is shorter)", low=1),
        "placement": PLACEMENT_PARAM,
        "aggregate": AGGREGATE_PARAM,
    }
    budget_param = "k"

    def choose(self, row: int, length: int) -> np.ndarray:
        return uniform_timesteps(length, self.p["k"], self.p["placement"])
