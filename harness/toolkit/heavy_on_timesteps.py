"""The base of methods that run the heavy classifier on chosen timesteps (the baselines, SCSampler),
and the feature-only view of a shared network (what LiteEval and VideoEpitoma consume)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from harness.method import Component, Method, Prediction, Usage
from harness.toolkit.clips import video_clips
from harness.toolkit.selection import aggregate
from harness.toolkit.stages import heavy_classifier, heavy_component, timestep_stages, timestep_table


class ClipsThrough(nn.Module):
    """``forward(clips [K,3,F,H,W]) -> logits``: a network run on a batch of chosen clips (brute-force traces)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net(clips)


class HeavyOnTimesteps(Method):
    """A method that picks timesteps of a test video and averages the heavy classifier's scores on them.

    Subclasses implement ``choose(row, length) -> timesteps`` (on ``self.table``, the test split's
    ``TimestepTable``) and may override ``heavy_runs`` (timesteps the heavy network classified: the
    chosen ones unless the method needs all of them to choose). Their ``params`` hold ``aggregate``
    (``harness.toolkit.selection.AGGREGATE_PARAM``). Predictions read the cached heavy logits of the
    chosen timesteps, which are exactly what the heavy classifier outputs on those clips (eval mode);
    ``trace_video`` re-runs that computation from decoded frames for the FLOP proof.
    ``selected`` lists the frames the heavy network saw; ``extras["timesteps"]`` the timestep indices.
    """

    dynamic = True  # a video with fewer than k timesteps costs less
    selection_unit = "frame"

    def stages(self) -> list:
        return timestep_stages(self.ctx, ["test"])

    def fit(self, train: Sequence[Any]) -> None:
        self.table = timestep_table(self.ctx, "test")

    def components(self) -> dict[str, Component]:
        return {"heavy": heavy_component(self.ctx)}

    def choose(self, row: int, length: int) -> np.ndarray:
        raise NotImplementedError

    def heavy_runs(self, length: int, chosen: np.ndarray) -> np.ndarray:
        return chosen

    def usage(self, length: int, chosen: np.ndarray) -> Usage:
        return Usage({"heavy": len(self.heavy_runs(length, chosen))})

    def predict(self, video: Any) -> Prediction:
        row = self.table.row(video.video_id)
        length = int(self.table.lengths[row])
        chosen = np.asarray(self.choose(row, length), dtype=np.int64)
        logits = np.asarray(self.table.heavy_logits[row, chosen])
        return Prediction(
            scores=aggregate(logits, self.p["aggregate"], self.table.multilabel),
            usage=self.usage(length, chosen),
            selected=self.table.heavy_frames(row, chosen),
            extras={"timesteps": [int(t) for t in sorted(chosen)], "num_timesteps": length},
            decoded=self.table.heavy_frames(row, self.heavy_runs(length, chosen)),
        )

    def trace_video(self, video: Any) -> tuple[nn.Module, tuple]:
        row = self.table.row(video.video_id)
        length = int(self.table.lengths[row])
        ran = self.heavy_runs(length, np.asarray(self.choose(row, length), dtype=np.int64))
        clips = video_clips(self.ctx, "test", video.video_id)[torch.as_tensor(np.sort(ran))]
        return ClipsThrough(heavy_classifier(self.ctx)), (clips.to(self.ctx.device),)


class FeaturesOf(nn.Module):
    """A shared network up to its pooled features (its head never runs): what LiteEval and
    VideoEpitoma consume, so only this part is counted for them."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net.features(clips)


def features_only(component: Component) -> Component:
    """The same component counted up to its pooled features."""
    return Component(
        FeaturesOf(component.module),
        component.make_inputs,
        role=component.role,
        config={**component.config, "part": "features"},
    )
