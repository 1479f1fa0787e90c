"""Multi-view testing as MMAction2 and PySlowFast report it: ``evaluation.views: {clips: 10, crops: 3}``.

A test video is seen as ``clips`` temporal clips (starts spread evenly, ``harness.data.sampling.
multi_view``) times ``crops`` spatial crops (1: the centre; 3: start / centre / end of the long side,
``harness.data.transforms.three_crops``). Each view is classified on its own; the view scores are
combined by a recorded rule (``harness.metrics.aggregate_scores``: ``mean_softmax`` is MMAction2's
``average_clips='prob'``, ``mean_logits`` its ``'score'``, ``max_sigmoid`` PySlowFast's multi-label
rule). GFLOPs stay per view and per video apart: papers print "GFLOPs x views" (e.g. "33 x 30"),
and neither toolkit multiplies; ``view_gflops`` gives both and the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from harness.data.sampling import multi_view
from harness.data.transforms import center_crop, resize_short_side, three_crops
from harness.metrics import aggregate_scores

CROPS = (1, 3)


@dataclass(frozen=True)
class Views:
    clips: int = 1
    crops: int = 1

    @property
    def count(self) -> int:
        return self.clips * self.crops


def parse_views(value: Any, where: str = "evaluation.views") -> Views:
    """``{clips, crops}`` (or a bare int: that many clips, one crop); ``ValueError`` with one line otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected {{clips: N, crops: 1|3}}, got {value!r}")
    if isinstance(value, int):
        value = {"clips": value, "crops": 1}
    if not isinstance(value, Mapping) or set(value) - {"clips", "crops"}:
        raise ValueError(f"{where}: expected {{clips: N, crops: 1|3}}, got {value!r}")
    clips, crops = value.get("clips", 1), value.get("crops", 1)
    if not isinstance(clips, int) or isinstance(clips, bool) or clips < 1:
        raise ValueError(f"{where}.clips: expected an integer >= 1, got {clips!r}")
    if crops not in CROPS:
        raise ValueError(f"{where}.crops: expected 1 or 3, got {crops!r}")
    return Views(clips, crops)


def view_clips(
    frames: np.ndarray | torch.Tensor, clip_len: int, views: Views, crop_size: int, frame_stride: int = 1
) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> uint8 ``[views.count, clip_len, crop_size, crop_size, 3]``, clip-major
    (view v = clip v // crops, crop v % crops): short side resized to ``crop_size``, then cropped."""
    video = torch.as_tensor(np.asarray(frames))
    chosen = multi_view(len(video), clip_len, views.clips, views.crops, frame_stride)
    out = []
    for view in chosen:
        x = resize_short_side(video[torch.as_tensor(view.indices)].movedim(-1, -3), crop_size)  # [F, 3, h, w]
        x = three_crops(x, crop_size)[view.crop] if views.crops == 3 else center_crop(x, crop_size)
        out.append(x.movedim(-3, -1))
    return torch.stack(out).contiguous()


def combine_views(view_logits: np.ndarray, rule: str) -> np.ndarray:
    """``[views, classes]`` logits -> one ``[classes]`` score by ``rule`` (recorded with the trial)."""
    return aggregate_scores(np.asarray(view_logits), rule)


def view_gflops(gflops_per_view: float, views: Views) -> dict[str, Any]:
    """Per-view and per-video GFLOPs, and the "GFLOPs x views" label of tables."""
    return {
        "gflops_per_view": float(gflops_per_view),
        "views": views.count,
        "gflops_per_video": float(gflops_per_view) * views.count,
        "gflops_x_views": f"{gflops_per_view:.3g} x {views.count}"
        + (f" ({views.clips} clips x {views.crops} crops)" if views.crops > 1 else ""),
    }
