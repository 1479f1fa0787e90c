"""Uniform K: K evenly spaced timesteps, first and last included (SCSampler's "Uniform" baseline)."""
from __future__ import annotations

import numpy as np

from harness.params import Param
from harness.registry import register_method
from harness.shared import AGGREGATE_PARAM, HeavyOnTimesteps, uniform_timesteps


@register_method("uniform")
class Uniform(HeavyOnTimesteps):
    summary = "heavy clip classifier on K uniformly spaced timesteps, scores averaged"
    params = {"k": Param(4, "timesteps classified per video (all of them when the video is shorter)", low=1),
              "aggregate": AGGREGATE_PARAM}
    budget_param = "k"

    def choose(self, row: int, length: int) -> np.ndarray:
        return uniform_timesteps(length, self.p["k"])
