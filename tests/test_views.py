"""Multi-view testing helpers: view sampling (clips x crops), score combination, GFLOPs per view and per video."""

import numpy as np
import pytest

from harness.spec import SpecError, load_spec
from harness.views import Views, combine_views, parse_views, view_clips, view_gflops


def _video(num_frames=40, h=32, w=48):
    """Frame t has red = t and green = column: a view's frames and crop position can be read back."""
    frames = np.zeros((num_frames, h, w, 3), np.uint8)
    frames[..., 0] = np.arange(num_frames)[:, None, None]
    frames[..., 1] = np.arange(w)[None, None, :]
    return frames


def test_parse_views():
    assert parse_views({"clips": 10, "crops": 3}) == Views(10, 3) and Views(10, 3).count == 30
    assert parse_views(4) == Views(4, 1) and parse_views({"clips": 2}) == Views(2, 1)
    for bad, field in [
        ({"clips": 10, "crops": 2}, "crops"),
        ({"clips": 0}, "clips"),
        ({"clip": 3}, "views"),
        (True, "views"),
    ]:
        with pytest.raises(ValueError, match=rf"evaluation\.views.*{field}|{field}") as err:
            parse_views(bad)
        assert "\n" not in str(err.value)


def test_ten_clips_three_crops():
    clips = view_clips(_video(), clip_len=4, views=Views(10, 3), crop_size=32)
    assert clips.shape == (30, 4, 32, 32, 3)
    starts = [int(clips[v, 0, 0, 0, 0]) for v in range(0, 30, 3)]
    assert starts[0] == 0 and starts[-1] == 36 and starts == sorted(starts)  # evenly spread, the last ends the video
    assert [int(clips[v, :, 0, 0, 0].tolist() == list(range(starts[0], starts[0] + 4))) for v in range(3)] == [1, 1, 1]
    lefts = [int(clips[v, 0, 0, 0, 1]) for v in range(3)]  # clip-major: views 0, 1, 2 are the 3 crops of clip 0
    assert lefts == [0, 8, 16]  # start, centre, end of the long side (48 - 32 = 16)
    one = view_clips(_video(), clip_len=4, views=Views(1, 1), crop_size=32)
    assert one.shape == (1, 4, 32, 32, 3) and int(one[0, 0, 0, 0, 1]) == 8  # centre crop of the middle clip


def test_scores_and_gflops():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.allclose(combine_views(logits, "mean_softmax"), p.mean(0))
    assert np.allclose(combine_views(logits, "mean_logits"), [1.0, 0.5])
    g = view_gflops(33.0, Views(10, 3))
    assert g["gflops_per_view"] == 33.0 and g["views"] == 30 and g["gflops_per_video"] == pytest.approx(990.0)
    assert g["gflops_x_views"] == "33 x 30 (10 clips x 3 crops)"


def test_a_spec_takes_views_as_clips_and_crops(tmp_path):
    """``evaluation.views: {clips, crops}`` reaches the trial's evaluation; a bad one is a one-line SpecError
    naming the field (not a crash on ``int({...})``)."""
    base = (
        "experiment: v\ndataset: skim-digits\nbackbones: [resnet18]\nmethods: [uniform]\n"
        f"output: {tmp_path}/out\nevaluation: {{views: VIEWS}}\n"
    )
    spec = tmp_path / "v.yaml"
    spec.write_text(base.replace("VIEWS", "{clips: 10, crops: 3}"))
    assert load_spec(spec).evaluation["views"] == {"clips": 10, "crops": 3}
    spec.write_text(base.replace("VIEWS", "4"))
    assert load_spec(spec).evaluation["views"] == 4  # a bare int: N clips, the trial hash unchanged
    spec.write_text(base.replace("VIEWS", "{clips: 10, crops: 2}"))
    with pytest.raises(SpecError, match=r"v\.yaml:6.*evaluation\.views.*crops: expected 1 or 3") as err:
        load_spec(spec)
    assert "\n" not in str(err.value)
