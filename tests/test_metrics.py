"""Video-level metrics and aggregation rules, on hand-computed cases."""

import numpy as np
import pytest

from harness.metrics import aggregate_scores, average_precision, mean_average_precision, topk_accuracy, video_metrics


def test_topk_accuracy():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    assert topk_accuracy(scores, [1, 1, 0], 1) == pytest.approx(100 / 3)
    assert topk_accuracy(scores, [1, 1, 0], 2) == pytest.approx(200 / 3)
    assert topk_accuracy(scores, [1, 1, 0], 5) == 100.0  # k larger than the number of classes


def test_average_precision_by_hand():
    # ranking: pos, neg, pos -> precisions at the positives 1/1 and 2/3
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1])) == pytest.approx((1 + 2 / 3) / 2)
    assert np.isnan(average_precision(np.array([0.1, 0.2]), np.array([0, 0])))


def test_map_drops_classes_without_positives():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.5]])
    targets = np.array([[1, 0, 0], [0, 1, 0]], dtype=bool)  # class 2 has no positive
    assert mean_average_precision(scores, targets) == pytest.approx(100.0)


def test_aggregation_rules():
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    mean_soft = aggregate_scores(logits, "mean_softmax")
    assert mean_soft.sum() == pytest.approx(1.0) and mean_soft[0] == pytest.approx(mean_soft[1])
    assert aggregate_scores(logits, "max_sigmoid")[0] == pytest.approx(1 / (1 + np.exp(-2)))
    with pytest.raises(ValueError, match="unknown aggregation rule"):
        aggregate_scores(logits, "median")


def test_video_metrics_single_and_multilabel():
    scores = np.array([[0.8, 0.2], [0.3, 0.7]])
    single = video_metrics(scores, [(0,), (0,)], 2, multilabel=False)
    assert single["top1_pct"] == 50.0 and "map_pct" in single
    multi = video_metrics(scores, [(0, 1), (1,)], 2, multilabel=True)
    assert "top1_pct" not in multi and 0 < multi["map_pct"] <= 100
