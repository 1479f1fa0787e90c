"""VideoEpitoma's video classifier without its selector: the attention + MLP classifier on the HeavyNet
features of K uniformly spaced timesteps (seed 000; the baseline that separates selection from aggregation).

``videoepitoma`` end-to-end differs from ``uniform`` in two ways at once: which timesteps the
HeavyNet sees (the selector) and how their evidence is combined (a learned self-attention layer,
mean pool and two-layer MLP instead of averaging the heavy classifier's scores). This method keeps
the second and drops the first: the same ``VideoClassifier``, trained with the same optimiser on the
same cached heavy features, sees the K timesteps ``uniform`` would pick, in training and at test.
Compared at equal K (or equal GFLOPs), ``videoepitoma`` minus this is the selector's gain, this
minus ``uniform`` the aggregator's.

Usage per video: {"heavy": min(K, L) (features only: the heavy head never runs), "classifier": 1 at
that many steps}.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from harness.method import Component, Method, Prediction, Usage
from harness.params import Param
from harness.registry import register_method
from harness.toolkit.clips import video_clips
from harness.toolkit.heavy_on_timesteps import features_only
from harness.toolkit.selection import class_probabilities, uniform_timesteps
from harness.toolkit.stages import heavy_classifier, heavy_component, timestep_table
from harness.toolkit.training import train_video_classifier
from methods.videoepitoma import VideoClassifier


def uniform_mask(lengths: np.ndarray, longest: int, k: int) -> torch.Tensor:
    """bool [N, longest]: the K uniform timesteps of each video (all of them when shorter)."""
    mask = torch.zeros(len(lengths), longest, dtype=torch.bool)
    for row, length in enumerate(lengths):
        mask[row, torch.as_tensor(uniform_timesteps(int(length), k))] = True
    return mask


class FeaturesThenClassifier(nn.Module):
    """The realised per-video path from the chosen clips: heavy features, then the video classifier."""

    def __init__(self, heavy: nn.Module, classifier: VideoClassifier):
        super().__init__()
        self.heavy, self.classifier = heavy, classifier

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        features = self.heavy.features(clips)[None]
        return self.classifier(features, torch.ones_like(features[..., 0]))


@register_method("videoepitoma_uniform")
class VideoEpitomaUniform(Method):
    summary = "VideoEpitoma's attention + MLP classifier on K uniform timesteps' heavy features (no selector)"
    params = {
        "k": Param(8, "uniformly spaced timesteps per video (all of them when the video is shorter)", low=1),
        "hidden": Param(128, "hidden width of the attention layer and the classifier MLP", low=4),
        "epochs": Param(30, "training epochs over the training videos", low=1),
        "batch_size": Param(32, "videos per training batch", low=1),
        "lr": Param(1e-3, "Adam learning rate (epsilon 1e-4, as in the paper)", low=0.0),
    }
    budget_param = "k"
    dynamic = True  # a video with fewer than K timesteps costs less
    selection_unit = "frame"

    def fit(self, train: Sequence[Any]) -> None:
        device = self.ctx.device
        table = timestep_table(self.ctx, "train")
        rows = [table.row(r.video_id) for r in train]
        features = torch.as_tensor(np.asarray(table.heavy_features)[rows], device=device)
        mask = uniform_mask(table.lengths[rows], features.shape[1], self.p["k"]).to(device)
        targets = torch.as_tensor(table.labels[rows], dtype=torch.float32, device=device)
        torch.manual_seed(self.ctx.seed)
        self.net = VideoClassifier(features.shape[-1], targets.shape[1], self.p["hidden"]).to(device)
        train_video_classifier(
            self.net,
            features,
            mask,
            targets,
            multilabel=table.multilabel,
            epochs=self.p["epochs"],
            batch_size=self.p["batch_size"],
            lr=self.p["lr"],
            seed=self.ctx.seed,
            what="videoepitoma_uniform",
            log=self.ctx.log,
        )
        self.table = timestep_table(self.ctx, "test")

    def components(self) -> dict[str, Component]:
        dim, classes = self.net.mlp[0].in_features, self.net.mlp[2].out_features
        config = {"method": "videoepitoma_uniform", "hidden": self.p["hidden"], "dim": dim, "classes": classes}
        return {
            "heavy": features_only(heavy_component(self.ctx)),
            "classifier": Component(
                self.net,
                lambda steps: (torch.zeros(1, steps, dim), torch.ones(1, steps)),
                role="recognition",
                config=config,
            ),
        }

    def eval_mode(self) -> None:
        self.net.eval()

    def _chosen(self, row: int) -> np.ndarray:
        return uniform_timesteps(int(self.table.lengths[row]), self.p["k"])

    @torch.no_grad()
    def predict(self, video: Any) -> Prediction:
        row = self.table.row(video.video_id)
        chosen = self._chosen(row)
        features = torch.as_tensor(np.array(self.table.heavy_features[row, chosen]), device=self.ctx.device)[None]
        logits = self.net(features, torch.ones_like(features[..., 0]))[0]
        scores = class_probabilities(logits, self.table.multilabel).cpu().numpy().astype(np.float64)
        frames = self.table.heavy_frames(row, chosen)
        return Prediction(
            scores=scores,
            usage=Usage({"heavy": len(chosen)}).add("classifier", 1, steps=len(chosen)),
            selected=frames,
            decoded=frames,
            extras={"timesteps": [int(t) for t in chosen], "num_timesteps": int(self.table.lengths[row])},
        )

    def trace_video(self, video: Any) -> tuple[nn.Module, tuple]:
        chosen = self._chosen(self.table.row(video.video_id))
        clips = video_clips(self.ctx, "test", video.video_id)[torch.as_tensor(chosen)].to(self.ctx.device)
        return FeaturesThenClassifier(heavy_classifier(self.ctx), self.net).eval(), (clips,)
