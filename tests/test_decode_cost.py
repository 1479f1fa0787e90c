"""Decoding cost: each method's declared frames counted per video, the real files decoded and timed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.data.decoding import VideoDecodeError, open_video
from harness.decode_cost import clip_frames, decode_ms, decoded_indices

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_clip_frames_are_whole_clips_or_their_middle_frames():
    assert clip_frames([2, 0], 4) == [0, 1, 2, 3, 8, 9, 10, 11]
    assert clip_frames([2, 0], 4, middle_only=True) == [2, 10]


def test_an_undeclared_video_is_charged_every_frame_and_padding_is_its_last_frame():
    assert decoded_indices(None, 7).tolist() == list(range(7))
    assert decoded_indices([5, 1, 5, 9, 12], 8).tolist() == [1, 5, 7]  # past the end: the repeated last frame
    with pytest.raises(ValueError):
        decoded_indices([-1], 8)


def test_decode_time_opens_the_real_file(tiny_root, tmp_path):
    video = sorted(Path(tiny_root).rglob("*.mp4"))[0]
    assert decode_ms(str(video), np.arange(4), warmup=0, repeats=2) > 0
    with pytest.raises(VideoDecodeError):
        decode_ms(str(tmp_path / "missing.mp4"), np.arange(4), warmup=0, repeats=1)


def _trial(tiny_root, tmp_path, method, params):
    from harness.params import resolve_params
    from harness.registry import BACKBONES, DATASETS, METHODS, load_plugin_file
    from harness.settings import EVALUATION_PARAMS
    from harness.stages import StageStore
    from harness.trial import Trial, run_trial

    load_plugin_file(str(Path(__file__).parent / "plugins" / "quick_methods.py"))
    cfg = {
        "seed": 0,
        "dataset": {
            "name": "skim-digits",
            "params": resolve_params(
                DATASETS.get("skim-digits").params, {"variant": "longrange", "size": "tiny", "root": str(tiny_root)}
            ),
        },
        "backbone": {"name": "resnet18", "params": resolve_params(BACKBONES.get("resnet18").params, {})},
        "method": {"name": method, "params": resolve_params(METHODS.get(method).params, params)},
        "evaluation": resolve_params(
            EVALUATION_PARAMS,
            {"device": "cpu", "heavy_epochs": 1, "batch_size": 2, "latency_warmup": 0, "latency_repeats": 1},
        ),
    }
    # one store beside the session's benchmark: the selection test modules share its stages
    return run_trial(
        Trial.from_dict(cfg), StageStore(Path(tiny_root).parent / "selection-stages"), tmp_path, log=lambda _: None
    )


def test_a_trial_counts_each_methods_declared_frames_and_times_their_decoding(tiny_root, tmp_path):
    undeclared = _trial(tiny_root, tmp_path, "quick_centroid", {"k": 2})  # looks at 2 frames, declares nothing
    uniform = _trial(tiny_root, tmp_path, "uniform", {"k": 2})  # 2D heavy network: 2 middle frames
    lengths = [
        len(open_video(str(next(Path(tiny_root).rglob(f"{video_id}.mp4")))))
        for video_id in undeclared.predictions["video_id"]
    ]
    assert undeclared.predictions["decoded_frames"].tolist() == lengths  # never flattered
    assert undeclared.metrics["decoded_frames_per_video"] == pytest.approx(np.mean(lengths))
    assert undeclared.metrics["decoded_frames_fraction"] == pytest.approx(1.0)
    assert uniform.predictions["decoded_frames"].tolist() == [2] * len(lengths)
    selected = [json.loads(s) for s in uniform.predictions["selected"]]
    assert all(len(s) == 2 for s in selected)
    assert uniform.metrics["decoded_frames_fraction"] == pytest.approx(2 * len(lengths) / sum(lengths))
    for result in (undeclared, uniform):
        assert np.isfinite(result.metrics["decode_ms_per_video"]) and result.metrics["decode_ms_per_video"] > 0
