"""Choosing timesteps and turning their logits into video scores.

``uniform_timesteps`` / ``random_timesteps`` are the timestep views of the frame samplers in
``harness.data.sampling`` (one implementation of "uniform" and of "random"): a timestep is never
repeated, so a video with fewer timesteps than asked gets all of them.
"""

from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np
import torch

from harness.data.sampling import PLACEMENTS, random_frames, uniform_frames
from harness.metrics import AGGREGATION_RULES, aggregate_scores, default_rule
from harness.params import Param

AGGREGATE_PARAM = Param(
    "auto",
    "rule combining the chosen timesteps' heavy scores: auto = mean_softmax "
    "(single-label) or max_sigmoid (multi-label)",
    choices=("auto",) + tuple(AGGREGATION_RULES),
)
PLACEMENT_PARAM = Param(
    "centres",
    "where K uniform timesteps fall: centres = the centres of K equal segments "
    "(TSN); endpoints = evenly spaced with the first and the last timestep included "
    "(SCSampler section 4.1.2)",
    choices=PLACEMENTS,
)


def top_k(scores: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores (all of them when k >= len), highest first; ties by index."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    return order[: max(0, min(int(k), len(scores)))].astype(np.int64)


def uniform_timesteps(length: int, k: int, placement: str = "centres") -> np.ndarray:
    """K evenly spaced timesteps of ``length`` (all of them when k >= length); ``placement`` as in
    ``harness.data.sampling.uniform_frames``."""
    if k >= length:
        return np.arange(length, dtype=np.int64)
    return uniform_frames(length, k, placement=placement)


def random_timesteps(length: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """K distinct timesteps drawn uniformly without replacement, in temporal order (all when k >= length)."""
    if k >= length:
        return np.arange(length, dtype=np.int64)
    return random_frames(length, k, rng=rng)


def video_rng(seed: int, video_id: str) -> np.random.Generator:
    """A generator that depends only on (seed, video): the same draw in every trial and process."""
    return np.random.default_rng([int(seed), zlib.crc32(str(video_id).encode())])


def aggregate(logits: np.ndarray, rule: str, multilabel: bool) -> np.ndarray:
    """Video scores [C] from the logits [K, C] of the chosen timesteps by a named rule ("auto" allowed)."""
    return aggregate_scores(np.asarray(logits), default_rule(multilabel) if rule == "auto" else rule)


def class_probabilities(logits: np.ndarray | torch.Tensor, multilabel: bool):
    """Softmax over classes (single-label) or per-class sigmoid (multi-label), numpy or torch."""
    if isinstance(logits, torch.Tensor):
        return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=-1)
    logits = np.asarray(logits, dtype=np.float64)
    if multilabel:
        return 1.0 / (1.0 + np.exp(-logits))
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def true_class_scores(logits: np.ndarray, labels: np.ndarray, multilabel: bool) -> np.ndarray:
    """f_y of every timestep: the probability of the true class (multi-label: the max over true classes).

    ``logits`` [..., C]; ``labels`` a multi-hot vector [C] broadcast over the leading dims. This is the
    oracle's score and the SAL-CL / SAL-RANK pseudo ground truth; it reads the label and nothing else.
    """
    probs = class_probabilities(np.asarray(logits), multilabel)
    positive = np.asarray(labels).astype(bool)
    if not positive.any():
        raise ValueError("true_class_scores needs at least one true class")
    return np.where(positive, probs, -np.inf).max(axis=-1)


def multi_hot(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """float32 [C]: 1 at each of a video's labels."""
    out = np.zeros(num_classes, dtype=np.float32)
    out[list(labels)] = 1.0
    return out
