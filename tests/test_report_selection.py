"""Selection precision/recall against per-frame ground truth, frames and clips."""

import math

import pandas as pd
import pytest

from harness.report.selection import selection_quality, unit_relevance, video_selection_scores

REL = [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1]  # 12 frames; clips of 4: [0000] [1100] [0001]


def test_frame_precision_recall():
    s = video_selection_scores([4, 5, 6, 7], REL, "frame")
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(2 / 3)
    assert s["chance"] == pytest.approx(3 / 12)


def test_clip_is_relevant_if_any_frame_is():
    assert list(unit_relevance(REL, "clip", 4)) == [False, True, True]
    s = video_selection_scores([2], REL, "clip", clip_len=4)  # clip 2 holds one relevant frame of four
    assert s["precision"] == 1.0 and s["recall"] == pytest.approx(0.5) and s["chance"] == pytest.approx(2 / 3)


def test_partial_last_clip_and_out_of_range_and_duplicates():
    rel = [0] * 9 + [1]  # clips of 4: [0000] [0000] [01]
    s = video_selection_scores([2, 2, 7], rel, "clip", clip_len=4)  # 7 does not exist; duplicate counted once
    assert s["n_selected"] == 1 and s["precision"] == 1.0 and s["recall"] == 1.0


def test_nothing_selected_or_nothing_relevant_gives_nan_not_zero():
    assert math.isnan(video_selection_scores([], REL)["precision"])
    assert math.isnan(video_selection_scores([1], [0, 0, 0])["recall"])


def test_clip_unit_needs_clip_len():
    with pytest.raises(ValueError, match="clip_len"):
        video_selection_scores([0], REL, "clip", clip_len=None)


def test_selection_quality_averages_videos_then_seeds_and_skips_failed_and_in_network():
    preds = {
        "r0": pd.DataFrame({"video_id": ["a", "b"], "selected": [[4, 5], [0, 1]]}),  # precision 1 and 0
        "r1": pd.DataFrame({"video_id": ["a", "b"], "selected": [[4, 5], [4, 5]]}),  # precision 1 and 1
        "r2": pd.DataFrame({"video_id": ["a", "b"], "selected": [[4], [4]]}),  # failed trial: ignored
        "r3": pd.DataFrame({"video_id": ["a", "b"], "selected": [None, None]}),  # in-network method: no row
    }
    trials = pd.DataFrame(
        {
            "run_id": ["r0", "r1", "r2", "r3"],
            "status": ["FINISHED", "FINISHED", "FAILED", "FINISHED"],
            "dataset": "d",
            "label": ["uniform", "uniform", "uniform", "sgs"],
            "method": ["uniform"] * 3 + ["sgs"],
            "budget": 2.0,
            "seed": [0, 1, 2, 0],
            "selection_unit": ["frame"] * 3 + [None],
            "clip_len": 4,
            "gflops_per_video_mean": 1.0,
        }
    )
    quality = selection_quality(trials, preds, {"a": REL, "b": REL})
    assert list(quality["label"]) == ["uniform"]
    row = quality.iloc[0]
    assert row["n_seeds"] == 2
    assert row["precision_mean"] == pytest.approx((0.5 + 1.0) / 2)
    assert row["recall_mean"] == pytest.approx((1 / 3 + 2 / 3) / 2)
