"""Baselines: uniform / random / dense / oracle choices, top-K, aggregation, and the oracle's label-only
dependence (on hand-made tables; the real-benchmark checks are in tests/test_shared.py)."""

from __future__ import annotations

import numpy as np

from harness.toolkit.selection import (
    aggregate,
    random_timesteps,
    top_k,
    true_class_scores,
    uniform_timesteps,
    video_rng,
)
from harness.toolkit.stages import TimestepTable
from methods.dense import Dense
from methods.oracle import Oracle, oracle_timesteps
from methods.random_k import RandomK
from methods.uniform import Uniform


def test_top_k_picks_the_highest_and_handles_k_above_length():
    scores = np.array([0.1, 0.9, 0.3, 0.8, 0.2])
    assert list(top_k(scores, 2)) == [1, 3]
    assert sorted(top_k(scores, 10)) == [0, 1, 2, 3, 4]
    assert len(top_k(scores, 0)) == 0


def test_uniform_centres_by_default_and_caps_at_length():
    assert list(uniform_timesteps(10, 4)) == [1, 3, 6, 8]  # centres of 4 segments of 2.5: 0 and 9 left out
    assert list(uniform_timesteps(10, 1)) == [5]
    assert list(uniform_timesteps(3, 8)) == [0, 1, 2]
    assert len(uniform_timesteps(33, 7)) == 7


def test_uniform_endpoints_includes_first_and_last_and_caps_at_length():
    assert list(uniform_timesteps(10, 4, "endpoints")) == [0, 3, 6, 9]
    assert list(uniform_timesteps(24, 2, "endpoints")) == [0, 23]
    assert list(uniform_timesteps(10, 1, "endpoints")) == [5]  # one timestep: the centre
    assert list(uniform_timesteps(3, 8, "endpoints")) == [0, 1, 2]
    chosen = uniform_timesteps(33, 7, "endpoints")
    assert len(set(chosen.tolist())) == 7 and chosen[0] == 0 and chosen[-1] == 32


def test_random_is_distinct_deterministic_per_video_and_varies_across_videos():
    a = random_timesteps(20, 5, video_rng(0, "v1"))
    assert len(set(a.tolist())) == 5 and a.min() >= 0 and a.max() < 20
    assert list(a) == list(random_timesteps(20, 5, video_rng(0, "v1")))
    draws = {tuple(random_timesteps(20, 5, video_rng(0, f"v{i}"))) for i in range(10)}
    assert len(draws) > 5
    assert list(random_timesteps(4, 9, video_rng(0, "v1"))) == [0, 1, 2, 3]


def test_aggregate_auto_rules():
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    single = aggregate(logits, "auto", multilabel=False)
    assert np.isclose(single.sum(), 1.0) and single[1] > single[0]
    multi = aggregate(logits, "auto", multilabel=True)
    assert np.allclose(multi, 1 / (1 + np.exp(-logits.max(0))))


def _table(logits: np.ndarray, labels: np.ndarray, lengths: list[int], rng: np.random.Generator) -> TimestepTable:
    n, lmax, _ = logits.shape
    return TimestepTable(
        video_ids=[f"v{i}" for i in range(n)],
        lengths=np.array(lengths),
        labels=labels,
        heavy_logits=logits,
        heavy_features=rng.normal(size=(n, lmax, 8)),
        light_features=rng.normal(size=(n, lmax, 4)),
        clip_len=4,
        multilabel=False,
    )


def test_oracle_uses_the_true_label_and_nothing_else():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 8, 5))
    logits[0, 1, 0] = logits[0, 6, 0] = 6.0  # class 0 is clearest at timesteps 1 and 6
    logits[0, 3, 2] = logits[0, 4, 2] = 6.0  # class 2 at timesteps 3 and 4
    labels = np.zeros((1, 5), dtype=np.float32)
    labels[0, 0] = 1
    oracle = Oracle(None, k=2, aggregate="auto")
    oracle.table = _table(logits.copy(), labels, [8], rng)
    chosen = sorted(oracle.choose(0, 8))
    assert chosen == [1, 6]
    # permuting the other classes' scores, or replacing the features, changes nothing
    permuted = logits.copy()
    permuted[..., 1:] = permuted[..., [3, 1, 4, 2]]
    oracle.table = _table(permuted, labels, [8], np.random.default_rng(1))
    assert sorted(oracle.choose(0, 8)) == chosen
    # changing the label does
    other = np.zeros_like(labels)
    other[0, 2] = 1
    oracle.table = _table(logits.copy(), other, [8], rng)
    assert sorted(oracle.choose(0, 8)) == [3, 4]
    # it still classifies every timestep to choose: usage counts all of them
    assert oracle.usage(8, np.array([3, 4])).total("heavy") == 8


def test_oracle_multilabel_takes_the_best_true_class():
    logits = np.full((6, 3), -4.0)
    logits[2, 0] = 3.0
    logits[5, 2] = 2.0
    logits[1, 1] = 9.0  # a false class: ignored
    assert sorted(oracle_timesteps(logits, np.array([1, 0, 1]), 2, multilabel=True)) == [2, 5]
    assert np.isclose(true_class_scores(logits, np.array([1, 0, 1]), True)[2], 1 / (1 + np.exp(-3.0)))


def test_baseline_predictions_read_their_chosen_timesteps():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 10, 3))
    labels = np.eye(3, dtype=np.float32)[[0, 1]]
    table = _table(logits, labels, [10, 3], rng)
    for cls, params in (
        (Uniform, {"k": 4, "placement": "centres"}),
        (Uniform, {"k": 4, "placement": "endpoints"}),
        (RandomK, {"k": 4}),
        (Dense, {}),
        (Oracle, {"k": 4}),
    ):
        method = cls(type("Ctx", (), {"seed": 0})(), aggregate="auto", **params)
        method.table = table
        short = method.predict(type("Rec", (), {"video_id": "v1"})())
        assert short.extras["timesteps"] == [0, 1, 2]  # k > L: all three, nothing from padding
        assert short.usage.total("heavy") == 3
        assert short.selected == list(range(12))  # frames of the three clips of 4 frames
        full = method.predict(type("Rec", (), {"video_id": "v0"})())
        ts = full.extras["timesteps"]
        assert np.allclose(full.scores, aggregate(logits[0, ts], "mean_softmax", False))
        assert len(ts) == (10 if cls is Dense else 4)
        if cls is Uniform:  # the method passes its placement on
            assert ts == ([0, 3, 6, 9] if params["placement"] == "endpoints" else [1, 3, 6, 8])
