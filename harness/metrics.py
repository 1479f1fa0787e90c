"""Video-level metrics and clip-score aggregation rules.

Single-label datasets report top-1 / top-5 accuracy (and mAP over one-hot labels, LiteEval's
ActivityNet convention); multi-label datasets report mAP with classes that have no positive test
video dropped (PySlowFast's rule; MMAction2 yields NaN for them). All in percent, and named so:
``top1_pct``, ``top5_pct``, ``map_pct`` (the names a trial logs to MLflow).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

AGGREGATION_RULES = ("mean_softmax", "max_sigmoid", "mean_logits")


def aggregate_scores(logits: np.ndarray, rule: str) -> np.ndarray:
    """Combine per-clip logits [K, C] into one video score vector [C] by a named rule."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or len(logits) == 0:
        raise ValueError(f"expected clip logits of shape [K>0, C], got {logits.shape}")
    if rule == "mean_softmax":
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        return (p / p.sum(axis=1, keepdims=True)).mean(axis=0)
    if rule == "max_sigmoid":
        return (1.0 / (1.0 + np.exp(-logits))).max(axis=0)
    if rule == "mean_logits":
        return logits.mean(axis=0)
    raise ValueError(f"unknown aggregation rule '{rule}' (known: {', '.join(AGGREGATION_RULES)})")


def default_rule(multilabel: bool) -> str:
    return "max_sigmoid" if multilabel else "mean_softmax"


def topk_accuracy(scores: np.ndarray, labels: Sequence[int], k: int) -> float:
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = [label in row for label, row in zip(labels, top)]
    return 100.0 * float(np.mean(hits)) if hits else float("nan")


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """AP of one class: mean precision at the rank of each positive (ties broken by order)."""
    order = np.argsort(-scores, kind="stable")
    hits = positives[order].astype(bool)
    if not hits.any():
        return float("nan")
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at[hits].mean())


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """mAP over classes with at least one positive, in percent."""
    aps = [average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1]) if targets[:, c].any()]
    return 100.0 * float(np.mean(aps)) if aps else float("nan")


def video_metrics(
    scores: np.ndarray, labels: Sequence[Sequence[int]], num_classes: int, multilabel: bool
) -> dict[str, float]:
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.zeros((len(labels), num_classes), dtype=bool)
    for i, video_labels in enumerate(labels):
        targets[i, list(video_labels)] = True
    result = {"map_pct": mean_average_precision(scores, targets)}
    if not multilabel:
        first = [video_labels[0] for video_labels in labels]
        result["top1_pct"] = topk_accuracy(scores, first, 1)
        result["top5_pct"] = topk_accuracy(scores, first, 5)
    return result
